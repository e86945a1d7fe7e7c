"""A change of log key between two server runs: the hashed units of one woman under two keys.

``serving.log_inputs: {woman: hashed}`` logs the HMAC of mlmRev::Contraception's data.id under ``MLCASE_LOG_KEY``
(else the machine's key file). The test women served by one real ``mlcase serve`` with ``MLCASE_LOG_KEY`` set, then
by a second one started without it (a restart that fell back to the key file: another key), were 2 x the women to
monitoring, and nothing in the log said why: the precision interval narrowed as if each woman were two. ``mlcase
forget`` erased the subject's row under the current key and reported a clean erasure, though her row under the other
key was still in the log. Each row hashed now carries ``log_key_id`` (:func:`mlcase.bundle.key_id` of the log key):
monitoring warns when the hashed units come from more than one key (rows per key, the fix), ``forget`` says its
erasure is not complete, a server started with another key than the log's latest hashed rows says so at start
(/ready's notes), ``mlcase log compact`` carries the column into Parquet (also for a log upgraded mid-window, whose
first chunk of a batch has no key id: that chunk's all-NULL column was typed "NULL" and compaction crashed), and a
log written before the column (migrated on open, nothing lost) warns nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlcase.bundle import key_id
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.data import prepare
from mlcase.governance.forget import forget
from mlcase.governance.pseudonym import Pseudonymizer, unit_text
from mlcase.monitor import monitor
from tests.e2e.test_server import mlcase_serve

from .tables import said

pytestmark = pytest.mark.slow

KEY_A = "log-key-a-0123456789abcdef0123456789"
ONE = 80   # women served twice under one key


def _case(runs, dest: Path) -> tuple[Path, list[dict], list, list]:
    folder = runs.copy("contraception-group", dest)["folder"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["serving"] = {**(spec.get("serving") or {}), "log_inputs": {"woman": "hashed"}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ds = prepare(load_case(folder))
    rows = ds.rows("test").drop(columns=["use"])
    recs = json.loads(rows.to_json(orient="records"))
    truth = [ds.classes[int(v)] for v in ds.y[ds.split.test]]
    return folder, recs, truth, [str(r["woman"]) for r in recs]


def _serve(folder: Path, recs: list[dict], truth: list) -> list[str]:
    """A real ``mlcase serve`` of ``folder`` on 127.0.0.1 answers ``recs`` (100 a request) and takes every answer's
    outcome through ``POST /labels``; then it stops (tests.serving_case.serve_labelled, batched). Returns /ready's
    notes."""
    import httpx

    with mlcase_serve(folder) as (url, _, ready):
        rids = []
        for k in range(0, len(recs), 100):
            r = httpx.post(f"{url}/predict", json=recs[k:k + 100], timeout=60)
            assert r.status_code == 200, r.text
            rids += [a["request_id"] for a in r.json()["predictions"]]
        labels = [{"request_id": q, "label": y} for q, y in zip(rids, truth, strict=True)]
        r = httpx.post(f"{url}/labels", json=labels, timeout=60)
        assert r.status_code == 200 and r.json()["attached"] == len(recs), r.text
    return ready["notes"]


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory) -> dict:
    """The test women served by a real server with MLCASE_LOG_KEY; then, in one copy, by a second server restarted
    without it (the key file of this machine's config folder: another key), and in another copy the first ONE of
    them by a second server with the same key."""
    from mlcase.bundle import signing_key

    tmp = tmp_path_factory.mktemp("log-key")
    # the shared run is made (or copied) under this machine's keys: made under the temporary config folder below,
    # its models were signed with that folder's key, and every other test of the session refused to load them
    two, recs, truth, women = _case(runs, tmp / "two-keys")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCASE_SIGNING_KEY", signing_key().decode("utf-8"))   # the models' key, whatever the folder
        mp.setenv("XDG_CONFIG_HOME", str(tmp / "config"))   # the fallback log key file: here, never the user's
        mp.setenv("MLCASE_LOG_KEY", KEY_A)
        first = _serve(two, recs, truth)
        one = Path(shutil.copytree(two, tmp / "one-key"))
        same = _serve(one, recs[:ONE], truth[:ONE])        # a restart with the same key
        mp.delenv("MLCASE_LOG_KEY")
        other = _serve(two, recs, truth)                    # a restart without the env var
        file_key = (tmp / "config" / "mlcase" / "log.key").read_bytes().strip()
    return {"two": two, "one": one, "women": women, "file_key": file_key, "tmp": tmp,
            "notes": {"first": first, "same": same, "other": other}}


@pytest.fixture
def key_a(monkeypatch, served):
    from mlcase.bundle import signing_key

    monkeypatch.setenv("MLCASE_SIGNING_KEY", signing_key().decode("utf-8"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(served["tmp"] / "config"))
    monkeypatch.setenv("MLCASE_LOG_KEY", KEY_A)


def _log(folder: Path) -> pd.DataFrame:
    with sqlite3.connect(folder / "predictions.db") as con:
        return pd.read_sql("SELECT request_id, unit_id, log_key_id FROM predictions", con)


def _key_warnings(res) -> list[dict]:
    return [w for w in res.warnings if w["kind"] == "log_keys"]


def test_each_hashed_row_carries_the_id_of_its_key(served):
    log, n = _log(served["two"]), len(served["women"])
    ids = {key_id(KEY_A.encode()): n, key_id(served["file_key"]): n}
    assert log["log_key_id"].value_counts().to_dict() == ids          # was: no log_key_id column
    assert log["unit_id"].str.startswith("hmac:").all()
    assert log["unit_id"].nunique() == 2 * len(set(served["women"]))   # one woman, two unrelated hashes


def test_a_server_restarted_with_another_key_says_so_at_start(served):
    """/ready's notes (printed by `mlcase serve` at start) name both keys and the fix; a restart with the same key
    and the first server say nothing of keys."""
    notes = served["notes"]
    assert not any("log key" in n for n in notes["first"] + notes["same"])
    (note,) = [n for n in notes["other"] if "log key" in n]                 # was: nothing
    assert f"log key {key_id(KEY_A.encode())}" in note and f"key {key_id(served['file_key'])}" in note
    assert "MLCASE_LOG_KEY is not set" in note and "restart with MLCASE_LOG_KEY" in note


def test_monitoring_says_the_units_come_from_two_keys(served, key_a):
    women = len(set(served["women"]))
    res = monitor(served["two"])
    real = res.windows[0].get("realized") or res.windows[0]["realized_so_far"]
    assert (real["n"], real["units"]) == (2 * women, 2 * women)   # what the log can tell: units cannot be matched
    (w,) = _key_warnings(res)                                      # was: no warning at all
    n = len(served["women"])
    assert w["keys"] == {key_id(KEY_A.encode()): n, key_id(served["file_key"]): n}
    msg = w["message"]
    assert "2 different log keys" in msg and f"{n:,} row(s), {women:,} unit(s)" in msg
    assert "cannot be matched" in msg and "keep one MLCASE_LOG_KEY" in msg
    code, text = said("monitor", str(served["two"]))
    assert code == 0 and "2 different log keys" in " ".join(text.split())   # the CLI prints it


def test_one_key_across_restarts_counts_each_woman_once_and_warns_nothing(served, key_a):
    log = _log(served["one"])
    assert log["log_key_id"].value_counts().to_dict() == {key_id(KEY_A.encode()): len(served["women"]) + ONE}
    res = monitor(served["one"])
    real = res.windows[0].get("realized") or res.windows[0]["realized_so_far"]
    assert (real["n"], real["units"]) == (len(served["women"]) + ONE, len(set(served["women"])))
    assert _key_warnings(res) == []


def test_forget_says_rows_under_another_key_were_not_searched(served, key_a, tmp_path):
    folder = Path(shutil.copytree(served["two"], tmp_path / "case"))
    woman = served["women"][0]
    other = Pseudonymizer(load_case(folder).name, key=served["file_key"])("woman", unit_text(woman))
    receipt = forget(load_case(folder), woman)
    log = _log(folder)
    assert receipt["rows"] == 2                                  # her row under this key and its label
    assert (log["unit_id"] == other).sum() == 1                  # her row under the other key is still there
    n = len(served["women"])                                    # every row under the other key: hers among them
    assert receipt["other_key_rows"] == {f"prediction log|{folder / 'predictions.db'}": {key_id(served["file_key"]): n}}
    note = receipt["notes"][0]                                   # was: a clean erasure, no word of the other key
    assert note.startswith("NOT A COMPLETE ERASURE") and key_id(served["file_key"]) in note
    assert f"key {key_id(KEY_A.encode())}" in note and f"{n:,} row(s)" in note and "MLCASE_LOG_KEY" in note
    code, text = said("forget", str(folder), "--subject", served["women"][1])
    assert code == 0 and "not complete" in text.splitlines()[0]
    assert "NOT A COMPLETE ERASURE" in " ".join(text.split())


def test_forget_with_one_key_is_a_clean_erasure(served, key_a, tmp_path):
    folder = Path(shutil.copytree(served["one"], tmp_path / "case"))
    receipt = forget(load_case(folder), served["women"][0])
    assert receipt["rows"] == 4 and receipt["other_key_rows"] == {}   # both requests and their labels
    assert not any("COMPLETE ERASURE" in n for n in receipt["notes"])


def test_compaction_carries_the_key_id_and_monitoring_reads_it(served, key_a, tmp_path):
    folder = Path(shutil.copytree(served["two"], tmp_path / "case"))
    before = monitor(folder)
    with sqlite3.connect(folder / "predictions.db") as con:   # two days older: their window is closed
        con.execute("UPDATE predictions SET ts = strftime('%Y-%m-%dT%H:%M:%fZ', ts, '-2 days')")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["log", "compact", str(folder)]) == 0
    parts = list((folder / "predictions.compacted").rglob("*.parquet"))
    assert parts
    compacted = pd.concat([pd.read_parquet(p, columns=["log_key_id"]) for p in parts])
    n = len(served["women"])
    assert compacted["log_key_id"].value_counts().to_dict() == {key_id(KEY_A.encode()): n,
                                                                key_id(served["file_key"]): n}
    with sqlite3.connect(folder / "predictions.db") as con:   # the live tail is empty: every row is read from Parquet
        con.execute("UPDATE predictions SET log_key_id = NULL")
    (w,) = _key_warnings(monitor(folder))
    assert w["keys"] == _key_warnings(before)[0]["keys"]
    # the SQLite log's copies of the rows now say no key: the other key's rows forget finds are the Parquet ones
    receipt = forget(load_case(folder), served["women"][0])
    assert receipt["other_key_rows"] == {f"compacted log|{folder / 'predictions.compacted'}":
                                         {key_id(served["file_key"]): n}}


def test_a_log_written_before_the_column_warns_nothing_and_keeps_its_rows(served, key_a, tmp_path):
    from mlcase.serve.predlog import open_backend

    folder = Path(shutil.copytree(served["two"], tmp_path / "case"))
    db = folder / "predictions.db"
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE predictions DROP COLUMN log_key_id")
        old = pd.read_sql("SELECT * FROM predictions ORDER BY request_id", con)
    res = monitor(folder)                                     # read-only: no column, no warning, no crash
    assert _key_warnings(res) == []
    receipt = forget(load_case(folder), served["women"][0])   # opens the log for writing: the column is added
    assert receipt["other_key_rows"] == {} and receipt["rows"] == 2
    open_backend(str(db)).close()
    with sqlite3.connect(db) as con:
        new = pd.read_sql("SELECT * FROM predictions ORDER BY request_id", con)
    assert new["log_key_id"].isna().all() and len(new) == len(old) - 1
    kept = old[old["request_id"].isin(new["request_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(new.drop(columns=["log_key_id"]), kept)


def test_a_records_file_with_log_key_id_is_read_as_the_log_is(served, key_a, tmp_path):
    """Records exported from the log (inputs, request_id, unit_id, log_key_id, score, decision) warn as the log does;
    without the log_key_id column they warn nothing."""
    with sqlite3.connect(served["two"] / "predictions.db") as con:
        log = pd.read_sql("SELECT request_id, ts, unit_id, log_key_id, score, decision, inputs FROM predictions", con)
    inputs = pd.DataFrame([json.loads(v) for v in log.pop("inputs")])
    recs = pd.concat([log, inputs.drop(columns=["woman"], errors="ignore")], axis=1)
    recs.to_csv(tmp_path / "records.csv", index=False)
    (w,) = _key_warnings(monitor(served["two"], log=tmp_path / "records.csv"))   # was: no warning
    assert w["keys"] == _key_warnings(monitor(served["two"]))[0]["keys"]
    recs.drop(columns=["log_key_id"]).to_csv(tmp_path / "old.csv", index=False)
    assert _key_warnings(monitor(served["two"], log=tmp_path / "old.csv")) == []


def test_compaction_of_a_log_upgraded_mid_window(served, key_a, tmp_path, monkeypatch):
    """The rows logged before the upgrade have no key id, the later ones have one: when a batch's first chunk holds
    only the older rows, the column was typed "NULL" and the next chunk's key ids could not be cast to it (was:
    `mlcase log compact` failed with an internal error, ConversionException VARCHAR -> "NULL")."""
    from mlcase.monitor import compact as compact_mod

    folder = Path(shutil.copytree(served["two"], tmp_path / "case"))
    n = len(served["women"])
    with sqlite3.connect(folder / "predictions.db") as con:
        con.execute("UPDATE predictions SET ts = strftime('%Y-%m-%dT%H:%M:%fZ', ts, '-2 days')")
        con.execute("UPDATE predictions SET log_key_id = NULL WHERE log_key_id = ?", (key_id(KEY_A.encode()),))
        first = con.execute("SELECT log_key_id FROM predictions ORDER BY rowid LIMIT 200").fetchall()
    assert {v for (v,) in first} == {None}            # the first chunk of the batch: the rows before the upgrade
    monkeypatch.setattr(compact_mod, "CHUNK_ROWS", 200)   # 100,000 rows a chunk in a real log; 200 here
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        assert main(["log", "compact", str(folder)]) == 0, out.getvalue()
    parts = list((folder / "predictions.compacted").rglob("*.parquet"))
    compacted = pd.concat([pd.read_parquet(p, columns=["request_id", "log_key_id"]) for p in parts])
    assert len(compacted) == 2 * n
    assert compacted["log_key_id"].isna().sum() == n
    assert (compacted["log_key_id"] == key_id(served["file_key"])).sum() == n
    assert _key_warnings(monitor(folder)) == []        # one key among the rows that say theirs


def test_forget_counts_other_key_rows_in_a_records_file_it_is_given(served, key_a, tmp_path):
    """A --file of log rows with unit_id and log_key_id: its rows under the other key are counted as the log's are."""
    folder = Path(shutil.copytree(served["two"], tmp_path / "case"))
    with sqlite3.connect(folder / "predictions.db") as con:
        rows = pd.read_sql("SELECT request_id, ts, unit_id, log_key_id, score FROM predictions", con)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    receipt = forget(load_case(folder), served["women"][0], files=[tmp_path / "rows.csv"])
    n, other = len(served["women"]), key_id(served["file_key"])
    files = {k: v for k, v in receipt["other_key_rows"].items() if k.endswith("rows.csv")}
    assert list(files.values()) == [{other: n}]                   # was: the file's other-key rows went unsaid
    assert len(pd.read_csv(tmp_path / "rows.csv")) == 2 * n - 1   # her row under this key left the file too
