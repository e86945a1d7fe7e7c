"""`mlcase monitor --labels FILE` on real tables: a labels file (or a forecast's actuals) typed as exports type it, a
Parquet file with decimal, float32, uint64 or dictionary columns, or a ';' CSV with decimal commas, realizes what its
plain CSV does, and what `mlcase label` of the same file then `mlcase monitor` does."""

from __future__ import annotations

import contextlib
import decimal
import io
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcase.cli import main

from .test_arrow_labels import _forecast_case, _sydney, arrivals  # noqa: F401 - arrivals is a fixture


def _cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _served(folder, frame: pd.DataFrame, target: str, n: int = 100) -> list[str]:
    """The request ids of ``n`` rows of the case's own data answered by its server (the log a case in service has)."""
    from fastapi.testclient import TestClient

    from mlcase.case import load_case
    from mlcase.serve.app import ServeSettings, create_app

    rows = frame.drop(columns=[target]).iloc[:n]
    recs = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in rows.to_dict("records")]
    with TestClient(create_app(ServeSettings(case=load_case(folder), warmup=0))) as client:
        r = client.post("/predict", json=recs)
        assert r.status_code == 200, r.text
    body = r.json()
    return [p["request_id"] for p in (body if isinstance(body, list) else body["predictions"])]


def _realized(out: str) -> dict:
    """What monitoring realized from the labels: per window, the metrics and label counts (not the delays: a clock)."""
    d = json.loads(out)
    return {"labels": d["labels"], "realized": [w["realized"] for w in d["windows"]],
            "windows": [{k: v for k, v in w["labels"].items() if not k.startswith("delay")} for w in d["windows"]]}


@pytest.mark.parametrize("table_id", ["boston-random", "boston-rad-classes"])
def test_a_labels_file_typed_as_exports_type_it_realizes_what_label_then_monitor_does(runs, tmp_path, table_id):
    """MASS::Boston's prices (regression) and its highway index as classes (multiclass) as the outcomes of 100 served
    predictions. `monitor --labels` read the file in DuckDB itself: a ';' CSV's decimal commas stayed text, so the
    regression's 99 labels were 'unreadable' (no MAE) and the multiclass's '1,0' were all wrong (accuracy 0.0 where
    its CSV gave 0.98). Each now realizes what `mlcase label` of the CSV then `mlcase monitor` does."""
    run = runs.copy(table_id, tmp_path / "case")
    assert run["code"] == 0, run["summary"]
    folder, table = run["folder"], run["table"]
    frame = table.frame()
    ids = _served(folder, frame, table.target)
    pristine = tmp_path / "pristine.db"
    shutil.copy(folder / "predictions.db", pristine)
    y = frame[table.target].iloc[:len(ids)].astype(float).to_numpy().copy()
    y[3] = np.nan                                           # one outcome not known yet
    labels = pd.DataFrame({"request_id": ids, "label": y})
    labels.to_csv(tmp_path / "labels.csv", index=False)

    def monitored(*labels_arg) -> dict:
        code, out, err = _cli("monitor", folder, *labels_arg, "--json", "--no-notify")
        assert code in (0, 1), err
        return _realized(out)

    assert _cli("label", tmp_path / "labels.csv", folder)[0] == 0
    expected = monitored()
    shutil.copy(pristine, folder / "predictions.db")
    realized = expected["realized"][0]
    assert expected["labels"]["matched"] == realized["n"] == 99 and expected["labels"]["unreadable"] == 0
    assert (realized["mae"] > 0) if table.task == "regression" else (0.9 < realized["accuracy"] < 1.0)

    labels.to_csv(tmp_path / "semicolon.csv", index=False, sep=";", decimal=",")    # 24,0 / 1,0
    known = [None if v != v else v for v in y]
    typed = {"decimal": {"request_id": pa.array(ids, pa.large_string()),
                         "label": pa.array([None if v is None else decimal.Decimal(f"{v:.2f}") for v in known],
                                           pa.decimal128(8, 2))},
             "float32": {"request_id": pa.array(ids).dictionary_encode(), "label": pa.array(y, pa.float32())}}
    if table.task != "regression":
        typed["uint64"] = {"request_id": pa.array(ids, pa.string_view()),
                           "label": pa.array([None if v is None else int(v) for v in known], pa.uint64())}
    for name, columns in typed.items():
        pq.write_table(pa.table(columns), tmp_path / f"{name}.parquet")
    for name in ["labels.csv", "semicolon.csv", *(f"{k}.parquet" for k in typed)]:
        assert monitored("--labels", tmp_path / name) == expected, name
        shutil.copy(pristine, folder / "predictions.db")
        assert _cli("label", tmp_path / name, folder)[0] == 0 and monitored() == expected, name
        shutil.copy(pristine, folder / "predictions.db")


@pytest.fixture(scope="module")
def arrivals_served(arrivals, tmp_path_factory):  # noqa: F811 - the imported fixture
    """``(folder, actuals)``: fpp3::aus_arrivals' case with one logged forecast per origin of the 4 quarters after
    2010 Q3 (from the 5 years before), and those quarters' real arrivals as the case's data writes them."""
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    folder = tmp_path_factory.mktemp("arrivals") / "arrivals"
    case = _forecast_case(folder, arrivals)
    cut = pd.Timestamp("2010-10-01")
    with TestClient(create_app(ServeSettings(case=case, registry=False))) as client:
        for origin, rows in arrivals.groupby("Origin"):
            past = rows[(rows["Quarter"] < cut) & (rows["Quarter"] >= cut - pd.DateOffset(years=5))]
            history = [{"Quarter": str(q.date()), "Arrivals": float(a)}
                       for q, a in zip(past["Quarter"], past["Arrivals"], strict=True)]
            r = client.post("/forecast", json={"series": origin, "history": history})
            assert r.status_code == 200, r.text
    later = arrivals[(arrivals["Quarter"] >= cut) & (arrivals["Quarter"] < cut + pd.DateOffset(years=1))]
    return folder, later.reset_index(drop=True)


def test_forecast_actuals_typed_as_exports_type_them_score_what_their_csv_does(arrivals_served, tmp_path):
    """Actuals of 4 origins' logged forecasts as a Parquet export writes them: the origin a dictionary, the quarter a
    date32 or a zoned local midnight (Australia/Sydney), arrivals decimal, float32 or uint64; and as a ';' CSV. Each
    scores the MASE and coverage per step that the plain CSV does."""
    folder, actual = arrivals_served
    actual = actual[["Origin", "Quarter", "Arrivals"]]
    actual.to_csv(tmp_path / "actuals.csv", index=False)
    code, out, err = _cli("monitor", folder, "--labels", tmp_path / "actuals.csv", "--json", "--no-notify")
    assert code in (0, 1), err
    expected = json.loads(out)
    assert expected["points"] == 16 and [s["points"] for s in expected["by_step"]] == [4, 4, 4, 4], expected

    actual.to_csv(tmp_path / "semicolon.csv", index=False, sep=";", decimal=",")
    origin = pa.array(actual["Origin"]).dictionary_encode()
    days = pa.array([q.date() for q in actual["Quarter"]], pa.date32())
    variants = {
        "dictionary-date32-decimal": {"Origin": origin, "Quarter": days,
                                      "Arrivals": pa.array([decimal.Decimal(int(v)) for v in actual["Arrivals"]],
                                                           pa.decimal128(12, 0))},
        "zoned-float32": {"Origin": pa.array(actual["Origin"], pa.large_string()),
                          "Quarter": pa.Array.from_pandas(_sydney(actual["Quarter"])),
                          "Arrivals": pa.array(actual["Arrivals"], pa.float32())},
        "uint64": {"Origin": origin, "Quarter": days, "Arrivals": pa.array(actual["Arrivals"], pa.uint64())}}
    for name, columns in variants.items():
        pq.write_table(pa.table(columns), tmp_path / f"{name}.parquet")
    for name in ["semicolon.csv", *(f"{k}.parquet" for k in variants)]:
        code, out, err = _cli("monitor", folder, "--labels", tmp_path / name, "--json", "--no-notify")
        assert code in (0, 1), (name, err)
        assert json.loads(out) == expected, name


def _folder_state(folder) -> dict:
    """Every file of a case folder with its size and modification time: what a refused command must leave as it was."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("table_id", ["boston-random", "boston-rad-classes"])
def test_monitor_labels_refuses_the_labels_mlcase_label_refuses(runs, tmp_path, table_id):
    """MASS::Boston's prices (regression) and highway index (multiclass, classes 1-8 and 24) as outcomes of 100
    served predictions, with one bad row: a text for a price, a class the model has not, or a second, different
    label for a request. `mlcase label` refused each (exit 2, nothing attached) but `monitor --labels` counted the
    bad label 'unreadable' (or took the pair by row order) and realized metrics from the other 99. Each now refuses
    it as `mlcase label` does, naming the same row, with exit 2, and writes nothing; a request id the log does not
    hold is still counted (`unmatched_request_ids`), as monitoring documents."""
    run = runs.copy(table_id, tmp_path / "case")
    assert run["code"] == 0, run["summary"]
    folder, table = run["folder"], run["table"]
    frame = table.frame()
    ids = _served(folder, frame, table.target)
    y = [str(v) for v in frame[table.target].iloc[:len(ids)].astype(float)]
    bad = {"conflict": (ids + [ids[7]], y + ["1.0" if y[7] != "1.0" else "2.0"], "row 101")}
    if table.task == "regression":
        bad |= {"text": (ids, y[:5] + ["zz"] + y[6:], "row 6")}     # 'inf' reads as missing in both: no outcome yet
    else:
        bad |= {"no-class": (ids, y[:5] + ["9"] + y[6:], "row 6")}
    for name, (rids, labels, row) in bad.items():
        pd.DataFrame({"request_id": rids, "label": labels}).to_csv(tmp_path / f"{name}.csv", index=False)
        before = _folder_state(folder)
        code, _, err_label = _cli("label", tmp_path / f"{name}.csv", folder)
        assert code == 2 and row in err_label and "nothing was attached" in err_label, (name, err_label)
        code, out, err = _cli("monitor", folder, "--labels", tmp_path / f"{name}.csv", "--json", "--no-notify")
        assert code == 2, (name, out[:300])
        assert row in err and "nothing was monitored" in err and f"{name}.csv" in err, (name, err)
        assert err.split(row)[1].split(";")[0] == err_label.split(row)[1].split(";")[0], (err, err_label)
        assert _folder_state(folder) == before, name

    pd.DataFrame({"request_id": [*ids, "not-served"], "label": [*y, y[0]]}).to_csv(tmp_path / "unknown.csv",
                                                                                   index=False)
    code, out, err = _cli("monitor", folder, "--labels", tmp_path / "unknown.csv", "--json", "--no-notify")
    assert code in (0, 1), err
    d = json.loads(out)
    assert d["labels"]["unmatched_request_ids"] == 1 and d["labels"]["unreadable"] == 0
    assert d["windows"][0]["realized"]["n"] == 100


def _monitored_records(folder, log) -> dict:
    """What monitoring a records file computes: drift, decisions and realized metrics per window and over all rows."""
    code, out, err = _cli("monitor", folder, "--log", log, "--json", "--no-notify")
    assert code in (0, 1), err
    d = json.loads(out)
    return {k: d[k] for k in ("windows", "overall", "labels", "alerts")}


@pytest.mark.parametrize("table_id", ["boston-random", "boston-rad-classes"])
def test_a_records_file_as_a_spreadsheet_exports_it_monitors_as_its_csv_does(runs, tmp_path, table_id):
    """MASS::Boston's 506 rows (features and the outcome) as the records `monitor --log` reads, saved as a plain CSV, as
    a ';' CSV with decimal commas (a European spreadsheet's export: `crim` '0,00632') and as Parquet. DuckDB read the
    ';' file itself, so its numbers with a comma stayed text: the drift, the model's scores and the realized metrics
    came from text (or failed to). Each file now gives the numbers its plain CSV gives."""
    run = runs.copy(table_id, tmp_path / "case")
    assert run["code"] == 0, run["summary"]
    folder, table = run["folder"], run["table"]
    records = table.frame()
    records.to_csv(tmp_path / "records.csv", index=False)
    expected = _monitored_records(folder, tmp_path / "records.csv")
    realized = expected["windows"][0]["realized"]
    assert realized["n"] == len(records)
    assert (realized["mae"] > 0) if table.task == "regression" else (0.5 < realized["accuracy"] <= 1.0)
    records.to_csv(tmp_path / "semicolon.csv", index=False, sep=";", decimal=",")
    assert any("," in line for line in (tmp_path / "semicolon.csv").read_text().splitlines()[1:3])
    records.to_parquet(tmp_path / "records.parquet", index=False)
    for name in ["semicolon.csv", "records.parquet"]:
        assert _monitored_records(folder, tmp_path / name) == expected, name
