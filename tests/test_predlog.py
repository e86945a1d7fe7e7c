"""The prediction log: batched durable writes, nothing dropped silently, labels by request id."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import pandas as pd
import pytest

from mlcase.serve.predlog import COLUMNS, LABEL_COLUMNS, LogFull, PredictionLog, label_file, now_iso


def _row(rid: str, score: float = 0.3) -> tuple:
    values = {"request_id": rid, "ts": now_iso(), "model_version": 3, "model_name": "lightgbm", "tier": "model",
              "fallback": 0, "reason": None, "inputs": '{"tenure": 4}', "score": score, "scores": None,
              "prediction": "No", "decision": "auto", "conformal": '["No"]', "latency_ms": 0.8, "challenger": None}
    return tuple(values.get(c) for c in COLUMNS)


def test_concurrent_writes_share_transactions_and_all_land(tmp_path):
    db = tmp_path / "predictions.db"
    log = PredictionLog(str(db))
    ids = [uuid.uuid4().hex for _ in range(400)]

    def client(chunk):
        futs = [log.submit([_row(i)]) for i in chunk]
        for f in futs:
            f.result(timeout=10)

    threads = [threading.Thread(target=client, args=(ids[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = log.stats()
    log.close()
    assert stats["written"] == 400 and stats["failed"] == 0 and stats["refused"] == 0
    assert stats["transactions"] < 400  # group commit: several requests per transaction
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {r[0] for r in con.execute("SELECT request_id FROM predictions")} == set(ids)
    # the layout monitoring reads (docs/contracts.md)
    cols = [r[1] for r in con.execute("PRAGMA table_info(predictions)")]
    assert cols == list(COLUMNS)
    assert [r[1] for r in con.execute("PRAGMA table_info(labels)")] == ["id", *LABEL_COLUMNS]


def test_a_row_that_cannot_be_written_is_counted_not_dropped(tmp_path):
    log = PredictionLog(str(tmp_path / "p.db"))
    log.write([_row("a"), _row("b")])
    good, dup = log.submit([_row("c")]), log.submit([_row("a")])  # 'a' again violates the primary key
    assert good.result(timeout=10) == 1
    with pytest.raises(RuntimeError, match="1 of 1 prediction log rows not written.*UNIQUE"):
        dup.result(timeout=10)
    assert log.failed == 1 and log.written == 3
    assert "IntegrityError" in log.stats()["last_error"]
    log.close()


def test_a_full_queue_refuses_at_once_and_counts(tmp_path):
    db = tmp_path / "p.db"
    log = PredictionLog(str(db), max_queue=3, max_batch=1)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock: the writer waits, the queue fills
    futures, refused = [], 0
    for k in range(10):
        try:
            futures.append(log.submit([_row(f"r{k}")]))
        except LogFull as exc:
            refused += 1
            assert "writes waiting" in str(exc)
    blocker.execute("COMMIT")
    for f in futures:
        f.result(timeout=30)
    assert refused >= 6 and log.refused == refused
    assert log.written == len(futures) == 10 - refused
    log.close()


def test_sqlalchemy_url_same_tables(tmp_path):
    url = f"sqlite+pysqlite:///{tmp_path / 'shared.db'}"
    log = PredictionLog(url)
    assert type(log.backend).__name__ == "_SqlAlchemyBackend"
    log.write([_row("x1"), _row("x2", 0.9)])
    out = log.add_labels([{"request_id": "x1", "label": "Yes"}, {"request_id": "nope", "label": "No"}])
    log.close()
    assert out == {"attached": 1, "blank": 0, "unknown": 1, "unknown_request_ids": ["nope"], "sources": {"outcome": 1}}
    con = sqlite3.connect(tmp_path / "shared.db")
    assert con.execute("SELECT score FROM predictions WHERE request_id='x2'").fetchone()[0] == 0.9
    assert con.execute("SELECT request_id, label, source, channel FROM labels").fetchall() == [
        ("x1", "Yes", "outcome", "api")]


def test_label_file_command(tmp_path):
    from mlcase.cli import main
    from tests.serving_case import make_case

    case, _ = make_case(tmp_path / "case", n=300)
    log = PredictionLog(str(case.root / "predictions.db"))
    log.write([_row("id-1"), _row("id-2")])
    log.close()
    pd.DataFrame({"request_id": ["id-1", "id-2", "id-2", "ghost"], "label": ["Yes", "No", "Yes", "No"]}).to_csv(
        tmp_path / "outcomes.csv", index=False)
    assert main(["label", str(tmp_path / "outcomes.csv"), str(case.root), "--json"]) == 0
    con = sqlite3.connect(case.root / "predictions.db")
    rows = con.execute("SELECT request_id, label, source, channel FROM labels ORDER BY id").fetchall()
    # duplicates are kept (monitoring takes the last); unknown ids are reported, not stored
    assert rows == [("id-1", "Yes", "outcome", "file:outcomes.csv"), ("id-2", "No", "outcome", "file:outcomes.csv"),
                    ("id-2", "Yes", "outcome", "file:outcomes.csv")]
    out = label_file(case, tmp_path / "outcomes.csv")
    assert out["attached"] == 3 and out["unknown_request_ids"] == ["ghost"]


def test_label_file_names_missing_columns(tmp_path):
    from mlcase.errors import DataError
    from tests.serving_case import make_case

    case, _ = make_case(tmp_path / "case", n=300)
    pd.DataFrame({"id": ["a"], "outcome": ["Yes"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="lacks the column\\(s\\) request_id, label.*request_id column"):
        label_file(case, tmp_path / "bad.csv")


OLD_DDL = (  # the layout before arms and label sources (mlcase 0.x logs in the field)
    """CREATE TABLE predictions (request_id TEXT PRIMARY KEY, ts TEXT NOT NULL, model_version INTEGER,
        model_name TEXT, tier TEXT, fallback INTEGER, reason TEXT, inputs TEXT, score REAL, scores TEXT,
        prediction TEXT, decision TEXT, conformal TEXT, latency_ms REAL, challenger TEXT)""",
    """CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL, label TEXT,
        ts TEXT NOT NULL, source TEXT)""",
)


@pytest.mark.parametrize("kind", ["sqlite", "sqlalchemy"])
def test_an_old_log_gets_the_new_columns_on_open_and_keeps_its_rows(tmp_path, kind):
    from mlcase.serve.predlog import LABEL_COLUMNS_ADDED, PREDICTION_COLUMNS_ADDED

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    for ddl in OLD_DDL:
        con.execute(ddl)
    con.execute("INSERT INTO predictions (request_id, ts, score, decision) VALUES ('old-1', '2024-01-01T00:00:00Z', "
                "0.7, 'flag')")
    con.execute("INSERT INTO labels (request_id, label, ts, source) VALUES ('old-1', 'Yes', '2024-02-01T00:00:00Z', "
                "'api')")
    con.commit()
    con.close()
    log = PredictionLog(str(db) if kind == "sqlite" else f"sqlite+pysqlite:///{db}")
    log.write([_row("new-1")])
    out = log.add_labels([{"request_id": "old-1", "label": "No"}])
    log.close()
    assert out["attached"] == 1 and out["sources"] == {"outcome": 1}
    con = sqlite3.connect(db)
    pred_cols = [r[1] for r in con.execute("PRAGMA table_info(predictions)")]
    assert pred_cols[:15] == list(COLUMNS[:15]) and pred_cols[15:] == [c for c, _ in PREDICTION_COLUMNS_ADDED]
    assert [r[1] for r in con.execute("PRAGMA table_info(labels)")][5:] == [c for c, _ in LABEL_COLUMNS_ADDED]
    assert con.execute("SELECT score, decision, arm FROM predictions WHERE request_id = 'old-1'").fetchone() == (
        0.7, "flag", None)
    assert con.execute("SELECT label, source, channel FROM labels ORDER BY id").fetchall() == [
        ("Yes", "api", None), ("No", "outcome", "api")]
    # opening it again changes nothing
    PredictionLog(str(db)).close()
    assert [r[1] for r in con.execute("PRAGMA table_info(predictions)")] == pred_cols
