"""`mlcase abtest ...` end to end: plan, assign, analyze (JSON and HTML), aa, and errors as exit 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main


def run_json(capsys, *args) -> dict:
    capsys.readouterr()
    code = main([*map(str, args), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def run_error(capsys, *args) -> str:
    capsys.readouterr()
    code = main(list(map(str, args)))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mlcase: error: ") and "Traceback" not in err
    return err


@pytest.fixture
def experiment_csv(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    n = 4000
    arm = rng.choice(["control", "treatment"], n)
    t = arm == "treatment"
    pre = rng.normal(30, 8, n)
    df = pd.DataFrame({"user": [f"u{i}" for i in range(n)], "arm": arm,
                       "converted": (rng.random(n) < np.where(t, 0.16, 0.12)).astype(int),
                       "basket": 0.9 * pre + rng.normal(0, 4, n) + 0.8 * t, "pre_basket": pre,
                       "latency_ms": rng.normal(120, 15, n), "country": rng.choice(["de", "fr", "it"], n)})
    path = tmp_path / "experiment.csv"
    df.to_csv(path, index=False)
    return path


def test_plan_json_matches_statsmodels(capsys):
    d = run_json(capsys, "abtest", "plan", "--baseline", 0.12, "--mde", "10%", "--daily-traffic", 3000)
    h = proportion_effectsize(0.132, 0.12)
    n1 = NormalIndPower().solve_power(h, alpha=0.05, power=0.8)
    assert d["n_control"] == math.ceil(n1) and d["metric"] == "proportion"
    assert d["weeks"] == math.ceil(math.ceil(d["n_total"] / 3000) / 7)
    mean = run_json(capsys, "abtest", "plan", "--baseline", 50, "--sd", 20, "--mde", 2, "--split", "20/80", "--one-sided")
    assert mean["metric"] == "mean" and mean["ratio"] == pytest.approx(4.0) and mean["sided"] == 1


def test_plan_from_case(tmp_path, capsys):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    (case_dir / "case.yaml").write_text(
        "name: churn\ndecision: call customers likely to leave\ntask: binary\n"
        "data: {source: data.csv, target: churn}\nproblem: {volume: 60000/month}\n"
        "costs: {false_positive: 5, false_negative: 50}\n")
    err = run_error(capsys, "abtest", "plan", "--from-case", case_dir)
    assert "no offline evaluation yet" in err and "mlcase run" in err
    case = load_case(case_dir)
    results.save(case, "evaluation", {"lift": {"money_per_decision": {"estimate": 0.3, "ci_low": 0.1, "ci_high": 0.5}},
                                      "cost_sd_per_decision": {"lgbm": 5.0, "rule": 5.0},
                                      "best_baseline": "rule", "champion_candidate": "lgbm"})
    d = run_json(capsys, "abtest", "plan", "--from-case", case_dir)
    assert d["daily_traffic"] == pytest.approx(2000)
    assert d["feasibility"]["detectable"] is True and d["weeks"] <= 8


def test_assign_writes_a_stable_log(tmp_path, capsys):
    ids = tmp_path / "users.csv"
    pd.DataFrame({"user_id": [f"id-{i}" for i in range(500)]}).to_csv(ids, index=False)
    d = run_json(capsys, "abtest", "assign", ids, "--salt", "exp-9", "--split", "30/70", "--arms", "old,new")
    log = pd.read_csv(d["log"])
    assert Path(d["log"]) == tmp_path / "users.assignments.csv"
    assert d["counts"] == log["arm"].value_counts().to_dict()
    assert set(log["arm"]) == {"old", "new"} and set(log["salt"]) == {"exp-9"}
    # the installed entry point, in a fresh process, writes the same arms
    exe = Path(sys.executable).with_name("mlcase")
    out = tmp_path / "again.csv"
    subprocess.run([str(exe), "abtest", "assign", str(ids), "--salt", "exp-9", "--split", "30/70", "--arms", "old,new",
                    "--out", str(out)], check=True, capture_output=True, timeout=120)
    assert pd.read_csv(out)["arm"].tolist() == log["arm"].tolist()


def test_analyze_json_and_html(tmp_path, experiment_csv, capsys):
    page = tmp_path / "out" / "analysis.html"
    d = run_json(capsys, "abtest", "analyze", experiment_csv, "--unit", "user", "--variant", "arm",
                 "--metric", "converted", "--metric", "basket", "--covariate", "basket=pre_basket",
                 "--guardrail", "latency_ms<=+3%", "--segment", "country", "--planned-end", "2026-03-31",
                 "--as-of", "2026-03-20", "--html", page)
    assert d["verdict"] == "SHIP" and d["winner"] == "treatment" and d["preliminary"] is True
    conv = next(m for m in d["metrics"] if m["metric"] == "converted")
    assert conv["significant"] and conv["ci_low"] > 0
    basket = next(m for m in d["metrics"] if m["metric"] == "basket")
    assert basket["cuped"]["variance_reduction"] > 0.5
    assert d["guardrails"][0]["status"] == "pass"
    assert {s["segment"] for s in d["segments"]} == {"de", "fr", "it"}
    assert any("peeking" in w for w in d["warnings"])
    html = page.read_text()
    assert d["html"] == str(page) and "Plotly.newPlot" in html and "SHIP" in html


def test_analyze_human_output(experiment_csv, capsys):
    capsys.readouterr()
    assert main(["abtest", "analyze", str(experiment_csv), "--unit", "user", "--variant", "arm",
                 "--metric", "converted"]) == 0
    err = capsys.readouterr().err
    assert "SHIP" in err and "treatment raised converted" in err


def test_analyze_bad_input_exits_2_naming_rows(tmp_path, experiment_csv, capsys):
    df = pd.read_csv(experiment_csv)
    err = run_error(capsys, "abtest", "analyze", experiment_csv, "--unit", "user", "--variant", "arm",
                    "--metric", "country")
    assert "'country' has non-numeric values" in err and "lines 2, 3" in err
    df.loc[[10, 11], "arm"] = "treatment_b"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    err = run_error(capsys, "abtest", "analyze", bad, "--unit", "user", "--variant", "arm", "--metric", "converted",
                    "--split", "50/50")
    assert "3 arms" in err and "'treatment_b'" in err and "lines 12, 13" in err
    df["arm"] = "control"
    df.to_csv(bad, index=False)
    err = run_error(capsys, "abtest", "analyze", bad, "--unit", "user", "--variant", "arm", "--metric", "converted")
    assert "only one arm" in err


def test_aa_json(experiment_csv, capsys):
    d = run_json(capsys, "abtest", "aa", experiment_csv, "--metric", "basket", "--metric", "converted",
                 "--sims", 1000, "--seed", 3)
    for m in d["metrics"]:
        lo, hi = m["band_99"]
        assert lo <= m["false_positive_rate"] <= hi
    assert d["n_sims"] == 1000


@pytest.mark.slow
def test_html_page_renders_the_intervals_in_a_browser(tmp_path, experiment_csv, capsys, browser):
    page_path = tmp_path / "page.html"
    d = run_json(capsys, "abtest", "analyze", experiment_csv, "--unit", "user", "--variant", "arm",
                 "--metric", "converted", "--metric", "basket", "--covariate", "basket=pre_basket",
                 "--guardrail", "latency_ms<=+3%", "--html", page_path)
    n_ci = len(d["metrics"]) + 1 + len(d["guardrails"])  # basket drawn raw and CUPED-adjusted
    page = browser.new_page()  # the session's Chromium (tests/e2e/conftest.py)
    try:
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        page.wait_for_selector("g.errorbar", timeout=20_000)
        assert errors == []
        assert page.locator("g.errorbar").count() == n_ci  # one error bar per interval, offline
        assert "SHIP" in page.locator(".verdict").inner_text()
    finally:
        page.close()
