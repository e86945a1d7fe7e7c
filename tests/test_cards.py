"""The model card: built from real stage results on wa_churn, every section present, real numbers in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlcase import results
from mlcase.bundle import ModelBundle
from mlcase.cards import card_markdown, write_model_card
from mlcase.case import load_case
from mlcase.data import prepare

from .conftest import write_case

SPEC = """\
name: churn-card
decision: Offer a retention deal to customers likely to leave next month
owner: retention team
owners: {model: data science, data: billing warehouse}
problem: {current_process: call every month-to-month customer, volume: 2000/month}
goals: [reach the customers who would leave]
non_goals: [setting prices, deciding the size of the discount]
assumptions:
  - text: churn is rare
    check: "avg(CASE WHEN churn = 'Yes' THEN 1 ELSE 0 END) < 0.05"
task: binary
data: {source: churn.csv, target: churn, positive: "Yes", id: customer_id}
split: {method: stratified, test_size: 0.25, valid_size: 0.25, seed: 7}
sensitive: [senior_citizen]
slices: [contract]
costs:
  true_positive: "60 + 0.65 * 12 * monthly_charges"
  false_positive: 60
  false_negative: "12 * monthly_charges"
  true_negative: 0
constraints: {review_capacity: 0.2}
evaluation: {bootstrap: 100}
conformal: {alpha: 0.1}
"""


def build_trust_case(folder: Path, churn_df, register: bool = False):
    """Run the real stages (data, checks, datasheet, ceiling, evaluation, trust, decision) on a small case.

    Returns ``(case, dataset, bundles)``; the results are saved in the case's ``.mlcase``.
    """
    from mlcase import conformal, explain
    from mlcase.baselines import MajorityBaseline
    from mlcase.candidates import build_pipeline, column_groups
    from mlcase.checks import run_checks
    from mlcase.checks.datasheet import datasheet_dict, write_datasheet
    from mlcase.data import prepare
    from mlcase.decision import decide
    from mlcase.evaluate import evaluate, value_ceiling

    path = write_case(folder, SPEC, churn_df.sample(n=2500, random_state=0), "churn.csv")
    case = load_case(path)
    ds = prepare(case)
    results.save(case, "data", {**ds.summary(), "schema": ds.schema.to_dict()})
    report = run_checks(case, ds)
    results.save(case, "checks", {**report.to_dict(), "forced": report.has_errors})  # as `mlcase run --force`
    write_datasheet(case, ds, report)
    results.save(case, "datasheet", datasheet_dict(case, ds, report))
    ceiling = value_ceiling(case, ds)
    results.save(case, "ceiling", ceiling.to_dict())
    groups = column_groups(ds.X_train, ds.schema.to_dict())
    bundles = {}
    for name, model, role in (("logistic", build_pipeline("logistic", "binary", groups), "candidate"),
                              ("majority", MajorityBaseline(), "baseline")):
        model.fit(ds.X_train, ds.y_train)
        bundles[name] = ModelBundle(model=model, name=name, role=role, task="binary", features=ds.features,
                                    schema=ds.schema.to_dict(), classes=ds.classes, positive=ds.positive,
                                    data_fingerprint=ds.fingerprint, case_name=case.name)
    ev = evaluate(case, ds, bundles, "logistic")
    results.save(case, "evaluation", ev.to_dict())
    cand = bundles["logistic"]
    results.save(case, "explain", explain.explain_global(cand, ds.X_test, max_rows=200, seed=0))
    conformal.calibrate(cand, ds.X_valid, ds.y_valid, 0.1)
    results.save(case, "conformal", conformal.evaluate_conformal(case, cand, ds.X_test, ds.y_test, ds.rows("test")))
    decision = decide(case, ceiling, ev)
    results.save(case, "decision", decision.to_dict())
    if register:
        from mlcase import tracking

        with tracking.run(case, "register", tags=tracking.base_tags(case, ds.fingerprint, "register")):
            version = tracking.log_bundle(case, cand, aliases=["candidate", "champion"])
        results.save(case, "registry", {"candidate_version": version, "champion_version": version,
                                        "candidate": "logistic", "baseline": "majority", "model_name": case.name})
    return case, ds, bundles


@pytest.fixture(scope="module")
def built(tmp_path_factory, churn_df):
    return build_trust_case(tmp_path_factory.mktemp("card"), churn_df)


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, f"no section '{title}' in the card"
    return m.group(1)


def test_card_has_every_section_with_real_numbers(built):
    case, ds, bundles = built
    md, html = write_model_card(case)
    assert md == case.root / "model_card.md" and html == case.root / "model_card.html"
    text = md.read_text()
    res = results.load_all(case)
    for title in ("Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                  "Quantitative analyses", "Caveats and recommendations", "Ethical considerations"):
        _section(text, title)
    details = _section(text, "Model details")
    assert "`logistic`" in details and ds.fingerprint in details
    assert re.search(r"scikit-learn \d+\.\d+", details) and "mlcase 0." in details
    # intended use from the decision; out-of-scope from non_goals
    use = _section(text, "Intended use")
    assert f"**Decision: {res['decision']['verdict']}.**" in use
    assert res["decision"]["reasons"][0] in use
    assert "- setting prices" in use and "- deciding the size of the discount" in use
    # metrics: the chosen threshold, written as in the evaluation results
    threshold = res["evaluation"]["thresholds"]["logistic"]
    assert f"logistic {threshold:.4g}" in _section(text, "Metrics")
    # quantitative: test cost per decision, slices of `contract`, the conformal coverage
    quant = _section(text, "Quantitative analyses")
    cost = res["evaluation"]["cost_per_decision"]["logistic"]
    assert f"{cost:.4g}" in quant
    for group in ("Month-to-month", "One year", "Two year"):
        assert f"| {group} |" in quant
    cov = res["conformal"]["coverage"]
    assert f"{100 * cov:.1f}%" in quant
    top = res["explain"]["importance"][0]["feature"]
    assert f"| {top} |" in quant
    # training data links the datasheet, which exists
    assert "[datasheet.md](datasheet.md)" in _section(text, "Training data")
    assert (case.root / "datasheet.md").exists()
    # ethics is left to a person; sensitive columns named
    ethics = _section(text, "Ethical considerations")
    assert "TODO" in ethics and "`senior_citizen`" in ethics
    assert f"**Rows:** 2500 labelled, {res['data']['split']['n_train']} for training" in _section(text, "Training data")
    assert f"**Test rows:** {res['evaluation']['n_test']}" in _section(text, "Evaluation data")
    # the registry has not run: said, not invented
    assert "not yet (the registry stage has not run)" in details


def test_caveats_come_from_checks_and_decision(built):
    case, _, _ = built
    res = results.load_all(case)
    text = card_markdown(case, res)
    caveats = re.sub(r"\\(.)", r"\1", _section(text, "Caveats and recommendations"))  # as read: escapes dropped
    problems = [c for c in res["checks"]["checks"] if c["severity"] in ("error", "warning")]
    assert any(c["id"] == "assumption" for c in problems)      # the planted false assumption
    for c in problems:
        assert c["title"] in caveats and c["fix"] in caveats
    assert "went past error-level data checks" in caveats
    if res["decision"]["verdict"] != "GO":
        assert res["decision"]["reasons"][0] in caveats
    assert "Deferral assumption" in caveats


def test_html_card_is_self_contained(built):
    case, _, _ = built
    _, html = write_model_card(case)
    page = html.read_text()
    assert page.startswith("<!doctype html>")
    assert "<h2>Model details</h2>" in page and "<table>" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert results.load(case, "card")["html"] == str(html)


def test_missing_stages_are_marked_not_run(tmp_path, churn_df):
    path = write_case(tmp_path, SPEC, churn_df.head(50), "churn.csv")
    case = load_case(path)
    ds = prepare(case)   # a run that stopped after reading the data: every later stage is not run
    results.save(case, "data", {**ds.summary(), "schema": ds.schema.to_dict()})
    md, _ = write_model_card(case)
    text = md.read_text()
    assert text.count("_Not run: no results for this stage") >= 4
    assert "Data checks: not run." in _section(text, "Caveats and recommendations")
    assert "- setting prices" in _section(text, "Intended use")


def test_report_section_shows_shap_conformal_and_card_link(built):
    from mlcase.report.sections import trust

    case, _, _ = built
    write_model_card(case)
    res = results.load_all(case)
    (section,) = trust.build(res)
    assert section.id == "trust" and 'href="../model_card.html"' in section.html
    shap_html, conf_html = (c.html for c in section.children)
    top = res["explain"]["importance"][0]
    assert f"<td>{top['feature']}</td>" in shap_html
    assert shap_html.count('class="plotly-fig"') == 2            # importance bars and the beeswarm
    cov = res["conformal"]["coverage"]
    assert f"{100 * cov:.1f}%" in conf_html
    d = res["conformal"]["deferral"]
    from mlcase.formats import money

    # money in the case's currency, as the evaluation's table writes a cost per decision
    assert "model + deferral" in conf_html and money(d["cost_combined"], "$", 3) in conf_html
    assert conf_html.count('class="plotly-fig"') == 2            # coverage per method, automated vs deferred
    # without a card the section says how to write one
    del res["card"]
    assert "run <code>mlcase card</code>" in trust.build(res)[0].html
