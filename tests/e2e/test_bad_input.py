"""Bad input through every CLI command: one line, exit 2, and nothing already written is touched.

One small case (1,500 rows of ISLR ``Default``, ``candidates: [logistic]``; the session fixture
``trained`` of ``conftest.py``) is run once with a model registered, a report, a card and a
prediction log; each test works on a copy of it, breaks
one thing, runs the command in-process and checks: the documented exit code, exactly one
``mlcase: error:`` line on stderr naming the thing (and the fix), no traceback, no "internal
error", and every file that existed before byte-for-byte the same.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from mlcase.cli import main


# --------------------------------------------------------------------------- helpers
def _edit_spec(**changes):
    """A setup step: set (or, with None, delete) dotted keys of case.yaml."""
    def setup(case: Path) -> None:
        spec = yaml.safe_load((case / "case.yaml").read_text())
        for key, value in changes.items():
            *parents, last = key.split("__")
            node = spec
            for p in parents:
                node = node.setdefault(p, {})
            if value is None:
                node.pop(last, None)
            else:
                node[last] = value
        (case / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return setup


def _write(name: str, text: str):
    def setup(case: Path) -> None:
        (case / name).write_text(text)
    return setup


def _remove(*names: str):
    def setup(case: Path) -> None:
        for name in names:
            p = case / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return setup


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file's hash but the registry memo's (``.mlcase/cache``): a command that loads a model before it meets the
    bad input writes what the registry answered, unless the store was written within the racy window just before
    (tracking._remembered), so whether it appears depended on how loaded the machine was, not on the input."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[:2] != (".mlcase", "cache")}


def _rule(expression: str):
    return _edit_spec(baselines=["majority", "linear", {"rule": expression}])


# (id, argv, setup, stdin, expected exit code, words the error line must contain)
CASES = [
    # init
    ("init-out-folder-missing", ["init", "default.csv", "--target", "default", "-o", "nodir/case.yaml"], None, None, 2,
     ["-o", "nodir", "does not exist"]),
    ("init-data-missing", ["init", "nope.csv", "--target", "default", "-o", "new.yaml"], None, None, 2,
     ["DATA", "nope.csv"]),
    ("init-target-missing", ["init", "default.csv", "--target", "nope", "-o", "new.yaml"], None, None, 2,
     ["--target 'nope'", "pick one of"]),
    ("init-case-exists", ["init", "default.csv", "--target", "default"], None, None, 2,
     ["case.yaml already exists", "--force"]),
    # run / check / bakeoff: the spec against the data
    ("run-bad-budget", ["run", "--budget", "fast"], None, None, 2, ["budget", "'fast'", "90s"]),
    ("run-rule-unknown-column", ["run", "--budget", "3s"], _rule("nope > 3"), None, 2,
     ["baselines[2].rule", "unknown column 'nope'"]),
    ("check-rule-unknown-column", ["check"], _rule("nope > 3"), None, 2, ["baselines[2].rule", "unknown column 'nope'"]),
    ("run-rule-statement", ["run", "--budget", "3s"], _rule("1; DROP TABLE x"), None, 2,
     ["baselines[2].rule", "';' is not allowed"]),
    ("check-rule-statement", ["check"], _rule("1; DROP TABLE x"), None, 2, ["baselines[2].rule", "';' is not allowed"]),
    ("run-rule-read-csv", ["run", "--budget", "3s"], _rule("read_csv('/etc/passwd') IS NOT NULL"), None, 2,
     ["baselines[2].rule", "read_csv() is not allowed"]),
    ("check-rule-read-csv", ["check"], _rule("read_csv('/etc/passwd') IS NOT NULL"), None, 2,
     ["baselines[2].rule", "read_csv() is not allowed"]),
    ("check-rule-wrong-type", ["check"], _rule("student > 3"), None, 2, ["baselines[2].rule", "DuckDB cannot evaluate"]),
    ("check-rule-reads-the-id", ["check"], _rule("account_id > 3"), None, 2,
     ["baselines[2].rule", "'account_id'", "not among the model's features"]),
    ("bakeoff-rule-unknown-column", ["bakeoff", "--budget", "3s"], _rule("nope > 3"), None, 2,
     ["baselines[2].rule", "unknown column 'nope'"]),
    ("run-assumption-not-boolean", ["run", "--budget", "3s"],
     _edit_spec(assumptions=[{"text": "balances are high", "check": "avg(balance)"}]), None, 2,
     ["assumptions[0].check", "not true or false"]),
    ("check-assumption-not-boolean", ["check"],
     _edit_spec(assumptions=[{"text": "balances are high", "check": "avg(balance)"}]), None, 2,
     ["assumptions[0].check", "not true or false"]),
    ("run-cost-missing-column", ["run", "--budget", "3s"], _edit_spec(costs__false_negative="0.7 * nope"), None, 2,
     ["costs.false_negative", "unknown column 'nope'"]),
    ("check-cost-missing-column", ["check"], _edit_spec(costs__false_negative="0.7 * nope"), None, 2,
     ["costs.false_negative", "unknown column 'nope'"]),
    ("run-cost-wrong-type", ["run", "--budget", "3s"], _edit_spec(costs__false_negative="0.7 * student"), None, 2,
     ["costs.false_negative", "DuckDB cannot evaluate"]),
    ("run-capacity-count-without-volume", ["run", "--budget", "3s"],
     _edit_spec(constraints__review_capacity="300/day", problem__volume=None), None, 2,
     ["review_capacity '300/day'", "problem.volume"]),
    ("run-slice-missing-column", ["run", "--budget", "3s"], _edit_spec(slices=["nope"]), None, 2, ["slices: 'nope'"]),
    ("run-tracking-unreachable", ["run", "--budget", "3s"], _edit_spec(tracking_uri="http://127.0.0.1:9"), None, 2,
     ["tracking_uri http://127.0.0.1:9", "cannot reach"]),
    ("run-tracking-malformed", ["run", "--budget", "3s"], _edit_spec(tracking_uri="bogus://x y"), None, 2,
     ["tracking_uri 'bogus://x y'", "sqlite:///"]),
    ("models-tracking-unreachable", ["models"], _edit_spec(tracking_uri="http://127.0.0.1:9"), None, 2,
     ["tracking_uri", "cannot reach"]),
    ("run-mlflow-db-not-a-database", ["run", "--budget", "3s"], _write("mlflow.db", "garbage"), None, 2,
     ["mlflow.db", "cannot be opened"]),
    ("models-mlflow-db-not-a-database", ["models"], _write("mlflow.db", "garbage"), None, 2,
     ["mlflow.db", "cannot be opened"]),
    # stored results
    ("leaderboard-none", ["leaderboard"], _remove(".mlcase/bakeoff.json"), None, 2, ["no bake-off results"]),
    ("leaderboard-corrupt", ["leaderboard"], _write(".mlcase/bakeoff.json", "{bad"), None, 2,
     ["bakeoff.json", "not readable JSON"]),
    ("report-corrupt", ["report"], _write(".mlcase/decision.json", "[1, 2"), None, 2, ["decision.json", "not readable JSON"]),
    ("card-corrupt", ["card", "--no-log"], _write(".mlcase/decision.json", "[1, 2"), None, 2,
     ["decision.json", "not readable JSON"]),
    ("card-no-results", ["card", "--no-log"], _remove(".mlcase"), None, 2, ["no stage results", "mlcase run"]),
    ("report-no-results", ["report"], _remove(".mlcase"), None, 2, ["no stage results", "mlcase run"]),
    # explain
    ("explain-bad-row", ["explain", "--row", "999999"], None, None, 2, ["--row '999999'", "account_id"]),
    ("explain-bad-json", ["explain"], None, "{bad json", 2, ["stdin is not valid JSON"]),
    ("explain-wrong-columns", ["explain"], None, '{"foo": 1}', 2, ["lacks the model's feature columns", "balance"]),
    ("explain-wrong-type", ["explain"], None, '{"student": "No", "balance": "lots", "income": 1}', 2,
     ["column 'balance'", "expected a number"]),
    ("explain-bad-version", ["explain", "--row", "1", "--version", "99"], None, None, 2, ["version 99"]),
    # serve (uvicorn never starts: see the fixture below)
    ("serve-no-model", ["serve", "--port", "8799"], _remove("mlflow.db", "mlartifacts"), None, 2,
     ["no registered 'champion' or 'baseline'", "mlcase run"]),
    ("serve-bad-version", ["serve", "--port", "8799", "--version", "99"], None, None, 2, ["version 99"]),
    ("serve-bad-challenger", ["serve", "--port", "8799", "--challenger", "99"], None, None, 2, ["version 99"]),
    ("serve-bad-log-url", ["serve", "--port", "8799", "--log", "bogus://x"], None, None, 2,
     ["prediction log bogus://x", "--log"]),
    # score
    ("score-input-missing", ["score", "nope.csv", "-o", "out.csv"], None, None, 2, ["nope.csv"]),
    ("score-input-lacks-columns", ["score", "in_missing.csv", "-o", "out.csv"], None, None, 2,
     ["lacks the required columns income"]),
    ("score-wrong-types", ["score", "in_types.csv", "-o", "out.csv"], None, None, 2,
     ["none of its 40 row(s) could be scored", "balance", "out.errors.csv"]),
    ("score-unsupported-input", ["score", "in.json", "-o", "out.csv"], None, None, 2, ["in.json", "unsupported file type"]),
    ("score-unsupported-output", ["score", "in.csv", "-o", "out.xlsx"], None, None, 2, ["out.xlsx", "unsupported"]),
    ("score-output-folder-missing", ["score", "in.csv", "-o", "nodir/out.csv"], None, None, 2,
     ["nodir", "does not exist"]),
    ("score-output-is-input", ["score", "out.csv", "-o", "out.csv"], None, None, 2, ["is also the input"]),
    ("score-bad-chunk-rows", ["score", "in.csv", "-o", "out.csv", "--chunk-rows", "0"], None, None, 2, ["--chunk-rows 0"]),
    ("score-bad-engine", ["score", "in.csv", "-o", "out.csv", "--engine", "spark"], None, None, 2, ["--engine 'spark'"]),
    # label
    ("label-file-missing", ["label", "nope.csv", "."], None, None, 2, ["labels file nope.csv", "no such file"]),
    ("label-file-lacks-columns", ["label", "nocols.csv", "."], None, None, 2, ["nocols.csv", "request_id, label"]),
    ("label-unknown-request-ids", ["label", "unknown_ids.csv", "."], None, None, 2,
     ["none of its 2 request id(s)", "x1"]),
    ("label-no-log", ["label", "labels.csv", "."], _remove("predictions.db"), None, 2, ["no prediction log"]),
    ("label-log-not-a-database", ["label", "labels.csv", ".", "--log", "default.csv"], None, None, 2,
     ["prediction log default.csv", "cannot open"]),
    ("label-bad-log-url", ["label", "labels.csv", ".", "--log", "bogus://x"], None, None, 2, ["prediction log bogus://x"]),
    # monitor
    ("monitor-log-missing", ["monitor", "--log", "nope.db"], None, None, 2, ["--log", "nope.db"]),
    ("monitor-log-lacks-columns", ["monitor", "--log", "nocols.csv"], None, None, 2,
     ["nocols.csv", "feature column(s)"]),
    ("monitor-log-unreadable", ["monitor", "--log", "garbage.parquet"], None, None, 2, ["--log", "garbage.parquet"]),
    ("monitor-log-not-a-log", ["monitor", "--log", "mlflow.db"], None, None, 2, ["mlflow.db", "no 'predictions' table"]),
    ("monitor-labels-missing", ["monitor", "--labels", "nope.csv"], None, None, 2, ["--labels", "nope.csv"]),
    ("monitor-labels-lack-columns", ["monitor", "--labels", "nocols.csv"], None, None, 2,
     ["--labels", "request_id, label"]),
    ("monitor-labels-unreadable", ["monitor", "--labels", "garbage.parquet"], None, None, 2, ["--labels", "garbage"]),
    ("monitor-bad-window", ["monitor", "--window", "soon"], None, None, 2, ["--window", "'soon'"]),
    ("monitor-zero-window", ["monitor", "--window", "0s"], None, None, 2, ["--window", "positive"]),
    # one fix: the duration parser's own ('; write one like ...') came first, then the window's
    ("monitor-negative-window", ["monitor", "--window", "-1d"], None, None, 2,
     ["--window: expected a positive duration, got '-1d'; give a duration such as 1d"]),
    # abtest
    ("abtest-plan-bad-mde", ["abtest", "plan", "--baseline", "0.1", "--mde", "abc"], None, None, 2, ["--mde", "'abc'"]),
    ("abtest-plan-zero-mde", ["abtest", "plan", "--baseline", "0.1", "--mde", "0"], None, None, 2, ["--mde"]),
    ("abtest-plan-bad-split", ["abtest", "plan", "--baseline", "0.1", "--mde", "0.01", "--split", "60/60"], None, None,
     2, ["--split '60/60'", "add up to 120"]),
    ("abtest-plan-history-missing", ["abtest", "plan", "--history", "nope.csv", "--metric", "rev", "--mde", "5%"],
     None, None, 2, ["nope.csv"]),
    ("abtest-plan-history-column", ["abtest", "plan", "--history", "exp.csv", "--metric", "nope", "--mde", "5%"],
     None, None, 2, ["'nope'", "--metric"]),
    ("abtest-assign-missing", ["abtest", "assign", "--salt", "s", "nope.csv"], None, None, 2, ["nope.csv"]),
    ("abtest-assign-bad-split", ["abtest", "assign", "--salt", "s", "--split", "60/60", "ids.csv"], None, None, 2,
     ["--split '60/60'"]),
    ("abtest-assign-unreadable", ["abtest", "assign", "--salt", "s", "garbage.parquet"], None, None, 2,
     ["garbage.parquet", "cannot read"]),
    ("abtest-assign-out-is-input", ["abtest", "assign", "--salt", "s", "ids.csv", "--out", "ids.csv"], None, None, 2,
     ["--out ids.csv", "overwrite"]),
    ("abtest-assign-unknown-id-col", ["abtest", "assign", "--salt", "s", "--id-col", "nope", "ids.csv"], None, None, 2,
     ["no column 'nope'"]),
    ("abtest-analyze-missing", ["abtest", "analyze", "nope.csv", "--unit", "user", "--variant", "arm", "--metric", "conv"],
     None, None, 2, ["nope.csv"]),
    ("abtest-analyze-unknown-column",
     ["abtest", "analyze", "exp.csv", "--unit", "user", "--variant", "nope", "--metric", "conv"], None, None, 2,
     ["--variant 'nope'"]),
    ("abtest-analyze-non-numeric-metric",
     ["abtest", "analyze", "exp.csv", "--unit", "user", "--variant", "arm", "--metric", "txt"], None, None, 2,
     ["'txt'", "non-numeric"]),
    ("abtest-analyze-bad-split",
     ["abtest", "analyze", "exp.csv", "--unit", "user", "--variant", "arm", "--metric", "conv", "--split", "60/60"],
     None, None, 2, ["--split '60/60'"]),
    ("abtest-analyze-bad-aggregate",
     ["abtest", "analyze", "exp.csv", "--unit", "user", "--variant", "arm", "--metric", "rev", "--aggregate", "foo"],
     None, None, 2, ["--aggregate 'foo'"]),
    ("abtest-analyze-bad-proportion-ci",
     ["abtest", "analyze", "exp.csv", "--unit", "user", "--variant", "arm", "--metric", "conv", "--proportion-ci", "x"],
     None, None, 2, ["--proportion-ci 'x'"]),
    ("abtest-aa-missing", ["abtest", "aa", "nope.csv", "--metric", "conv"], None, None, 2, ["nope.csv"]),
    ("abtest-aa-unknown-column", ["abtest", "aa", "exp.csv", "--metric", "nope", "--sims", "50"], None, None, 2,
     ["'nope'"]),
    ("abtest-aa-non-numeric-metric", ["abtest", "aa", "exp.csv", "--metric", "txt", "--sims", "50"], None, None, 2,
     ["'txt'", "non-numeric"]),
    ("abtest-aa-bad-split", ["abtest", "aa", "exp.csv", "--metric", "conv", "--split", "60/60", "--sims", "50"],
     None, None, 2, ["--split '60/60'"]),
    ("abtest-aa-bad-method", ["abtest", "aa", "exp.csv", "--metric", "conv", "--method", "foo", "--sims", "50"],
     None, None, 2, ["--method 'foo'"]),
    ("abtest-aa-bad-alpha", ["abtest", "aa", "exp.csv", "--metric", "conv", "--alpha", "0", "--sims", "50"],
     None, None, 2, ["--alpha"]),
]


@pytest.fixture
def no_server(monkeypatch):
    """`mlcase serve` must fail before uvicorn starts; if it ever got that far, fail instead of blocking."""
    import uvicorn

    def refuse(self, *a, **k):
        raise AssertionError("uvicorn was started: the bad input was not caught before serving")

    monkeypatch.setattr(uvicorn.Server, "run", refuse)


@pytest.mark.parametrize("name, argv, setup, stdin, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_loses_nothing(trained, tmp_path, monkeypatch, capfd, no_server,
                                                 name, argv, setup, stdin, code, words):
    one_line_and_nothing_lost(trained, tmp_path, monkeypatch, capfd, argv, setup, stdin, code, words)


def one_line_and_nothing_lost(trained, tmp_path, monkeypatch, capfd, argv, setup, stdin, code, words) -> None:
    """Run ``argv`` on a copy of the trained case after ``setup``: the exit code, one error line with
    ``words`` and a fix, no traceback, every file byte-for-byte as before."""
    case = tmp_path / "case"
    shutil.copytree(trained, case)
    # settled where it is, as a copied case is by its first command: its store follows the folder (the artifact paths
    # are rewritten), so what is compared below is the bad input's doing alone. Straight on the SQLite file: an
    # MLflow store opened in this process would be reused by the command even after `setup` replaced the file.
    from mlcase.tracking import _follow_move

    assert _follow_move(case / "mlflow.db", case.resolve()) == str(trained.resolve())
    if setup is not None:
        setup(case)
    before = _snapshot(case)
    monkeypatch.chdir(case)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
    capfd.readouterr()
    rc = main(list(argv))
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("mlcase: error:")]
    assert rc == code, f"exit {rc}, expected {code}; stderr:\n{err}"
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert "; " in lines[0], f"no fix after the message in {lines[0]!r}"
    after = _snapshot(case)
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"files changed or lost: {changed}"


def test_serve_on_a_taken_port_is_one_line(trained, tmp_path, monkeypatch, capfd, no_server):
    import socket

    case = tmp_path / "case"
    shutil.copytree(trained, case)
    before = _snapshot(case)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = main(["serve", str(case), "--port", str(port)])
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("mlcase: error:")]
    assert rc == 2 and len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0], err
    assert "Traceback" not in err and "serving case" not in err
    assert _snapshot(case) == before
