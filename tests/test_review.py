"""The review queue as files (mlcase.review): export -> import round-trips without loss; a bad file is
refused with one line naming the row, and nothing of it is written."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from mlcase.errors import DataError, MlcaseError, NotFoundError
from mlcase.review import (
    QUEUE_COLUMNS,
    REVIEW_COLUMNS,
    ReviewRejected,
    export_queue,
    import_reviews,
)
from mlcase.serve.predlog import COLUMNS, PredictionLog
from tests.serving_case import bundle, make_case

# (request_id, decision, arm, audit, sampling probability, model decision, rule decision, balance)
ROWS = [("r-flag", "flag", "model", 0, 1.0, "flag", None, 2100.0),
        ("r-review", "review", "model", 0, 1.0, "review", None, 1500.0),
        ("r-audit", "auto", "model", 1, 0.05, "auto", None, 300.0),
        ("r-auto", "auto", "model", 0, 0.05, "auto", None, 200.0),
        ("r-hold", "flag", "holdout", 0, 1.0, "auto", "flag", 1900.0),
        ("r-hold-auto", "auto", "holdout", 0, 0.0, "flag", "auto", 100.0)]
NOTE = 'called twice, "no answer"; ünïcode ✓\nsecond line, with a comma'


@pytest.fixture(scope="module")
def served_log(tmp_path_factory):
    """A loans case (rule: balance > 1800) and a log of six answered records, one per kind of case."""
    root = tmp_path_factory.mktemp("review") / "loans"
    case, ds = make_case(root, data="default", n=600)
    b = bundle(ds, "logistic", threshold=0.5)
    rows = []
    for k, (rid, dec, arm, audit, pi, mdec, rdec, balance) in enumerate(ROWS):
        values = {"request_id": rid, "ts": f"2026-03-0{k + 1}T10:00:00.000000Z", "model_version": 3,
                  "model_name": "logistic", "tier": "model", "fallback": 0,
                  "inputs": json.dumps({"student": "No", "balance": balance, "income": 40000.0}),
                  "score": 0.9 if mdec == "flag" else 0.2, "prediction": "Yes" if dec == "flag" else "No",
                  "decision": dec, "conformal": json.dumps(["Yes", "No"] if dec == "review" else ["No"]),
                  "latency_ms": 1.0, "arm": arm, "unit_id": f"loan-{k}", "audit": audit,
                  "sampling_probability": pi, "model_decision": mdec, "rule_decision": rdec}
        rows.append(tuple(values.get(c) for c in COLUMNS))
    log = PredictionLog(str(case.root / "predictions.db"))
    log.write(rows)
    log.close()
    return case, b


def labels_of(case) -> list[tuple]:
    con = sqlite3.connect(case.root / "predictions.db")
    try:
        return con.execute("SELECT request_id, label, source, channel, reviewer, reviewed_at, note FROM labels "
                           "ORDER BY id").fetchall()
    finally:
        con.close()


def clear_labels(case) -> None:
    con = sqlite3.connect(case.root / "predictions.db")
    con.execute("DELETE FROM labels")
    con.commit()
    con.close()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_then_import_round_trips_without_loss(served_log, tmp_path, suffix):
    case, b = served_log
    clear_labels(case)
    out = export_queue(case, tmp_path / f"queue{suffix}", reasons=0)
    assert out["rows"] == 4 and out["by_why"] == {"flag": 2, "review": 1, "audit": 1}
    queue = pd.read_csv(out["output"], dtype=str, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(
        out["output"])
    assert list(queue.columns) == [*QUEUE_COLUMNS, "input.student", "input.balance", "input.income",
                                   *REVIEW_COLUMNS]
    assert queue["request_id"].tolist() == ["r-flag", "r-review", "r-audit", "r-hold"]
    assert queue["why"].tolist() == ["flag", "review", "audit", "flag"]
    assert queue["arm"].tolist() == ["model", "model", "model", "holdout"]
    # the rule's verdict: as logged on the holdout, else the case's rule on the logged inputs
    assert queue["rule_decision"].tolist() == ["flag", "auto", "auto", "flag"]
    assert json.loads(queue["conformal"].iloc[1]) == ["Yes", "No"]
    # the reviewers fill it in (a note with quotes, commas, a newline and non-ASCII text)
    queue["outcome"] = ["Yes", "No", "yes", "Yes"]  # 'yes' is the class 'Yes' written loosely
    queue["reviewer"] = ["ana", "ana", "ben", "ana"]
    queue["reviewed_at"] = ["2026-03-10T09:00:00Z", "2026-03-10T09:05:00+01:00", "2026-03-11 12:00", ""]
    queue["note"] = [NOTE, "", None, "ok"]
    filled = tmp_path / f"filled{suffix}"
    queue.to_csv(filled, index=False) if suffix == ".csv" else queue.to_parquet(filled, index=False)
    res = import_reviews(case, filled, bundle=b)
    assert res["stored"] == 4 and res["skipped_unreviewed"] == 0
    assert res["sources"] == {"review": 2, "audit": 1, "holdout": 1}
    stored = labels_of(case)
    channel = f"review:filled{suffix}"
    assert [r[:5] for r in stored] == [("r-flag", "Yes", "review", channel, "ana"),
                                       ("r-review", "No", "review", channel, "ana"),
                                       ("r-audit", "Yes", "audit", channel, "ben"),
                                       ("r-hold", "Yes", "holdout", channel, "ana")]
    assert stored[0][6] == NOTE and stored[1][6] is None and stored[3][6] == "ok"
    assert [pd.Timestamp(r[5]) for r in stored[:3]] == [
        pd.Timestamp("2026-03-10T09:00:00Z"), pd.Timestamp("2026-03-10T08:05:00Z"), pd.Timestamp("2026-03-11T12:00Z")]
    assert pd.Timestamp(stored[3][5]) > pd.Timestamp("2026-03-12T00:00Z")  # empty: now
    # importing the same file again stores nothing twice; the queue is empty now
    again = import_reviews(case, filled, bundle=b)
    assert again["stored"] == 1 and again["already_imported"] == 3  # the row without a time gets a new one
    assert export_queue(case, tmp_path / f"empty{suffix}", reasons=0)["rows"] == 0
    assert export_queue(case, tmp_path / f"all{suffix}", reasons=0, include_reviewed=True)["rows"] == 4


def test_a_queue_saved_by_a_spreadsheet_with_semicolons_imports(served_log, tmp_path):
    """Reviewers open the exported queue in a spreadsheet whose locale writes 0,5 for a half; it saves CSV with ';'
    between the fields. Before, the import read the header as one column and refused the file for lacking
    request_id, outcome and reviewer."""
    case, b = served_log
    clear_labels(case)
    out = export_queue(case, tmp_path / "queue.csv", reasons=0)
    queue = pd.read_csv(out["output"], dtype=str, keep_default_na=False)
    queue["outcome"], queue["reviewer"] = ["Yes", "No", "No", "Yes"], "ana"
    queue["note"] = ["checked; twice", "", "0,5 of the balance", ""]
    queue.to_csv(tmp_path / "filled.csv", index=False, sep=";")
    assert (tmp_path / "filled.csv").read_text().startswith("request_id;")
    res = import_reviews(case, tmp_path / "filled.csv", bundle=b)
    assert res["stored"] == 4
    assert [(r[0], r[1], r[6]) for r in labels_of(case)] == [
        ("r-flag", "Yes", "checked; twice"), ("r-review", "No", None), ("r-audit", "No", "0,5 of the balance"),
        ("r-hold", "Yes", None)]


def test_rows_without_an_outcome_are_skipped(served_log, tmp_path):
    case, b = served_log
    clear_labels(case)
    pd.DataFrame({"request_id": ["r-flag", "r-audit"], "outcome": ["No", ""], "reviewer": ["ana", ""]}).to_csv(
        tmp_path / "part.csv", index=False)
    res = import_reviews(case, tmp_path / "part.csv", bundle=b)
    assert (res["stored"], res["skipped_unreviewed"], res["sources"]) == (1, 1, {"review": 1})


def _bad(rows: dict) -> pd.DataFrame:
    base = {"request_id": ["r-flag", "r-review", "r-audit", "r-hold"], "outcome": ["Yes", "No", "No", "Yes"],
            "reviewer": ["ana", "ana", "ben", "ana"], "reviewed_at": ["2026-03-10T09:00:00Z"] * 4,
            "note": ["", "", "", ""]}
    for col, (k, v) in rows.items():
        base[col][k] = v
    return pd.DataFrame(base)


@pytest.mark.parametrize("change, error, fragments", [
    ({"outcome": (2, "maybe")}, ReviewRejected, ["row 3 (request_id r-audit)", "outcome 'maybe'", "No, Yes"]),
    ({"reviewer": (1, "  ")}, ReviewRejected, ["row 2 (request_id r-review)", "reviewer is empty"]),
    ({"reviewed_at": (3, "next tuesday")}, ReviewRejected, ["row 4", "reviewed_at 'next tuesday'", "ISO-8601"]),
    ({"reviewed_at": (0, "2020-01-01T00:00:00Z")}, ReviewRejected, ["row 1", "before the prediction"]),
    ({"request_id": (3, "r-ghost")}, NotFoundError, ["row 4", "'r-ghost' is not in the prediction log"]),
    ({"request_id": (1, "r-flag")}, ReviewRejected, ["row 2", "ana reviews this case again (first at row 1)"]),
    ({"request_id": (0, "")}, ReviewRejected, ["row 1", "request_id is empty"]),
])
def test_a_bad_row_stops_the_import_with_one_line_and_nothing_written(served_log, tmp_path, change, error,
                                                                      fragments):
    case, b = served_log
    clear_labels(case)
    bad = _bad(change)
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(error) as err:
        import_reviews(case, tmp_path / "bad.csv", bundle=b)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("bad.csv row ")
    for fragment in fragments:
        assert fragment in msg
    assert labels_of(case) == []  # all or nothing


def test_unreadable_review_files(served_log, tmp_path):
    case, b = served_log
    pd.DataFrame({"request_id": ["r-flag"], "verdict": ["Yes"]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(DataError, match="lacks the column\\(s\\) outcome, reviewer"):
        import_reviews(case, tmp_path / "cols.csv", bundle=b)
    (tmp_path / "q.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        import_reviews(case, tmp_path / "q.xlsx", bundle=b)
    with pytest.raises(DataError, match="no such file"):
        import_reviews(case, tmp_path / "nope.csv", bundle=b)
    with pytest.raises(DataError, match="write the queue to a .csv or .parquet"):
        export_queue(case, tmp_path / "queue.json", reasons=0)
    with pytest.raises(MlcaseError, match="--since"):
        export_queue(case, tmp_path / "queue.csv", since="soon", reasons=0)


def test_since_keeps_only_recent_cases(served_log, tmp_path):
    case, _ = served_log
    clear_labels(case)
    out = export_queue(case, tmp_path / "recent.csv", since="3d", now="2026-03-05T12:00:00Z", reasons=0)
    assert out["rows"] == 2  # r-audit (03-03) and r-hold (03-05); r-flag and r-review are older
