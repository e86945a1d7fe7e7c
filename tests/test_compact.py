# ruff: noqa: F811  (the tests take test_monitor's `trained` fixture)
"""Compacting the serving log into date-partitioned Parquet (mlcase.monitor.compact): nothing lost or duplicated,
even under SIGKILL; monitoring the compacted part plus the live tail equals monitoring the SQLite log, locally and
with the windows' partitions typed on a Dask LocalCluster of 2 workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlcase import monitor as M
from mlcase.cli import main
from mlcase.monitor.compact import MANIFEST, CompactedLog, compact

from .test_monitor import (  # noqa: F401
    SPEC,
    START,
    add_labels,
    draw,
    fresh_case,
    iso,
    predicted_ts,
    trained,
    write_log,
)

N, DAYS = 3000, 6
SPEC_DATA = SPEC["data"]


def _log(tmp_path, trained, name="predictions.db", seed=11):
    rng = np.random.default_rng(seed)
    cur = draw(N, rng, shift=0.3)
    db = tmp_path / name
    ids = write_log(db, cur, trained["bundle"], days=np.sort(rng.integers(0, DAYS, N)), seed=seed)
    when = predicted_ts(db)
    truth = dict(zip(ids, cur["y"], strict=True))
    add_labels(db, [(r, truth[r], when[r] + pd.Timedelta(hours=5)) for r in ids[::3]])
    con = sqlite3.connect(db)  # one record whose inputs are not JSON: counted as invalid either way
    con.execute("UPDATE predictions SET inputs = 'not json' WHERE request_id = ?", (ids[7],))
    con.commit()
    con.close()
    return db, ids


def _every_row(db) -> Counter:
    """Request ids of the compacted part (committed batches only) plus the live tail: each must appear once."""
    store = CompactedLog(db)
    con = sqlite3.connect(db)
    try:
        batches = store.batches(con)
        tail = [r[0] for r in con.execute(f"SELECT request_id FROM predictions WHERE {store.tail_where(batches)}")]
    finally:
        con.close()
    files = store.files(batches)
    part = []
    if files:
        part = [r[0] for r in duckdb.sql(f"SELECT request_id FROM read_parquet({[str(f) for f in files]})").fetchall()]
    return Counter(tail + part)


def _same(a: dict, b: dict, path: str = "") -> None:
    """Equal results: the same keys and values, floats to 1e-9 relative (sums run in another order)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


def _result(case, db, bundle, **kw) -> dict:
    d = M.monitor(case, log=str(db), bundle=bundle, compact=False, **kw).to_dict()
    d.pop("source")
    d.pop("compacted")
    return d


def test_compacted_part_plus_tail_is_every_row_once_and_monitors_the_same(trained, tmp_path):
    case = fresh_case(tmp_path, trained)
    db, ids = _log(tmp_path, trained)
    plain = tmp_path / "plain.db"
    shutil.copy(db, plain)
    before = _result(case, plain, trained["bundle"])
    first = compact(case, log=db, before=iso(START + pd.Timedelta(days=3)))
    assert first.rows > 0 and first.tail_rows == N - first.rows
    assert _every_row(db) == Counter(ids)
    # SQLite finds the tail's candidates through the ts index and the rowid, never by reading the whole log
    con = sqlite3.connect(db)
    tail = CompactedLog(db).tail_where(CompactedLog(db).batches(con))
    plan = [row[-1] for row in con.execute(f"EXPLAIN QUERY PLAN SELECT request_id FROM predictions WHERE {tail}")]
    con.close()
    assert not any(step.startswith("SCAN") for step in plan) and any("predictions_ts" in step for step in plan), plan
    # rows logged after the compaction, one of them with a time the batch already covered (a late row)
    late = draw(2, np.random.default_rng(99))
    for path in (db, plain):
        con = sqlite3.connect(path)
        for k, ts in enumerate([START + pd.Timedelta(days=1, hours=3), START + pd.Timedelta(days=5, hours=1)]):
            rec = {c: late[c].iloc[k] for c in trained["bundle"].features}
            rec["flag"] = rec["flag"] == "True"
            con.execute("INSERT INTO predictions (request_id, ts, model_version, tier, fallback, inputs, score, "
                        "prediction, decision) VALUES (?, ?, 1, 'model', 0, ?, 0.5, 'yes', 'flag')",
                        (f"late{k}", iso(ts), json.dumps(rec)))
        con.commit()
        con.close()
    assert _every_row(db) == Counter([*ids, "late0", "late1"])
    _same(_result(case, db, trained["bundle"]), _result(case, plain, trained["bundle"]))
    second = compact(case, log=db, before=iso(START + pd.Timedelta(days=DAYS + 1)))
    assert second.rows == N - first.rows + 1 and second.tail_rows == 1   # late0 stays in the tail
    assert _every_row(db) == Counter([*ids, "late0", "late1"])
    after = _result(case, db, trained["bundle"])
    _same(after, _result(case, plain, trained["bundle"]))
    assert after["n_rows"] == before["n_rows"] + 2
    parts = sorted(p.name for p in (tmp_path / "predictions.compacted").iterdir() if p.is_dir())
    assert parts == [f"date={(START + pd.Timedelta(days=d)).date()}" for d in range(DAYS)]


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import mlcase.monitor.compact as C
    step = sys.argv[2]
    if step == "mid-files":   # SIGKILL once the first Parquet file is in place, the others not yet
        real = Path.replace
        def replace(self, target):
            out = real(self, target)
            if str(target).endswith(".parquet"):
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        Path.replace = replace
    elif step == "before-commit":   # every file written, the manifest row not yet
        real_write = C._write_parts
        def write(*a, **k):
            real_write(*a, **k)
            os.kill(os.getpid(), signal.SIGKILL)
        C._write_parts = write
    C.compact(log=sys.argv[1], before="2030-01-01")
""")


@pytest.mark.parametrize("step", ["mid-files", "before-commit", "timed"])
def test_a_compaction_killed_mid_way_loses_and_duplicates_no_row(trained, tmp_path, step):
    case = fresh_case(tmp_path, trained)
    db, ids = _log(tmp_path, trained)
    plain = tmp_path / "plain.db"
    shutil.copy(db, plain)
    if step == "timed":  # SIGKILL from outside at growing delays until one lands mid-way or the run ends
        for delay in (0.5, 1.0, 1.5, 2.0, 3.0):
            proc = subprocess.Popen([sys.executable, "-c", KILLER, str(db), "none"])
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            assert _every_row(db) == Counter(ids)
            if proc.returncode == 0:
                break
    else:
        proc = subprocess.run([sys.executable, "-c", KILLER, str(db), step], timeout=120)
        assert proc.returncode == -signal.SIGKILL
        assert not CompactedLog(db).batches()                    # nothing committed
        assert list((tmp_path / "predictions.compacted").glob("date=*/*.parquet"))  # files left behind
        assert _every_row(db) == Counter(ids)                    # ... and ignored
    again = compact(case, log=db, before="2030-01-01")
    assert _every_row(db) == Counter(ids)
    assert again.tail_rows == 0
    listed = {f for b in CompactedLog(db).batches() for f in b.files}
    on_disk = {p.relative_to(tmp_path / "predictions.compacted").as_posix()
               for p in (tmp_path / "predictions.compacted").glob("date=*/*")}
    assert on_disk == listed                                      # orphans removed
    _same(_result(case, db, trained["bundle"]), _result(case, plain, trained["bundle"]))


def test_a_compaction_killed_mid_way_leaves_no_copy_of_the_log_where_erasure_cannot_reach(trained, tmp_path):
    """A compaction copies the batch's rows (inputs, unit ids) into a scratch database. Killed before its commit,
    that copy must sit in the compacted folder, where retention, erasure and the next compaction delete it, and
    not in the system's temporary folder (where it was, one full copy per killed run, out of `mlcase forget`'s
    reach)."""
    from mlcase.monitor.compact import SCRATCH_PREFIX, CompactedLogStore

    case = fresh_case(tmp_path, trained)
    db, ids = _log(tmp_path, trained)
    folder = tmp_path / "predictions.compacted"
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    for clean in ("retention", "compaction"):
        proc = subprocess.run([sys.executable, "-c", KILLER, str(db), "before-commit"], timeout=120,
                              env={**os.environ, "TMPDIR": str(systmp)})
        assert proc.returncode == -signal.SIGKILL
        assert not [p for p in systmp.rglob("*") if p.is_file()]      # nothing of the log outside the case
        scratch = list(folder.glob(f"{SCRATCH_PREFIX}*"))
        assert len(scratch) == 1
        con = duckdb.connect(str(scratch[0] / "c.duckdb"))
        assert con.execute("SELECT count(*) FROM rows").fetchall()[0][0] == N   # it held every row ...
        con.close()
        if clean == "retention":
            assert CompactedLogStore(db).prune(before="2000-01-01") == 0
        else:
            assert compact(case, log=db, before="2030-01-01").removed_orphans >= 1
        assert not list(folder.glob(f"{SCRATCH_PREFIX}*"))             # ... and is gone
        assert _every_row(db) == Counter(ids)


def test_monitoring_a_partitioned_log_on_dask_equals_the_local_result(trained, tmp_path, dask_engine):
    case = fresh_case(tmp_path, trained)
    db, _ = _log(tmp_path, trained)
    compact(case, log=db, before=iso(START + pd.Timedelta(days=4)))   # four partitions and a tail
    local = _result(case, db, trained["bundle"])
    on_dask = _result(case, db, trained["bundle"], engine=dask_engine)
    _same(on_dask, local)
    assert local["n_windows"] == DAYS and local["n_rows"] == N


def test_monitor_compacts_the_cases_own_log_once_enough_closed_rows_wait(trained, tmp_path):
    case = fresh_case(tmp_path, trained, monitoring={"compact_after": 1000})
    db, ids = _log(tmp_path, trained)
    res = M.monitor(case, bundle=trained["bundle"])
    assert res.compacted is not None and res.compacted["rows"] == N and res.compacted["tail_rows"] == 0
    assert M.monitor(case, bundle=trained["bundle"]).compacted is None   # nothing new waits
    con = sqlite3.connect(db)
    assert con.execute(f"SELECT count(*) FROM {MANIFEST}").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == N   # the SQLite log keeps every row
    con.close()


def test_log_compact_command_and_the_store_for_retention(trained, tmp_path, capsys):
    fresh_case(tmp_path, trained)
    (tmp_path / "case.yaml").write_text(json.dumps({"name": "mon", "decision": "whom to call", "task": "binary",
                                                    "data": {"source": "data.csv", "target": "y", "positive": "yes"},
                                                    "costs": {"false_positive": 1.0, "false_negative": 4.0}}))
    db, ids = _log(tmp_path, trained)
    assert main(["log", "compact", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == N and out["files"] == DAYS
    assert main(["log", "compact", str(tmp_path), "--log", str(tmp_path / "nope.db")]) == 2
    assert "no prediction log at" in capsys.readouterr().err
    from mlcase.case import load_case
    from mlcase.governance.stores import Subject, stores_for

    case = load_case(tmp_path)
    store, *_ = [s for s in stores_for(case, str(db)) if s.name == "compacted log"]   # registered for governance
    con = sqlite3.connect(db)
    rid = con.execute("SELECT request_id FROM predictions LIMIT 1").fetchone()[0]
    con.close()
    nobody = Subject(case, "nobody", column="unit_id")
    assert store.erase(nobody, {rid}, dry_run=True) == 1 and _every_row(db)[rid] == 1   # a dry run changes nothing
    assert store.erase(nobody, {rid}) == 1 and _every_row(db)[rid] == 0
    first_day = str((START + pd.Timedelta(days=1)).date())
    gone = store.prune(first_day)
    assert gone > 0 and not (tmp_path / "predictions.compacted" / f"date={START.date()}").exists()
    assert sum(_every_row(db).values()) == N - 1 - gone


def test_forget_reaches_the_compacted_log_and_hashed_inputs_survive_compaction(trained, tmp_path):
    """A subject logged under a keyed hash (personal data) is erased from the compacted Parquet part too, and
    monitoring then reads exactly what it reads from a log that was never compacted and had the same erasure."""
    from mlcase.governance.forget import forget
    from mlcase.governance.policy import LogPolicy

    case = fresh_case(tmp_path, trained, data={**SPEC_DATA, "id": "email"},
                      personal_data={"email": "to call the customer back"}, serving={"log_inputs": {"c": "hashed"}})
    db, ids = _log(tmp_path, trained)
    policy = LogPolicy.from_spec(case.spec)
    people = ["ana@example.com", "ben@example.com", "chloe@example.com"]
    con = sqlite3.connect(db)  # as the server logs it: the unit and column c as keyed hashes
    rows = con.execute("SELECT request_id, inputs FROM predictions").fetchall()
    con.executemany("UPDATE predictions SET unit_id = ?, inputs = ? WHERE request_id = ?",
                    [(policy.unit(people[int(r[1:]) % 3]), raw if raw == "not json" else
                      json.dumps(policy.inputs(json.loads(raw))), r) for r, raw in rows])
    con.commit()
    con.close()
    plain = tmp_path / "plain.db"
    shutil.copy(db, plain)
    compact(case, log=db, before="2030-01-01")
    files = sorted((tmp_path / "predictions.compacted").glob("date=*/*.parquet"))
    part = duckdb.sql(f"SELECT unit_id, \"inputs.c\" AS c FROM read_parquet({[str(f) for f in files]})").df()
    assert len(part) == N and part["unit_id"].str.startswith("hmac:").all()
    assert part["c"].dropna().str.startswith("hmac:").all() and part["c"].nunique() == 3   # typed, still hashed
    assert not any(p.encode() in f.read_bytes() for f in files for p in people)            # never the identifier
    hers = {r for r in ids if int(r[1:]) % 3 == 0}
    shutil.copy(files[0], files[0].with_name("part-killed-0.parquet"))   # left by a killed compaction: her rows too
    hashed = policy.unit("ana@example.com")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({[str(f) for f in files]}) WHERE unit_id = '{hashed}'"
                      ).fetchall()[0][0] == len(hers)

    receipt = forget(case, "ana@example.com", log=str(db))
    by = {s["store"]: s["rows"] for s in receipt["stores"]}
    assert by["compacted log"] == len(hers)
    left = _every_row(db)
    assert not hers & set(left) and sum(left.values()) == N - len(hers)
    files = sorted((tmp_path / "predictions.compacted").glob("date=*/*.parquet"))
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet({[str(f) for f in files]}) WHERE unit_id = '{hashed}' "
                      f"OR request_id IN ({', '.join(repr(r) for r in hers)})").fetchall()[0][0] == 0
    assert sorted(p.name for p in (tmp_path / "predictions.compacted").rglob("*")
                  if p.is_file() and p.name != ".compact.lock") == sorted(f.name for f in CompactedLog(db).files())
    forget(case, "ana@example.com", log=str(plain))   # the same erasure on a log never compacted
    erased = _result(case, db, trained["bundle"])
    assert erased["n_rows"] == N - len(hers)
    _same(erased, _result(case, plain, trained["bundle"]))
