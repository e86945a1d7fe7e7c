"""The HTML report: assembly from saved results, the decision banner, failure isolation, offline file, CLI."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.report.render import build_report, write_report
from mlcase.report.sections import Section, figure, table
from mlcase.report.sections import case as case_section

SPEC = {
    "name": "loan-default",
    "decision": "Which loan applications go to manual review?",
    "owner": "Head of credit risk",
    "task": "binary",
    "data": {"source": "loans.csv", "target": "default", "positive": "Yes"},
    "problem": {"current_process": "review every application over $20,000", "volume": "3000/month"},
    "goals": ["Catch more defaults with the same reviewers"],
    "non_goals": ["Automatic rejection"],
    "owners": {"model": "risk analytics", "decision": "credit committee"},
    "assumptions": [{"text": "The default rate stays under 10%",
                     "check": "avg(CASE WHEN \"default\" = 'Yes' THEN 1 ELSE 0 END) < 0.1"}],
    "costs": {"false_negative": "0.6 * loan_amount", "false_positive": 25},
    "constraints": {"review_capacity": 0.08, "min_lift": 1.0},
}
DECISION = {"verdict": "GO", "champion": "lightgbm", "lift_per_decision": 2.5, "lift_ci": [0.9, 4.1],
            "reasons": ["lightgbm saves $2.50 per decision over the rule (95% CI $0.90 to $4.10)",
                        "the flag rate 7.9% stays within the 8% review capacity"]}


def make_case(root: Path, decision: dict | None = DECISION, **stages):
    """A case folder with case.yaml, its data and the given saved stage results."""
    rng = np.random.default_rng(0)
    pd.DataFrame({"loan_amount": rng.integers(1_000, 40_000, 60), "income": rng.normal(50, 10, 60).round(1),
                  "default": rng.choice(["Yes", "No"], 60, p=[0.1, 0.9])}).to_csv(root / "loans.csv", index=False)
    (root / "case.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False))
    case = load_case(root)
    if decision is not None:
        results.save(case, "decision", decision)
    for stage, data in stages.items():
        results.save(case, stage, data)
    return case


def section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "action", "srcset", "poster")]


def curves(res: dict) -> list[Section]:
    import plotly.graph_objects as go

    d = res["curves"]
    fig = go.Figure(go.Scatter(x=d["threshold"], y=d["cost"], mode="lines"))
    return [Section(id="curves", title="Cost curve", order=30,
                    html=table([{"threshold": 0.31, "cost": 12.5}]) + figure(fig, caption="cost vs threshold"))]


curves.STAGES = ("curves",)


# --------------------------------------------------------------------------- the file
def test_report_is_one_offline_file_with_plotly_inlined(tmp_path):
    case = make_case(tmp_path, curves={"threshold": [0.1, 0.5, 0.9], "cost": [30.0, 12.5, 20.0]})
    case.report_dir.mkdir()
    (case.report_dir / "index.html").write_text("old report")

    path = build_report(case, builders=[curves])

    assert path == tmp_path / "report" / "index.html"
    assert [p.name for p in case.report_dir.iterdir()] == ["index.html"]  # replaced, no temp file left
    html = path.read_text()
    bundle = (Path(__import__("plotly").__file__).parent / "package_data" / "plotly.min.js").read_text()
    version = re.search(r"plotly\.js v(\d+\.\d+\.\d+)", bundle).group(1)
    assert f"plotly.js v{version}" in html
    assert len(html) > len(bundle)
    links = _Links()
    links.feed(html)
    assert "link" not in links.tags and "iframe" not in links.tags
    assert links.urls and all(v.startswith("#") for _, _, v in links.urls), links.urls
    assert not re.search(r"<script[^>]+src=", html)
    # the figure travels as JSON beside its div, without plotly's 7 kB default template
    spec = json.loads(re.search(r'<script type="application/json" data-for="(fig\d+)">(.*?)</script>',
                                html, re.S).group(2))
    assert spec["data"][0]["y"] == [30.0, 12.5, 20.0] and "template" not in spec["layout"]


def test_report_without_figures_leaves_plotly_out(tmp_path):
    path = build_report(make_case(tmp_path))
    html = path.read_text()
    assert "plotly.js v" not in html and len(html) < 200_000
    assert 'id="decision"' in html


def test_sections_are_sorted_listed_in_the_contents_and_unique(tmp_path):
    def late(res):
        return [Section(id="x", title="Late", order=90, html="<p>late</p>")]

    def early(res):
        return [Section(id="x", title="Early", order=5, html="<p>early</p>",
                        children=[Section(id="x", title="Detail", html="<p>detail</p>")])]

    html = build_report(make_case(tmp_path), builders=[late, early]).read_text()
    ids = section_ids(html)  # the stage sections of the package (not run yet here) sit in between
    assert ids[:2] == ["decision", "case"]
    assert [i for i in ids if i.startswith("x")] == ["x", "x-2", "x-3"]  # early, its child, late: renamed
    assert html.index("<p>early</p>") < html.index("<p>detail</p>") < html.index("<p>late</p>")
    toc = html[html.index('id="toc"'):html.index("</nav>")]
    assert re.findall(r'href="#([^"]+)"', toc) == ids


# --------------------------------------------------------------------------- failures and missing stages
def test_a_failing_section_shows_its_error_and_the_rest_renders(tmp_path, caplog):
    def broken(res):
        return [Section(id="ok", title="Fine", html=f"<p>{res['bakeoff']['best']}</p>")] + [1 / 0]

    broken.STAGES = ("bakeoff",)

    def fine(res):
        return [Section(id="fine", title="Still here", order=80, html="<p>still rendered</p>")]

    case = make_case(tmp_path, bakeoff={"best": "lightgbm"})
    with caplog.at_level(logging.ERROR, logger="mlcase.report"):
        result = write_report(case, builders=[broken, fine])
    html = result.path.read_text()
    assert result.failed == ["Broken"]
    failed = html[html.index('<section id="broken"'):]
    failed = failed[:failed.index("</section>")]
    assert "status-failed" in failed and "section failed" in failed
    assert "ZeroDivisionError: division by zero" in failed
    assert "still rendered" in html and "GO" in html
    assert any(r.levelno == logging.ERROR and "broken failed: ZeroDivisionError" in r.getMessage()
               for r in caplog.records)


def test_a_builder_returning_something_else_is_a_failed_section(tmp_path):
    def wrong(res):
        return ["<p>a string, not a Section</p>"]

    wrong.STAGES = ()
    result = write_report(make_case(tmp_path), builders=[wrong])
    assert result.failed == ["Wrong"]
    assert "returned str, expected Section objects" in result.path.read_text()


def test_stages_without_results_show_as_not_run_yet(tmp_path):
    def evaluation_view(res):
        return [Section(id="ev", title="Evaluation", html=f"<p>AUC {res['evaluation']['auc']}</p>")]

    evaluation_view.STAGES = ("evaluation", "ceiling")
    evaluation_view.TITLE, evaluation_view.ORDER = "Evaluation in money", 30

    def monitoring_view(res):
        return []

    result = write_report(make_case(tmp_path), builders=[evaluation_view, monitoring_view])
    html = result.path.read_text()
    assert set(result.not_run) >= {"Evaluation in money", "Monitoring view"}
    assert result.failed == []
    assert "Not run yet" in html and ".mlcase/evaluation.json" in html and ".mlcase/ceiling.json" in html

    results.save(load_case(tmp_path), "evaluation", {"auc": 0.812})
    result = write_report(load_case(tmp_path), builders=[evaluation_view, monitoring_view])
    assert "Evaluation in money" not in result.not_run
    assert "<p>AUC 0.812</p>" in result.path.read_text()


# --------------------------------------------------------------------------- the banner and the case
@pytest.mark.parametrize("verdict, meaning", [
    ("GO", "Deploy the model"),
    ("USE_BASELINE", "Use the baseline"),
    ("NO_GO", "Do not deploy"),
    ("INCONCLUSIVE", "cannot decide"),
])
def test_decision_banner_states_the_verdict_and_its_reasons(verdict, meaning):
    res = {"decision": {"verdict": verdict, "reasons": ["lift $0.40 < min_lift $1.00 <b>bold</b>"],
                        "champion": "logistic", "lift_ci": [-0.2, 1.0], "value_per_month": {
                            "low": -600.0, "expected": 1200.0, "high": 3000.0}},
           "registry": {"champion_version": 4}}
    banner = case_section.build(res)[0]
    assert (banner.id, banner.order, banner.header) == ("decision", 0, False)
    assert f'class="banner verdict-{verdict}"' in banner.html
    assert f'<span class="verdict">{verdict}</span>' in banner.html
    assert meaning in banner.html
    assert "lift $0.40 &lt; min_lift $1.00 &lt;b&gt;bold&lt;/b&gt;" in banner.html
    assert "logistic (registry version 4)" in banner.html
    assert "-0.2 to 1" in banner.html and "1,200 (-600 to 3,000)" in banner.html


def test_banner_reads_the_evidence_of_a_decision():
    from mlcase.decision import Decision

    evidence = {"candidate": "lightgbm", "best_baseline": "current rule", "trivial_baseline": "majority",
                "cost_per_decision": {"lightgbm": 41.2, "current rule": 44.6},
                "lift_money_per_decision": {"estimate": 3.4, "ci_low": 1.25, "ci_high": 5.5},
                "required_per_decision": 0.55, "latency_ok": True, "n_test": 1409,
                "value_per_period": {"period": "month", "decisions": 12000.0, "low": 15000.0,
                                     "expected": 40800.0, "high": 66000.0}}
    res = {"decision": Decision("GO", ["the candidate beats the rule"], "lightgbm", evidence).to_dict(),
           "case": {"spec": {"costs": {"currency": "€"}}}}
    html = case_section.decision_banner(res)
    for text in ("<dt>candidate</dt><dd>lightgbm vs current rule</dd>",
                 "<dt>lift per decision</dt><dd>€3.40 (95% CI €1.25 to €5.50)</dd>",
                 "<dt>needed per decision</dt><dd>€0.550</dd>",
                 "<dt>value per month (lightgbm over current rule)</dt><dd>€40,800 (€15,000 to €66,000)</dd>",
                 "<dt>test rows</dt><dd>1,409</dd>", "<dt>latency</dt><dd>within the limit</dd>"):
        assert text in html, text
    assert "cost_per_decision" not in html and "trivial" not in html


def test_banner_without_a_decision_says_why():
    stopped = case_section.decision_banner({"checks": {"checks": [
        {"id": "target_leak", "severity": "error"}, {"id": "dupes", "severity": "warning"},
        {"id": "constant", "severity": "error"}]}})
    assert 'data-verdict="STOPPED"' in stopped and "found 2 error(s)" in stopped
    forced = case_section.decision_banner({"checks": {"errors": [{"id": "x"}], "forced": True}})
    assert 'data-verdict="PENDING"' in forced and "mlcase run" in forced


def test_case_section_shows_the_spec_and_data(tmp_path):
    case = make_case(tmp_path, data={"rows": 60, "split": {"method": "stratified", "n_train": 36,
                                                           "n_valid": 12, "n_test": 12}})
    html = build_report(case).read_text()
    sec = html[html.index('<section id="case"'):]
    for text in ("Which loan applications go to manual review?", "Head of credit risk",
                 "Catch more defaults with the same reviewers", "Automatic rejection", "credit committee",
                 "<code>0.6 * loan_amount</code>", "false positive $25", "review capacity 8% of cases",
                 "60 rows (train 36 · valid 12 · test 12, stratified split)", "3000/month",
                 "The default rate stays under 10%", "&quot;default&quot; = &#x27;Yes&#x27;"):
        assert text in sec, text


def test_tables_mark_numbers_for_alignment():
    html = table([{"model": "rule", "auc": np.float64(0.71234), "n": np.int64(12000), "ok": True}])
    assert "<td>rule</td>" in html and "<td>yes</td>" in html
    assert '<td class="num">0.7123</td>' in html and '<td class="num">12000</td>' in html
    # never scientific notation: the leaderboard's operating cost per decision read "3.151e-07" on every
    # sweep case (AER::PSID7682 as a ranking), where the CLI's listing said $0.000000315
    small = table([{"operating_cost_per_decision": 3.151e-07, "p": 1e-06, "cv": 0.05151}])
    assert '<td class="num">0.0000003151</td>' in small and '<td class="num">0.000001</td>' in small
    assert '<td class="num">0.05151</td>' in small and "e-0" not in small


def test_figure_data_is_strict_json_with_gaps_as_null():
    """The page reads each figure with JSON.parse, which refuses NaN: missing points travel as null."""
    html = figure({"data": [{"type": "scatter", "y": np.array([1.0, np.nan, np.inf, 2.0]), "name": "a</script>"}]})
    payload = re.search(r'<script type="application/json" data-for="[^"]+">(.*?)</script>', html, re.S).group(1)
    spec = json.loads(payload, parse_constant=lambda c: pytest.fail(f"{c} in the figure's JSON"))
    # the name as plotly.js draws it: "a</script>", its entities decoded (tests/realdata/test_report_hostile.py)
    assert spec["data"][0]["y"] == [1.0, None, None, 2.0] and spec["data"][0]["name"] == "a&lt;/script&gt;"


def test_figure_keeps_a_chosen_template_and_escapes_script_ends():
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], text=["</script><script>alert(1)</script>", "b"]))
    fig.update_layout(template="plotly_dark")
    html = figure(fig)
    assert "</script><script>" not in html.split('data-for=')[1].split("</script>", 1)[0]
    payload = re.search(r'data-for="fig\d+">(.*?)</script>', html, re.S).group(1)
    spec = json.loads(payload)
    assert spec["data"][0]["text"][0] == "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"  # text to plotly.js
    assert spec["layout"]["template"]["layout"]["paper_bgcolor"] == "rgb(17,17,17)"


# --------------------------------------------------------------------------- the command
def test_cli_report_rebuilds_from_saved_results(tmp_path, capsys):
    make_case(tmp_path, curves={"threshold": [0.2, 0.8], "cost": [5.0, 7.0]})
    assert main(["report", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "report" / "index.html")
    assert "section(s)" in err
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()

    assert main(["report", str(tmp_path / "case.yaml"), "--open-path"]) == 0
    assert capsys.readouterr().out.strip() == (tmp_path / "report" / "index.html").as_uri()

    assert main(["report", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == str(tmp_path / "report" / "index.html")
    assert [s["id"] for s in doc["sections"]][:2] == ["decision", "case"] and doc["failed"] == []


def test_cli_report_without_results_says_to_run_first(tmp_path, capsys):
    make_case(tmp_path, decision=None)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlcase: error: no stage results in") and ".mlcase" in err
    assert f"run `mlcase run {tmp_path}` first" in err
    assert not (tmp_path / "report").exists()


def test_cli_start_up_does_not_import_the_report_stack():
    code = ("import sys, mlcase.cli; "
            "print(sorted(m for m in ('plotly', 'jinja2', 'mlcase.report.render') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
