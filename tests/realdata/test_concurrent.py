"""Two commands on one case at the same time, on a real table (ISLR ``Default``, 4,000 loans, ``loan_id`` as data.id).

Each race is made deterministic: the other command is a second process holding the case's lock (what ``mlcase run``
holds for its whole length), or an erasure committed exactly between a label's lookup and its insert.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlcase import tracking
from mlcase.cli import main
from mlcase.governance.forget import forget
from mlcase.serve.predlog import PredictionLog, attach_labels, now_iso, open_backend, prediction_row
from tests.serving_case import bundle, default_frame, make_case, register


@pytest.fixture
def loans(tmp_path):
    """The Default case with two registered versions: 1 champion (logistic), 2 candidate (LightGBM)."""
    case, ds = make_case(tmp_path / "loans", data="default")
    register(case, bundle(ds, "logistic"), aliases=["champion"])
    register(case, bundle(ds, "lightgbm"), aliases=["candidate"])
    return case, ds


class HeldBy:
    """Another process holding ``case``'s lock as ``command`` (a run in progress), until the block ends."""

    def __init__(self, case, command: str = "run"):
        code = textwrap.dedent(f"""
            import sys
            from mlcase.case import load_case
            from mlcase.lock import case_lock
            with case_lock(load_case({str(case.root)!r}), {command!r}):
                print("held", flush=True)
                sys.stdin.read()   # until the test closes it
        """)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def __enter__(self) -> int:
        assert self.proc.stdout.readline().strip() == "held"
        return self.proc.pid

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _refused(capsys, argv: list[str], pid: int) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) <= 2 and "Traceback" not in err, err
    assert "another mlcase run is running" in err and f"pid {pid}" in err, err
    return err


@pytest.mark.timeout(300)  # a hang guard, not a timing assertion
def test_promote_and_rollback_are_refused_while_a_run_holds_the_case(loans, capsys):
    """`mlcase promote` during `mlcase run` went through: it read the readiness and decision the run was rewriting,
    and the run's own move of the champion could record the wrong 'from'. Now it says who holds the case."""
    case, _ = loans
    with HeldBy(case) as pid:
        _refused(capsys, ["promote", str(case.root), "--version", "2", "--force"], pid)
        _refused(capsys, ["rollback", str(case.root), "--to", "2"], pid)
    assert tracking.alias_version(case, "champion") == 1   # nothing moved
    assert tracking.release_history(case) == []   # and nothing was recorded
    assert main(["promote", str(case.root), "--version", "2", "--force"]) == 0   # after the run: as before
    assert tracking.alias_version(case, "champion") == 2


@pytest.mark.timeout(300)
def test_report_is_refused_while_a_run_holds_the_case(loans, capsys):
    """`mlcase report` during a run built a report of half-written results ("5 not run yet"), and one that ended
    after the run replaced the run's full report."""
    case, _ = loans
    assert main(["check", str(case.root)]) == 0
    assert main(["report", str(case.root)]) == 0
    page = case.root / "report" / "index.html"
    before = page.read_bytes()
    capsys.readouterr()
    with HeldBy(case) as pid:
        _refused(capsys, ["report", str(case.root)], pid)
    assert page.read_bytes() == before


def test_a_label_whose_prediction_is_erased_after_its_lookup_is_not_stored(loans):
    """`mlcase label` (or POST /labels, /feedback) looks the request ids up, then inserts; a `forget` committed in
    between left the forgotten subject's labels in the log, with their request ids. Now the insert itself checks."""
    case, _ = loans
    ids = [str(v) for v in default_frame(30)["loan_id"]]   # data.id, logged raw as unit_id
    subject = ids[0]
    units = [subject if k % 3 == 0 else ids[k] for k in range(30)]   # 10 requests of the subject, 20 of others
    log = PredictionLog(str(case.root / "predictions.db"))
    log.write([prediction_row(request_id=f"req-{k:02d}", ts=now_iso(), model_version=1, tier="model", fallback=0,
                              unit_id=units[k], arm="model", inputs="{}", score=0.1, prediction="No", decision="auto")
               for k in range(30)])
    log.close()
    backend = open_backend(str(case.root / "predictions.db"))

    class ForgetAfterLookup:   # the erasure commits between attach_labels' lookup and its insert
        def __getattr__(self, name):
            return getattr(backend, name)

        def lookup(self, *args):
            found = backend.lookup(*args)
            forget(case, subject)
            return found

    try:
        out = attach_labels(ForgetAfterLookup(), [{"request_id": f"req-{k:02d}", "label": "Yes"} for k in range(30)],
                            "file:late.csv")
    finally:
        backend.close()
    assert (out["attached"], out["unknown"]) == (20, 10)
    assert set(out["unknown_request_ids"]) == {f"req-{k:02d}" for k in range(0, 30, 3)}
    con = sqlite3.connect(case.root / "predictions.db")
    labelled = {r[0] for r in con.execute("SELECT request_id FROM labels")}
    orphans = con.execute("SELECT count(*) FROM labels WHERE request_id NOT IN (SELECT request_id FROM predictions)")
    assert (len(labelled), orphans.fetchone()[0]) == (20, 0)
    con.close()
    gone = [f"req-{k:02d}".encode() for k in range(0, 30, 3)]
    assert not [p.name for p in Path(case.root).rglob("predictions.db*") if any(g in p.read_bytes() for g in gone)]


def _log_loans(case, frame, first: int, n: int) -> list[str]:
    """``n`` requests for the loans of ``frame`` from row ``first``, logged now through the server's writer."""
    import json

    ids = [f"req-{k:03d}" for k in range(first, first + n)]
    log = PredictionLog(str(case.root / "predictions.db"))
    log.write([prediction_row(request_id=rid, ts=now_iso(), model_version=1, tier="model", fallback=0,
                              unit_id=str(row["loan_id"]), arm="model", score=0.1, prediction="No", decision="auto",
                              inputs=json.dumps({k: row[k] for k in ("student", "balance", "income")}))
               for rid, (_, row) in zip(ids, frame.iloc[first:first + n].iterrows(), strict=True)])
    log.close()
    return ids


def test_a_compaction_asked_past_now_stops_at_the_current_window_so_later_rows_are_compacted_later(tmp_path, capsys):
    """`mlcase log compact --before <a time after now>` while the server logged: the batch covered every time up to
    that cut, so the rows logged afterwards (times before the cut, row ids after the batch's) stayed in the live tail
    for good, and every later compaction found "nothing to compact". Now the cut stops at the start of the current
    window, says so, and a compaction once the window has closed takes those rows."""
    import datetime as dt
    from collections import Counter

    from mlcase.monitor.compact import compact
    from tests.test_compact import _every_row

    case, _ = make_case(tmp_path / "loans", data="default")
    frame = default_frame(40)
    early = _log_loans(case, frame, 0, 25)
    assert main(["log", "compact", str(case.root), "--before", "2099-01-01"]) == 0
    err = capsys.readouterr().err
    assert "past the start of the current window" in err and "2099-01-01" in err, err
    late = _log_loans(case, frame, 25, 15)   # the server goes on logging, with today's times
    db = case.root / "predictions.db"
    assert _every_row(db) == Counter(early + late)
    later = compact(case, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))   # today's window has closed
    assert later.lowered_from is None and later.tail_rows == 0
    assert _every_row(db) == Counter(early + late)   # each row once, all in the compacted part


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "run.lock"}


@pytest.mark.timeout(600)
def test_analyze_and_card_are_refused_while_a_run_holds_the_case(runs, tmp_path, capsys):
    """`mlcase analyze` and `mlcase card` read the stage results a run rewrites and write results, the report, the card
    and label_audit.csv: during a run they built them from half-written results, and one ending after the run
    replaced the run's own. Now they say who holds the case and write nothing (MASS Boston, a finished run)."""


    done = runs.copy("boston-random", tmp_path / "boston")
    assert done["code"] == 0, done["summary"]
    case = done["case"]
    before = _files(case.root)
    assert "model_card.md" in before and any(k.startswith(".mlcase/") and k.endswith(".json") for k in before)
    capsys.readouterr()
    with HeldBy(case) as pid:
        _refused(capsys, ["analyze", str(case.root), "--budget", "5s"], pid)
        _refused(capsys, ["card", str(case.root)], pid)
    assert _files(case.root) == before   # not a byte written
    assert main(["card", str(case.root), "--no-log", "--quiet"]) == 0   # after the run: as before
