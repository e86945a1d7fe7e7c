"""`mlcase run` end to end on the real Default data: every stage, the registry, the report in Chromium."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from mlcase import results, tracking
from mlcase.case import load_case
from mlcase.cli import main

from ..conftest import EXAMPLES, write_case

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One full run of examples/default (small budget) through the CLI with --json."""
    folder = tmp_path_factory.mktemp("default-case")
    shutil.copytree(EXAMPLES / "default", folder, dirs_exist_ok=True)
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--budget", "12s", "--refit", "all", "--json"])
    return folder, code, out.getvalue()


def test_run_json_summary_holds_the_decision_and_the_numbers(default_run):
    folder, code, stdout = default_run
    assert code == 0
    summary = json.loads(stdout)  # one JSON object, nothing else on stdout
    assert summary["decision"] in ("GO", "USE_BASELINE", "INCONCLUSIVE")
    assert summary["reasons"] and all(isinstance(r, str) for r in summary["reasons"])
    assert 0.85 < summary["metrics"]["roc_auc"] <= 1.0  # Default has real signal
    assert summary["report"].endswith("report/index.html")
    for stage in ("data", "checks", "ceiling", "bakeoff", "evaluation", "explain", "conformal", "decision", "registry"):
        assert results.load(load_case(folder), stage) is not None, stage


def test_registry_aliases_follow_the_decision(default_run):
    folder, _, stdout = default_run
    case = load_case(folder)
    summary = json.loads(stdout)
    cand, base = tracking.alias_version(case, "candidate"), tracking.alias_version(case, "baseline")
    assert cand and base and cand != base
    champion = tracking.alias_version(case, "champion")
    refit = summary["registry"].get("refit")
    if summary["decision"] in ("GO", "USE_BASELINE"):  # --refit all: the champion is the evaluated model refitted
        assert refit and champion == refit["refit_version"]
        assert refit["evaluated_version"] == (cand if summary["decision"] == "GO" else base)
    else:
        assert refit is None
    bundle = tracking.load_bundle(case, version=cand)
    assert bundle.threshold is not None and bundle.conformal and bundle.reference
    # the registered threshold is the one evaluation chose on the validation rows
    assert bundle.threshold == pytest.approx(results.load(case, "evaluation")["thresholds"][bundle.name], abs=1e-12)
    ds_rows = results.load(case, "data")["rows"]
    assert ds_rows == 10_000


def test_refit_all_version_saw_every_labelled_row_and_its_tags_say_so(default_run):
    folder, _, stdout = default_run
    case = load_case(folder)
    summary = json.loads(stdout)
    if summary["decision"] not in ("GO", "USE_BASELINE"):
        pytest.skip(f"the decision was {summary['decision']}: nothing became champion, so nothing was refitted")
    refit = summary["registry"]["refit"]
    versions = {int(v["version"]): v for v in tracking.versions(case)}
    new, old = versions[refit["refit_version"]], versions[refit["evaluated_version"]]
    n_rows = results.load(case, "data")["rows"]
    split = results.load(case, "data")["split"]
    # lineage: the evaluated version saw train + valid, the refit every labelled row
    assert int(old["tags"]["mlcase.rows_seen"]) == split["n_train"] + split["n_valid"] < n_rows
    assert old["tags"]["mlcase.fitted_on"] == "train+valid" and old["tags"]["mlcase.valid_scores"] == "out-of-fold"
    assert int(new["tags"]["mlcase.rows_seen"]) == n_rows == refit["rows_seen"]
    assert new["tags"]["mlcase.fitted_on"] == "train+valid+test" and new["tags"]["mlcase.refit"] == "all"
    assert new["tags"]["mlcase.evaluated_version"] == str(refit["evaluated_version"])
    assert "measured before this version saw the test rows" in new["tags"]["mlcase.test_numbers"]
    ev = results.load(case, "evaluation")
    name = refit["name"]
    assert float(new["tags"]["mlcase.test_log_loss"]) == pytest.approx(ev["metrics"][name]["log_loss"])
    # same threshold and conformal quantile as the evaluated version; a different model
    a = tracking.load_bundle(case, version=refit["evaluated_version"])
    b = tracking.load_bundle(case, version=refit["refit_version"])
    assert b.threshold == a.threshold and b.conformal == a.conformal
    X = pd.read_csv(folder / "default.csv").head(300)[list(a.features)]
    assert not np.allclose(a.scores(X), b.scores(X))


def test_the_card_and_datasheet_hold_the_real_numbers(default_run):
    folder, _, _ = default_run
    sheet = (folder / "datasheet.md").read_text()
    assert "10,000" in sheet and "333" in sheet
    card = (folder / "model_card.md").read_text()
    ev = results.load(load_case(folder), "evaluation")
    cand = ev["champion_candidate"]
    auc = ev["metrics"][cand]["roc_auc"]
    assert f"{auc:.3f}" in card or f"{auc:.4f}" in card


def test_the_demo_report_renders_in_chromium(default_run, open_report, artifacts):
    folder, _, stdout = default_run
    report = folder / "report" / "index.html"
    view = open_report(report)
    view.assert_healthy()
    assert len(view.figures()) >= 8
    banner = view.page.inner_text("#decision")
    assert json.loads(stdout)["decision"] in banner
    view.page.screenshot(path=str(artifacts / "default-report.png"), full_page=False)


def test_report_rebuilds_without_retraining(default_run):
    folder, _, _ = default_run
    report = folder / "report" / "index.html"
    before = report.stat().st_mtime_ns
    runs_before = len(tracking.search_runs(load_case(folder)))
    assert main(["report", str(folder)]) == 0
    assert report.stat().st_mtime_ns > before
    assert len(tracking.search_runs(load_case(folder))) == runs_before


def test_fail_on_no_go_gates_ci(default_run, tmp_path, default_df, capsys):
    """A shuffled target has no signal: NO_GO, and --fail-on-no-go exits 3."""
    rng = np.random.default_rng(0)
    df = default_df.assign(default=rng.permutation(default_df["default"].to_numpy()))
    text = (EXAMPLES / "default" / "case.yaml").read_text().replace("source: default.csv", "source: data.csv")
    text = text.replace("BETWEEN 0.01 AND 0.08", "BETWEEN 0.0 AND 1.0")
    path = write_case(tmp_path, text.replace("candidates: [logistic, hist_gbm, lightgbm]", "candidates: [logistic]"), df)
    code = main(["run", str(path), "--budget", "6s", "--fail-on-no-go", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "NO_GO"
    assert code == 3


def test_value_ceiling_stops_before_training(tmp_path, default_df, capsys):
    """Capacity 1% and an operating cost of $5 per decision: even a perfect model cannot pay."""
    df = default_df.head(4000)
    spec = """\
name: hopeless
decision: review an account
problem: {volume: 1000/month}
task: binary
data: {source: data.csv, target: default, positive: 'Yes', id: account_id}
costs: {true_positive: 10, false_positive: 10, false_negative: 100, true_negative: 0}
constraints: {review_capacity: 0.01, operating_cost: 5.0}
budget: 30s
"""
    path = write_case(tmp_path, spec, df)
    code = main(["run", str(path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["decision"] == "NO_GO" and out["stopped_at"] == "value ceiling"
    # hand calculation on the train+valid rows: a perfect classifier flags the top 1% of rows, all
    # positives, saving 100 - 10 = 90 each, i.e. at most 0.9 per decision, below the 5.0 it must pay
    case = load_case(path)
    ceiling = results.load(case, "ceiling")
    assert results.load(case, "bakeoff") is None  # no model was trained
    assert tracking.versions(case) == []
    text = " ".join(out["reasons"])
    assert "perfect" in text.lower()
    n = ceiling["n_rows"]
    assert ceiling["stop"] is True and ceiling["best_current"] == "do_nothing"
    assert ceiling["max_saving_per_decision"] == pytest.approx(90 * int(0.01 * n + 1e-9) / n)
    assert ceiling["required_per_decision"] == 5.0


def test_error_level_checks_stop_the_run_unless_forced(tmp_path, default_df, capsys):
    rng = np.random.default_rng(1)
    df = default_df.head(3000).copy()
    y = (df["default"] == "Yes").astype(float)
    df["leak"] = y + rng.normal(0, 0.01, len(df))  # a noisy copy of the target
    spec = """\
name: leaky
decision: review an account
task: binary
data: {source: data.csv, target: default, positive: 'Yes', id: account_id}
candidates: [logistic]
budget: 5s
"""
    path = write_case(tmp_path, spec, df)
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "leak" in err and "--force" in err
    assert (tmp_path / "report" / "index.html").exists()  # the report shows why it stopped
    code = main(["run", str(path), "--force", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["forced"] is True and out["check_errors"]
    assert results.load(load_case(path), "checks")["forced"] is True


@pytest.mark.parametrize("example, target", [("telco-churn", "churn"), ("default", "default")])
def test_init_spec_runs_unchanged(tmp_path, capsys, example, target):
    src = EXAMPLES / example / load_case(EXAMPLES / example).spec.data.source
    df = pd.read_csv(src)
    df.to_csv(tmp_path / src.name, index=False)
    assert main(["init", str(tmp_path / src.name), "--target", target]) == 0
    spec_before = (tmp_path / "case.yaml").read_text()
    code = main(["run", str(tmp_path), "--budget", "5s", "--json"])
    printed = capsys.readouterr()
    assert code == 0 and printed.out, printed.err
    out = json.loads(printed.out)
    assert out["decision"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
    assert (tmp_path / "case.yaml").read_text() == spec_before
