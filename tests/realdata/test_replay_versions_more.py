"""``mlcase replay CASE --version N`` on a served log with a holdout, on a long log read in chunks, and on the
multiclass and regression cases' logs with a canary.

modeldata::credit_data (binary) served for real on 127.0.0.1 with ``serving.holdout: 0.3``: a held-out unit's log
row keeps today's process's decision and prediction (never act: ``auto``, ``good``), and its ``model_decision``
the model's. Replayed against the very version that logged them, no decision and no prediction may change (29 of
148 held-out AER::HMDA rows read as "prediction changed" before); against the other version the numbers are those
of ``mlcase score --version`` on the logged inputs, with the model's own side for the held-out rows.

The same log, each record logged 16 times (same time stamp, new request ids), replayed against a version whose
threshold is planted on a score 16 records share (a split threshold, ``tie_share`` 0.5), read 250 records at a
time and in one piece: the same answers, row by row, the tied records decided by the draw of their row number in
the order ``ts, request_id``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase import tracking
from mlcase.case import load_case
from mlcase.data import prepare
from mlcase.releases import against, promote, replay_against
from mlcase.score import row_draws
from tests.serving_case import records, register, serve_labelled

from .tables import said

pytestmark = pytest.mark.slow

N = 200   # credit test rows served (of 891)


def _champion(case) -> int:
    if tracking.alias_version(case, "champion") is None:   # a 6 s bake-off on a busy machine may not reach GO
        promote(case, tracking.alias_version(case, "candidate"), why="the replay under test needs a champion")
    return tracking.alias_version(case, "champion")


@pytest.fixture(scope="module")
def held(runs, tmp_path_factory) -> dict:
    """credit-random served with a 30% holdout (no rule: the holdout is never acted on), every answer labelled."""
    got = runs.copy("credit-random", tmp_path_factory.mktemp("replay-holdout") / "credit")
    folder = got["folder"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["serving"] = {"holdout": 0.3, "salt": "replay-h3"}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(folder)
    champ = _champion(case)
    other = next(v["version"] for v in tracking.versions(case) if v["version"] != champ)
    ds = prepare(case)
    serve_labelled(folder, records(ds, "test", N), ds.rows("test")["Status"].iloc[:N].tolist())
    return {"case": case, "folder": folder, "champion": champ, "other": other}


def _log(folder: Path, db: Path | None = None) -> pd.DataFrame:
    con = sqlite3.connect(db or folder / "predictions.db")
    log = pd.read_sql("SELECT p.request_id, p.ts, p.arm, p.model_version, p.inputs, p.decision, p.model_decision, "
                      "p.prediction, p.score, l.label FROM predictions p LEFT JOIN labels l USING (request_id) "
                      "ORDER BY p.ts, p.request_id", con)
    con.close()
    return log


def _scored(folder: Path, log: pd.DataFrame, version: int, tmp: Path) -> pd.DataFrame:
    """``mlcase score --version`` on the logged inputs, written to a CSV and read back."""
    inputs, out = tmp / f"in{version}.csv", tmp / f"out{version}.csv"
    pd.DataFrame([json.loads(x) for x in log["inputs"]]).to_csv(inputs, index=False)
    code, text = said("score", str(folder), str(inputs), "-o", str(out), "--version", str(version), "--quiet")
    assert code == 0, text
    scored = pd.read_csv(out)
    assert scored["row"].tolist() == list(range(len(log)))
    return scored


def _cost(label, decision, prediction) -> np.ndarray:
    """credit's money per decision: tp 100, fp 100, fn 1500, tn 0; a review acts on the prediction."""
    y = np.asarray(label) == "bad"
    flag = np.where(decision == "flag", True, np.where(decision == "auto", False, np.asarray(prediction) == "bad"))
    return np.select([y & flag, ~y & flag, y & ~flag], [100, 100, 1500], 0).astype(float)


def test_replay_against_the_version_that_logged_a_holdout_changes_nothing(held):
    log = _log(held["folder"])
    out = log["arm"] == "holdout"
    assert len(log) == N and 30 <= out.sum() <= 90   # about 30% held out, by unit
    # the held-out rows keep the process's answer (never act), and the model's differs on some of them
    assert set(log.loc[out, "decision"]) == {"auto"} and set(log.loc[out, "prediction"]) == {"good"}
    assert (log.loc[out, "model_decision"] != "auto").sum() > 0
    got = replay_against(held["case"], held["champion"])
    assert got.rows == N and got.invalid == []
    assert got.changed["decisions"] == 0 and got.transitions == {}
    assert got.changed["predictions"] == 0   # 0.3 holdout: the process's 'good' read as changed before
    assert got.changed["own_rows"] == N and got.changed["own_rows_changed"] == 0
    assert got.rates["flag"]["diff"] == 0 and got.cost["diff"] == 0
    assert any(f"{out.sum()} held-out records" in n for n in got.notes), got.notes


def test_replay_of_a_holdout_against_the_other_version_is_mlcase_score_on_the_logged_inputs(held, tmp_path):
    folder, champ, other = held["folder"], held["champion"], held["other"]
    log = _log(folder)
    out = (log["arm"] == "holdout").to_numpy()
    mine, theirs = _scored(folder, log, champ, tmp_path), _scored(folder, log, other, tmp_path)
    # the oracle of the logged side: the champion's own answers; the log's model_decision is what it says
    assert (log.loc[out, "model_decision"].to_numpy() == mine.loc[out, "decision"].to_numpy()).all()
    assert (log.loc[~out, "decision"].to_numpy() == mine.loc[~out, "decision"].to_numpy()).all()
    logged = mine["decision"].astype(str).to_numpy()
    now = theirs["decision"].astype(str).to_numpy()
    got = replay_against(held["case"], other)
    changed = logged != now
    assert got.changed["decisions"] == changed.sum()
    assert got.transitions == pd.Series([f"{x} -> {y}" for x, y in zip(logged[changed], now[changed],
                                                                         strict=True)]).value_counts().to_dict()
    assert got.changed["predictions"] == (mine["prediction"].astype(str) != theirs["prediction"].astype(str)).sum()
    for name, r in got.rates.items():
        assert (r["logged"], r["version"]) == pytest.approx(((logged == name).mean(), (now == name).mean()), rel=1e-12)
    ca = _cost(log["label"], logged, mine["prediction"].astype(str))
    cb = _cost(log["label"], now, theirs["prediction"].astype(str))
    c = got.cost
    assert c["n"] == c["labelled"] == N
    assert (c["logged"], c["version"], c["diff"]) == pytest.approx((ca.mean(), cb.mean(), (cb - ca).mean()), rel=1e-9)


# --------------------------------------------------------------------------- a long log, in chunks
COPIES = 16


@pytest.fixture(scope="module")
def long_log(held, tmp_path_factory) -> dict:
    """The served log with each record logged ``COPIES`` times (same ts, request ids ``<id>~k``), and a version
    with the champion's model whose threshold is the score of one record, at tie_share 0.5."""
    tmp = tmp_path_factory.mktemp("replay-long")
    db = tmp / "long.db"
    src = sqlite3.connect(held["folder"] / "predictions.db")
    con = sqlite3.connect(db)
    src.backup(con)
    src.close()
    pcols = [r[1] for r in con.execute("PRAGMA table_info(predictions)") if r[1] != "request_id"]
    lcols = [r[1] for r in con.execute("PRAGMA table_info(labels)") if r[1] not in ("request_id", "id")]
    for k in range(1, COPIES):
        con.execute(f"INSERT INTO labels (request_id, {', '.join(lcols)}) SELECT request_id || '~{k}', "
                    f"{', '.join(lcols)} FROM labels WHERE request_id NOT LIKE '%~%'")
        con.execute(f"INSERT INTO predictions (request_id, {', '.join(pcols)}) SELECT request_id || '~{k}', "
                    f"{', '.join(pcols)} FROM predictions WHERE request_id NOT LIKE '%~%'")
    con.commit()
    con.close()
    case = held["case"]
    b = tracking.load_bundle(case, alias=None, version=held["champion"])
    X = pd.DataFrame(records(prepare(case), "test", N))
    s = np.sort(np.asarray(b.scores(X), float))
    b.threshold, b.tie_share, b.version = float(s[int(0.75 * len(s))]), 0.5, None
    tied = register(case, b)
    return {"db": db, "version": tied, "threshold": b.threshold}


def test_a_long_log_replayed_in_chunks_is_the_same_as_in_one_piece(held, long_log, monkeypatch):
    case, v, db = held["case"], long_log["version"], str(long_log["db"])
    whole = replay_against(case, v, log=db)
    assert whole.rows == N * COPIES
    monkeypatch.setattr(against, "CHUNK_ROWS", 250)
    reads = []
    lookup = against._input_chunks

    def counted(*a, **k):
        for off, X in lookup(*a, **k):
            reads.append(len(X))
            yield off, X

    monkeypatch.setattr(against, "_input_chunks", counted)
    parts = replay_against(case, v, log=db)
    assert reads == [250] * (N * COPIES // 250) + ([N * COPIES % 250] if N * COPIES % 250 else [])
    assert parts.to_dict() == whole.to_dict()
    pd.testing.assert_frame_equal(parts.per_row, whole.per_row)
    # the tied records: flagged (predicted 'bad'; a flag whose conformal set holds both classes goes to review) by
    # their row's draw in the order ts, request_id, whatever chunk they were in
    per = whole.per_row
    at = np.flatnonzero((pd.to_numeric(per["score"]) == long_log["threshold"]).to_numpy())
    assert len(at) >= COPIES
    flags = per["prediction"].iloc[at].eq("bad").to_numpy()
    assert 0 < flags.sum() < len(at)
    assert (flags == (row_draws(at) < 0.5)).all()
    log = _log(held["folder"], long_log["db"])
    assert per["request_id"].tolist() == log["request_id"].tolist()


def test_the_cli_replays_a_long_log_in_chunks(held, long_log, monkeypatch, tmp_path):
    """The CLI's --json is the API's, read in chunks of 250."""
    monkeypatch.setattr(against, "CHUNK_ROWS", 250)
    code, text = said("replay", str(held["folder"]), "--version", str(long_log["version"]), "--log",
                      str(long_log["db"]), "--json")
    assert code == 0, text
    got = json.loads(text)
    monkeypatch.setattr(against, "CHUNK_ROWS", 10 ** 9)
    want = json.loads(json.dumps(replay_against(held["case"], long_log["version"], log=str(long_log["db"])).to_dict()))
    assert got == want



# --------------------------------------------------------------------------- a draw the version made itself
@pytest.fixture(scope="module")
def drawn(runs, tmp_path_factory) -> dict:
    """MASS::Boston with ``conformal.max_interval_width: 1`` (below every interval) and, as a 50% canary, the
    champion's model whose deferral cut is planted on its (constant) interval width at tie_share 0.5: every
    answer of the canary goes to review or not by a draw, as carData::SLID's do (every interval as wide)."""
    from mlcase.score import _conformal_column

    got = runs.copy("boston-random", tmp_path_factory.mktemp("replay-drawn") / "boston")
    folder = got["folder"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["conformal"] = {**(spec.get("conformal") or {}), "max_interval_width": 1.0}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(folder)
    champ = _champion(case)
    ds = prepare(case)
    recs = records(ds, "test", 120)
    b = tracking.load_bundle(case, alias=None, version=champ)
    widths = _conformal_column(b, np.asarray(b.scores(pd.DataFrame(recs)), float))[2]
    width = float(pd.Series(widths).mode().iloc[0])
    b.conformal = {**b.conformal, "defer_cut": {"size": 0.0, "closeness": width, "tie_share": 0.5}}
    b.version = None
    tied = register(case, b)
    serve_labelled(folder, recs, ds.rows("test")["medv"].iloc[:120].tolist(), canary=f"{tied}:50%")
    return {"case": case, "folder": folder, "version": tied, "tied": int(np.isclose(widths, width).sum())}


def test_a_draw_the_version_made_itself_is_not_read_as_a_change(drawn, tmp_path):
    v = drawn["version"]
    log = _log(drawn["folder"])
    con = sqlite3.connect(drawn["folder"] / "predictions.db")
    arm = pd.read_sql("SELECT request_id, arm_version FROM predictions", con).set_index("request_id")["arm_version"]
    con.close()
    own = (log["request_id"].map(arm) == v).to_numpy()
    assert drawn["tied"] >= 60 and 30 <= own.sum() <= 90   # 101 of the 120 intervals are as wide
    # the server drew each of its answers: some of the canary's records went to review, some not
    assert 0 < (log.loc[own, "decision"] == "review").sum() < own.sum()
    got = replay_against(drawn["case"], v)
    assert got.changed["own_rows"] == own.sum() and got.changed["own_rows_changed"] == 0   # about half before
    assert any("decided by a draw" in n for n in got.notes), got.notes
    per = got.per_row
    assert (per.loc[own, "decision"] == log.loc[own, "decision"]).all()
    # the champion's records: what mlcase score --version says (its own row-numbered draw)
    scored = _scored(drawn["folder"], log, v, tmp_path)
    now = scored["decision"].astype(str).to_numpy()
    assert (per.loc[~own, "decision"].to_numpy() == now[~own]).all()
    n = got.changed["decisions"]
    assert n == (log["decision"].to_numpy()[~own] != now[~own]).sum() > 0
    # every one of them is the canary's draw at its tied cut (the champion, without a cut, reviewed every record)
    assert any(f"{n} of the {n} changed decisions are version {v}'s draws" in x for x in got.notes), got.notes


@pytest.mark.parametrize("example, why", [("chicago-forecast", "history it was computed from"),
                                          ("movielens-ranking", "whole lists")])
def test_a_forecast_or_ranking_case_is_refused_in_one_line_naming_why(example, why, tmp_path):
    """Their answers are not one record's: refused before any model or log is read (the example has neither)."""
    folder = shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / example, tmp_path / example)
    code, text = said("replay", str(folder), "--version", "1")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and why in text, text
    code, text = said("replay", str(folder), "--version", "1", "--json")
    assert code == 2 and why in text, text


def test_an_mlflow_store_given_as_the_log_is_refused_and_left_as_it_was(held, tmp_path):
    """``--log mlflow.db`` (the case's MLflow store, beside predictions.db) got the log's predictions and labels
    tables created in it, and was then called a log that "holds no logged decision"."""
    store = tmp_path / "mlflow-copy.db"
    shutil.copy(held["folder"] / "mlflow.db", store)
    before = store.read_bytes()
    rid = _log(held["folder"])["request_id"].iloc[0]
    for args in (["--version", str(held["other"])], [rid, "--no-explain"]):
        code, text = said("replay", str(held["folder"]), *args, "--log", str(store))
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "is not a prediction log" in text and "MLflow store" in text, text
        assert "predictions.db" in text
    assert store.read_bytes() == before
    con = sqlite3.connect(store)
    assert not {"predictions", "labels"} & {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
