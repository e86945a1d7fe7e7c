"""A case folder this process may not write to (a read-only mount in a container, a copy without write rights), or
that arrived without its artifacts (mlflow.db committed, mlartifacts not).

Commands that only read work on it (``mlcase score`` failed on creating ``mlflow.db.lock``); commands that write
into it say so in one line, naming the file and the fix, and leave what was there unchanged (``mlcase report``
and ``mlcase card`` ended in "internal error (PermissionError ...)"); the serving log is read from it
(``mlcase monitor`` failed with "attempt to write a readonly database": SQLite creates a WAL log's
shared-memory file even to read it); a case moved there, whose store cannot follow the move, is said.

As root the permission bits bind only without the capabilities that override them, so the commands run under
``setpriv`` with those dropped (the test is skipped where that is not possible); as any other user they run as
they are.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving_case import bundle, make_case, register

CLI = "import sys; from mlcase.cli import main; sys.exit(main(sys.argv[1:]))"


def _without_write_rights() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made to bind")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


def _run(args: list[str], code: str = CLI) -> subprocess.CompletedProcess:
    return subprocess.run([*_without_write_rights(), sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _freeze(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    folder.chmod(0o555)


def _thaw(folder: Path) -> None:
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture()
def frozen(tmp_path):
    """A case with a registered champion, its report and card written, then made read-only."""
    case, ds = make_case(tmp_path / "case", data="default", n=1500)
    register(case, bundle(ds, "logistic"), aliases=["champion"])
    from mlcase.cli import main

    assert main(["check", str(case.root), "-q"]) == 0   # stage results for the report
    assert main(["report", str(case.root), "-q"]) == 0 and main(["card", str(case.root)]) == 0
    ds.X_test.head(40).to_csv(tmp_path / "in.csv", index=False)
    _freeze(case.root)
    yield case, tmp_path
    _thaw(case.root)


def test_reading_commands_work_and_writing_ones_say_so_on_a_read_only_case(frozen):
    case, tmp = frozen
    report = case.root / "report" / "index.html"
    before = report.read_bytes(), (case.root / "model_card.md").read_bytes()
    out = _run(["score", str(case.root), str(tmp / "in.csv"), "-o", str(tmp / "out.csv")])
    assert out.returncode == 0, out.stderr[-1500:]
    import pandas as pd

    scored = pd.read_csv(tmp / "out.csv")
    assert len(scored) == 40 and scored["score"].between(0, 1).all()
    for cmd, path in (("report", report), ("card", case.root / "model_card.md")):
        out = _run([cmd, str(case.root)])
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, out.stderr[-1500:]
        assert lines[0].startswith(f"mlcase: error: permission denied: {path};") and "internal error" not in lines[0]
        assert "writable copy of the folder" in lines[0]
    assert (report.read_bytes(), (case.root / "model_card.md").read_bytes()) == before   # unchanged


def test_a_case_moved_to_a_read_only_folder_says_its_store_cannot_follow(tmp_path):
    case, ds = make_case(tmp_path / "case", data="default", n=1500)
    register(case, bundle(ds, "logistic"), aliases=["champion"])
    moved = tmp_path / "mounted"
    shutil.copytree(case.root, moved)
    shutil.rmtree(moved / ".mlcase", ignore_errors=True)   # no registry answer remembered from the old folder
    _freeze(moved)
    try:
        out = _run(["models", str(moved)])
    finally:
        _thaw(moved)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-1500:]
    assert f"this case was moved from {case.root.resolve()} to {moved.resolve()}" in lines[0]
    assert "rewrites the store" in lines[0]


def test_a_serving_log_in_wal_mode_is_read_from_a_read_only_folder(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    db = folder / "predictions.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE predictions (request_id TEXT, score REAL)")
    con.executemany("INSERT INTO predictions VALUES (?, ?)", [(f"r{i}", i / 10) for i in range(7)])
    con.commit()
    con.close()
    assert not Path(f"{db}-wal").exists()   # closed: checkpointed
    _freeze(folder)
    try:
        plain = _run([str(db)], "import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
                                "print(c.execute('SELECT count(*) FROM predictions').fetchone()[0])")
        ours = _run([str(db)], "import sys; from mlcase.serve.predlog import connect_read_only; "
                               "print(connect_read_only(sys.argv[1]).execute('SELECT count(*) FROM predictions')"
                               ".fetchone()[0])")
    finally:
        _thaw(folder)
    assert plain.returncode != 0 and "readonly database" in plain.stderr   # what the monitor met
    assert ours.returncode == 0 and ours.stdout.strip() == "7", ours.stderr[-1500:]


def test_serving_from_a_read_only_case_names_the_folder_it_cannot_write(frozen):
    """`mlcase serve` on a case folder this user may not write: the refusal said "cannot open it (OperationalError:
    unable to open database file)" and sent the user to "a SQLAlchemy URL whose database driver is installed"."""
    case, _ = frozen
    out = _run(["serve", str(case.root), "--port", "1"])
    err = [line for line in out.stderr.strip().splitlines() if line.startswith("mlcase: error:")]
    assert out.returncode == 2 and len(err) == 1, out.stderr[-1500:]
    assert err[0] == (f"mlcase: error: prediction log {case.root / 'predictions.db'}: cannot write it ({case.root} is "
                      f"not writable by this user); make {case.root} writable by the user mlcase runs as, or pass "
                      "--log (or set serving.log) to a path it may write")


def test_a_data_file_this_process_may_not_read_is_one_line(tmp_path):
    case, _ = make_case(tmp_path / "case", data="default", n=800)
    data = case.root / "data.csv"
    data.chmod(0)
    try:
        out = _run(["check", str(case.root)])
    finally:
        data.chmod(0o644)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-1500:]
    assert lines[0] == (f"mlcase: error: permission denied: {data}; make it readable by the user mlcase runs as, or "
                        "run mlcase as one who may read it")


def test_a_case_copied_without_its_artifacts_says_what_is_missing(tmp_path, capfd):
    """A case folder committed or copied with mlflow.db but without mlartifacts (ignored by git, say): MLflow says
    only "Failed to download artifacts from path ..., please ensure that the path is correct", and `mlcase score`
    ended in "internal error". It now names the missing folder and the fix."""
    from mlcase.cli import main

    case, ds = make_case(tmp_path / "case", data="default", n=800)
    register(case, bundle(ds, "logistic"), aliases=["champion"])
    copy = tmp_path / "checkout"
    shutil.copytree(case.root, copy, ignore=shutil.ignore_patterns("mlartifacts", ".mlcase"))
    ds.X_test.head(5).to_csv(tmp_path / "in.csv", index=False)
    capfd.readouterr()
    assert main(["score", str(copy), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]) == 2
    err = [line for line in capfd.readouterr().err.strip().splitlines() if line.startswith("mlcase: error:")]
    assert len(err) == 1 and "its files are missing (" in err[0] and str(copy / "mlartifacts") in err[0]
    assert "restore mlartifacts beside mlflow.db" in err[0] and "internal error" not in err[0]
    assert not (tmp_path / "out.csv").exists()


def test_a_registered_version_missing_one_file_names_the_file_not_a_scratch_copy(tmp_path, capfd):
    """A case folder whose mlartifacts lost one file of a bundle (a partial copy): the refusal said "no mlcase model
    bundle in <the case's .mlcase/scratch/load-bundle-...>", a folder deleted by the time the user read it."""
    from mlcase.bundle import MODEL_FILE
    from mlcase.cli import main

    case, ds = make_case(tmp_path / "case", data="default", n=800)
    register(case, bundle(ds, "logistic"), aliases=["champion"])
    copy = tmp_path / "checkout"
    shutil.copytree(case.root, copy, ignore=shutil.ignore_patterns(".mlcase"))
    gone = list((copy / "mlartifacts").rglob(MODEL_FILE))   # the run's bundle and MLflow's logged model
    assert gone
    for p in gone:
        p.unlink()
    ds.X_test.head(5).to_csv(tmp_path / "in.csv", index=False)
    capfd.readouterr()
    assert main(["score", str(copy), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]) == 2
    err = [line for line in capfd.readouterr().err.strip().splitlines() if line.startswith("mlcase: error:")]
    assert len(err) == 1 and f"registered version 1: {MODEL_FILE} is missing from its registered files" in err[0]
    assert "scratch" not in err[0] and "restore mlartifacts beside mlflow.db" in err[0]
    assert not (tmp_path / "out.csv").exists()


def test_a_disk_that_fills_up_while_the_report_is_written_leaves_the_old_report(tmp_path):
    """The report written past the process's file size limit, as on a disk that fills up under it: one line with the fix, exit 2, and the report that was there is the same, with no temporary file
    left beside it."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("no prlimit to set a file size limit")
    case, _ = make_case(tmp_path / "case", data="default", n=1500)
    from mlcase.cli import main

    assert main(["check", str(case.root), "-q"]) == 0 and main(["report", str(case.root), "-q"]) == 0
    report = case.root / "report" / "index.html"
    before = report.read_bytes()
    assert len(before) > 20_000
    out = subprocess.run([prlimit, "--fsize=10000", sys.executable, "-c", CLI, "report", str(case.root)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-1500:]
    assert lines[0].startswith("mlcase: error: file too large") and "what was there is unchanged" in lines[0]
    assert report.read_bytes() == before and sorted(p.name for p in report.parent.iterdir()) == ["index.html"]
