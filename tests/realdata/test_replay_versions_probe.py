"""``mlcase replay CASE --version N``: the logged traffic replayed against another registered version.

Before, ``mlcase replay`` re-ran only the version that made each decision; a platform team asking "what would
the candidate have decided on last week's traffic?" had no answer. Three real tables of the matrix, each served
by a real ``mlcase serve`` on 127.0.0.1 with its other registered version as a 50% canary, every answer labelled
with its true outcome: modeldata::credit_data (binary, text categories and missing values), MASS::Boston
(regression, asymmetric costs) and MASS::fgl (multiclass, 6 classes). The replay is checked against numbers
rebuilt by hand from the log and from ``mlcase score --version N`` on the logged inputs: decisions changed, the
flag share of each side, the cost per decision of each side on the labelled records and the paired 95% t
interval of their difference. Bad input (an unknown version, another case's log, an empty log) is one line.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlcase import tracking
from mlcase.data import prepare
from mlcase.errors import NotFoundError, SpecError
from mlcase.releases import promote, replay_against
from tests.serving_case import records, serve_labelled

from .tables import said

pytestmark = pytest.mark.slow

TABLES = {"credit-random": "Status", "boston-random": "medv", "fgl-random": "type"}
N_MAX = 200   # test rows sent per table (credit has 891)


def _serve(runs, table_id: str, dest: Path) -> dict:
    """The table's run, its other version as a 50% canary behind a real server, every answer labelled."""
    got = runs.copy(table_id, dest)
    case, folder = got["case"], got["folder"]
    if tracking.alias_version(case, "champion") is None:   # a 6 s bake-off on a busy machine may not reach GO
        promote(case, tracking.alias_version(case, "candidate"), why="the replay under test needs a champion")
    champ = tracking.alias_version(case, "champion")
    other = next(v["version"] for v in tracking.versions(case) if v["version"] != champ)
    ds = prepare(case)
    target = TABLES[table_id]
    recs = records(ds, "test", N_MAX)
    truth = ds.rows("test")[target].iloc[:N_MAX].tolist()
    serve_labelled(folder, recs, truth, canary=f"{other}:50%")
    return {"case": case, "folder": folder, "champion": champ, "other": other, "task": case.spec.task,
            "target": target}


@pytest.fixture(scope="module", params=list(TABLES))
def served(request, runs, tmp_path_factory) -> dict:
    return _serve(runs, request.param, tmp_path_factory.mktemp("replay-versions") / request.param)


def _by_hand(served: dict, version: int, tmp: Path) -> pd.DataFrame:
    """The log in the order replay reads it (ts, request id), its newest label, and ``mlcase score --version``'s
    answers on its inputs written to a CSV."""
    con = sqlite3.connect(served["folder"] / "predictions.db")
    log = pd.read_sql("SELECT p.request_id, p.ts, p.arm, p.arm_version, p.inputs, p.decision, p.prediction, l.label "
                      "FROM predictions p LEFT JOIN labels l USING (request_id) ORDER BY p.ts, p.request_id", con)
    con.close()
    inputs = tmp / f"inputs{version}.csv"
    pd.DataFrame([json.loads(x) for x in log["inputs"]]).to_csv(inputs, index=False)
    out = tmp / f"scored{version}.csv"
    code, text = said("score", str(served["folder"]), str(inputs), "-o", str(out), "--version", str(version),
                      "--quiet")
    assert code == 0, text
    scored = pd.read_csv(out)
    assert scored["row"].tolist() == list(range(len(log)))
    return log.assign(now_decision=scored["decision"].astype(str), now_prediction=scored["prediction"])


def _cost(served: dict, label, decision, prediction) -> np.ndarray:
    """The case's money per decision, written out from case.yaml's costs."""
    if served["task"] == "binary":   # credit: tp 100, fp 100, fn 1500, tn 0; a review acts on the prediction
        y = np.asarray(label) == "bad"
        flag = np.where(decision == "flag", True, np.where(decision == "auto", False, np.asarray(prediction) == "bad"))
        return np.select([y & flag, ~y & flag, y & ~flag], [100, 100, 1500], 0).astype(float)
    if served["task"] == "regression":   # Boston: 1 per unit under the price, 2 per unit over
        err = pd.to_numeric(prediction).to_numpy(float) - pd.to_numeric(label).to_numpy(float)
        return np.where(err < 0, -err * 1.0, err * 2.0)
    return (np.asarray(label).astype(str) != np.asarray(prediction).astype(str)).astype(float)   # fgl: 1 per error


def _t_interval(d: np.ndarray) -> tuple[float, float]:
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean() - half, d.mean() + half


def test_replay_against_the_canary_version_is_what_mlcase_score_of_that_version_says(served, tmp_path):
    v = served["other"]
    got = replay_against(served["case"], v)
    log = _by_hand(served, v, tmp_path)
    assert got.rows == len(log) and got.invalid == []
    assert got.logged_versions == log["arm_version"].value_counts().sort_index().to_dict()
    changed = log["decision"] != log["now_decision"]
    assert got.changed["decisions"] == changed.sum()
    transitions = (log["decision"] + " -> " + log["now_decision"])[changed].value_counts().to_dict()
    assert got.transitions == transitions
    own = (log["arm_version"] == v).to_numpy()
    assert got.changed["own_rows"] == own.sum() > 0 and got.changed["own_rows_changed"] == 0
    # the canary's own records are decided again as the server decided them; the champion's are what changes
    assert not changed[own].any()
    for name, r in got.rates.items():
        assert r["logged"] == pytest.approx((log["decision"] == name).mean(), rel=1e-12)
        assert r["version"] == pytest.approx((log["now_decision"] == name).mean(), rel=1e-12)
    if served["task"] == "binary":
        assert "flag" in got.rates
    ca = _cost(served, log["label"], log["decision"].to_numpy(), log["prediction"])
    cb = _cost(served, log["label"], log["now_decision"].to_numpy(), log["now_prediction"])
    c = got.cost
    assert c["n"] == c["labelled"] == len(log)
    assert (c["logged"], c["version"], c["diff"]) == pytest.approx((ca.mean(), cb.mean(), (cb - ca).mean()),
                                                                   rel=1e-9, abs=1e-12)
    if np.ptp(cb - ca) > 0:
        assert (c["low"], c["high"]) == pytest.approx(_t_interval(cb - ca), rel=1e-9)
        assert c["low"] <= c["diff"] <= c["high"]
    if served["task"] == "regression":
        d = log["now_prediction"].to_numpy(float) - pd.to_numeric(log["prediction"]).to_numpy(float)
        p = got.prediction_change
        assert (p["mean"], p["mean_abs"]) == pytest.approx((d.mean(), np.abs(d).mean()), rel=1e-9)
        assert got.changed["predictions"] == (np.abs(d) > 1e-9 * np.maximum(1, np.abs(log["now_prediction"]))).sum()


def test_replay_against_the_champion_changes_only_the_canarys_records(served, tmp_path):
    v = served["champion"]
    got = replay_against(served["case"], v)
    log = _by_hand(served, v, tmp_path)
    on_canary = (log["arm_version"] == served["other"]).to_numpy()
    changed = (log["decision"] != log["now_decision"]).to_numpy()
    assert got.changed["decisions"] == changed.sum() and not changed[~on_canary].any()
    assert got.changed["own_rows"] == (~on_canary).sum() and got.changed["own_rows_changed"] == 0


def test_the_cli_prints_the_comparison_and_its_json_is_the_api_s(served):
    folder = str(served["folder"])
    code, text = said("replay", folder, "--version", str(served["other"]), "--json")
    assert code == 0, text
    out = json.loads(text)
    want = replay_against(served["case"], served["other"]).to_dict()
    assert out["changed"] == want["changed"] and out["transitions"] == want["transitions"]
    assert out["cost"].pop("label_sources") == want["cost"].pop("label_sources") == {"outcome": want["rows"]}
    assert out["cost"] == pytest.approx(want["cost"], rel=1e-12)
    code, text = said("replay", folder, "--version", str(served["other"]))
    assert code == 0 and f"replayed against version {served['other']}" in text, text
    code, text = said("replay", folder, "--version", str(served["other"]), "--last", "7", "--json")
    assert code == 0 and json.loads(text)["rows"] == 7, text


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_bad_input_is_one_line_naming_the_thing(served, tmp_path):
    """An unknown version, a log another case's server wrote and an empty log: exit 2, one line, the fix."""
    case, folder = served["case"], str(served["folder"])
    code, text = said("replay", folder, "--version", "99")
    assert code == 2 and "version 99" in _one_line(text) and "mlcase models" in text, text
    with pytest.raises(NotFoundError, match="version 99"):
        replay_against(case, 99)
    # another case's log: the same records, as if another case's models (other bundle hashes) had answered them
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    src = sqlite3.connect(served["folder"] / "predictions.db")
    src.backup(con)
    src.close()
    row = con.execute("SELECT request_id FROM predictions LIMIT 1").fetchone()[0]
    con.execute("UPDATE predictions SET bundle_sha256 = ?", ("ab" * 32,))
    con.commit()
    code, text = said("replay", folder, "--version", "1", "--log", str(other))
    assert code == 2 and "another case's models" in _one_line(text) and "abababababab" in text, text
    with pytest.raises(SpecError, match="another case"):
        replay_against(case, 1, log=str(other))
    # an empty log
    con.execute("DELETE FROM labels")
    con.execute("DELETE FROM predictions")
    con.commit()
    con.close()
    code, text = said("replay", folder, "--version", "1", "--log", str(other))
    assert code == 2 and "holds no logged decision" in _one_line(text), text
    with pytest.raises(NotFoundError, match="no logged decision"):
        replay_against(case, 1, log=str(other))
    code, text = said("replay", folder, "--version", "1", row[:8] + "-not-logged")
    assert code == 2 and "not in the prediction log" in _one_line(text), text
    with pytest.raises(SpecError, match="last"):
        replay_against(case, 1, last=0)
