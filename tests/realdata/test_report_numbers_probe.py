"""Every number in the report and the model card against its source, on real tables: modeldata::hpc_data (4,331
computing jobs, 4 classes, an uneven cost matrix) and modeldata::credit_data (4,454 loans, binary, review capacity).

Each number is read from the page as a reader sees it (the HTML parsed, the card's Markdown) and compared with the
stage results in ``.mlcase/``, the registry (``mlcase models``, the version ``mlcase card`` logs to) and, where a
stage reports one number twice, the other stage's. What they found:

- after ``mlcase promote`` the banner and the card still named the run's champion ("lightgbm (registry version 1)"
  with version 2 served) and ``mlcase card`` logged the card to version 1;
- the deferral table's "model alone" cost was the most probable class's ($0.226 per decision on hpc_data) where the
  model decides the class of least expected cost (the evaluation's $0.212);
- the card's test table named the model-free floor with no cost ("–"), and its savings lacked the floor's;
- readiness said "the value of 6 feature groups is measured" (the keys of the result) where none was, and counted
  an ensemble's trials twice;
- "Know why" wrote money under a cent as "$0.00" / "-$0.00" and a CI as "[0.9629655225163539, 1.35...]";
- a review capacity of 12.5% read "12%".
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from html.parser import HTMLParser

import pytest
import yaml

from mlcase import results
from mlcase.cli import main
from mlcase.formats import money


def _cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([str(a) for a in args])
    return code, out.getvalue()


class _Page(HTMLParser):
    """The report's text per section id, its tables (section id, head, rows) and its banner facts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.tables: list[dict] = []
        self.facts: dict[str, str] = {}
        self._cell = self._row = self._table = None
        self._dt = self._dd = None
        self._skip = 0
        self._thead = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.stack.append(a.get("id", ""))
        elif tag == "script":
            self._skip += 1
        elif tag == "table":
            self._table = {"section": self.stack[-1] if self.stack else "", "head": [], "rows": []}
        elif tag == "thead":
            self._thead = True
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "dt":
            self._dt = []
        elif tag == "dd":
            self._dd = []

    def handle_endtag(self, tag):
        if tag == "section" and self.stack:
            self.stack.pop()
        elif tag == "script":
            self._skip -= 1
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self._table["head"] if self._thead else self._table["rows"]).append(self._row)
            self._row = None
        elif tag == "thead":
            self._thead = False
        elif tag == "table" and self._table is not None:
            head = self._table["head"][0] if self._table["head"] else []
            self.tables.append({**self._table, "head": head,
                                "rows": [dict(zip(head, r, strict=False)) for r in self._table["rows"]]})
            self._table = None
        elif tag == "dt" and self._dt is not None:
            self._key = "".join(self._dt).strip()
            self._dt = None
        elif tag == "dd" and self._dd is not None:
            self.facts.setdefault(getattr(self, "_key", ""), "".join(self._dd).strip())
            self._dd = None

    def handle_data(self, data):
        if self._skip:
            return
        for s in self.stack:
            self.text.setdefault(s, []).append(data)
        for buf in (self._cell, self._dt, self._dd):
            if buf is not None:
                buf.append(data)


def page(folder) -> _Page:
    p = _Page()
    p.feed((folder / "report" / "index.html").read_text(encoding="utf-8"))
    return p


def section_text(p: _Page, sid: str) -> str:
    return re.sub(r"\s+", " ", "".join(p.text.get(sid, [])))


def tables(p: _Page, sid: str) -> list[dict]:
    return [t for t in p.tables if t["section"] == sid]


# --------------------------------------------------------------------------- which version the pages describe
def test_promote_and_rollback_move_the_champion_the_banner_and_the_card_name(runs, tmp_path):
    """hpc_data: `mlcase promote --version <baseline>` moved the registry's champion; `mlcase report` and `mlcase card`
    kept naming the run's champion ("lightgbm (registry version 1)") and the card was logged to version 1."""
    run = runs.copy("hpc-random", tmp_path / "hpc")
    folder = run["folder"]
    reg = results.load(run["case"], "registry")
    base_v, cand_v = reg["baseline_version"], reg["candidate_version"]
    assert _cli("promote", folder, "--version", base_v, "--force", "--why", "probe")[0] == 0
    code, out = _cli("models", folder, "--json")
    champion_now = next(v["version"] for v in json.loads(out)["versions"] if "champion" in v["aliases"])
    assert champion_now == base_v

    assert _cli("report", folder, "--quiet")[0] == 0
    fact = page(folder).facts["champion"]
    assert fact.startswith(f"{reg['baseline']} (registry version {base_v};"), fact
    assert f"registry version {cand_v})" not in fact
    code, out = _cli("card", folder, "--json")
    assert code == 0 and json.loads(out)["logged"]["version"] == base_v
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    assert f"- **Model:** `{reg['baseline']}`" in card and "the champion" in card
    assert f"version {base_v} in" in card
    # SHAP and the conformal sets are the candidate's: the pages say so beside a champion that is not
    conf = results.load(run["case"], "conformal")
    assert conf["model"] == reg["candidate"]
    assert card.count(f"_Of `{reg['candidate']}`, not of the model this card describes (`{reg['baseline']}`)._") == 2
    trust = section_text(page(folder), "trust")
    assert (f"The explanations and uncertainty below are of {reg['candidate']} (registry version {cand_v}); the "
            f"champion served is {reg['baseline']} (registry version {base_v})") in trust, trust

    # the readiness score was computed by the run, with the run's champion: the section says it is older, until
    # `mlcase readiness` scores the case again
    p = page(folder)
    assert f"Computed before the champion moved (now registry version {base_v})" in section_text(p, "readiness")
    assert _cli("readiness", folder, "--json")[0] in (0, 1)
    assert _cli("report", folder, "--quiet")[0] == 0
    assert "Computed before the champion moved" not in section_text(page(folder), "readiness")
    assert results.load(run["case"], "readiness")["champion_version"] == base_v

    # rolled back: the pages name the version the registry serves again
    assert _cli("rollback", folder, "--why", "probe")[0] == 0
    assert _cli("report", folder, "--quiet")[0] == 0
    code, out = _cli("models", folder, "--json")
    back = next((v["version"] for v in json.loads(out)["versions"] if "champion" in v["aliases"]), None)
    fact = page(folder).facts.get("champion", "")
    assert f"registry version {back}" in fact, (back, fact)


# --------------------------------------------------------------------------- deferral money = evaluation money
def test_deferral_model_alone_costs_what_the_evaluation_costs_under_a_cost_matrix(runs):
    """hpc_data's matrix makes the model's decision the class of least expected cost: the deferral table's "model
    alone" must cost what the evaluation's money says for the same model on the same rows."""
    run = runs.get("hpc-random")
    case, folder = run["case"], run["folder"]
    ev, conf = results.load(case, "evaluation"), results.load(case, "conformal")
    assert conf["model"] == ev["champion_candidate"]
    d = conf["deferral"]
    assert d["cost_model_only"] == pytest.approx(ev["cost_per_decision"][ev["champion_candidate"]], abs=1e-12)
    # the deferred rows are decided right (no review fee): combined = model alone less the deferred rows' cost
    assert d["cost_combined"] <= d["cost_model_only"] + 1e-12
    p = page(folder)
    rows = {r["policy"]: r for t in tables(p, "trust-conformal") for r in t["rows"] if "policy" in r}
    assert rows["model alone"]["cost per decision"] == money(d["cost_model_only"], ev["currency"], 3)
    assert rows["model + deferral"]["cost per decision"] == money(d["cost_combined"], ev["currency"], 3)
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    assert f"model alone {money(d['cost_model_only'], ev['currency'], 3)}" in card


# --------------------------------------------------------------------------- the card's table and savings
def test_the_card_shows_the_floor_with_its_cost_and_the_saving_over_it(runs):
    """credit_data: the card's test table listed the best model-free policy with "–" for its cost ($325.79 in the
    decision's reasons) and said nothing of the saving over it, the GO criterion."""
    run = runs.get("credit-random")
    case, folder = run["case"], run["folder"]
    ev = results.load(case, "evaluation")
    floor = ev["best_model_free"]
    info = ev["model_free"][floor]
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    row = next(line for line in card.splitlines() if line.startswith(f"| model-free: {floor} "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1].replace(",", "")) == pytest.approx(info["cost_per_decision"], rel=5e-4)
    over = ev["lift_over_model_free"][ev["champion_candidate"]]
    digits = 3 if all(abs(over[k]) < 1 for k in ("estimate", "ci_low", "ci_high")) else 2
    assert (f"{money(over['estimate'], '$', digits)} per decision (95% CI {money(over['ci_low'], '$', digits)} to "
            f"{money(over['ci_high'], '$', digits)})") in card
    # the report's metrics table says the same for the floor
    p = page(folder)
    cells = {r["model"]: r for t in tables(p, "eval-metrics") for r in t["rows"]}
    assert cells[f"model-free: {floor}"]["cost / decision"] == money(info["money"]["per_decision"], "$", 3)


# --------------------------------------------------------------------------- readiness counts what happened
def test_readiness_counts_the_measured_feature_groups_and_the_searchs_own_trials(runs):
    run = runs.get("credit-random")
    case = run["case"]
    ready, analysis, bake = (results.load(case, s) for s in ("readiness", "analysis", "bakeoff"))
    tests = {t["id"]: t for t in ready["tests"]}
    fg = analysis.get("feature_groups") or {}
    measured = [g for g in fg.get("groups") or [] if g.get("worth_per_decision")]
    d2 = tests["data.2"]
    if measured:
        assert d2["status"] == "automated" and f"the value of {len(measured)} feature group" in d2["evidence"], d2
    else:  # nothing measured: not "automated", and no count of groups that were not measured
        assert d2["status"] != "automated" and "is measured by ablation" not in d2["evidence"], d2
    trials = sum(f["n_trials"] for f in bake["families"].values())
    m3 = tests["model.3"]
    if m3["status"] == "automated":
        assert m3["evidence"].startswith(f"{trials} trials over {len(bake['families'])} candidate famil"), m3


# --------------------------------------------------------------------------- numbers as the project writes them
def test_know_why_writes_money_below_a_cent_and_ratio_intervals_as_numbers(runs):
    """hpc_data's decisions cost about $0.21: the weak-slice table read "$0.00 ($0.00 to $0.00)" and "-$0.00" for
    amounts of a tenth of a cent, and the ratio's CI "[0.680106617097047, 3.3135338127108644]"."""
    run = runs.get("hpc-random")
    case, folder = run["case"], run["folder"]
    a = results.load(case, "analysis")
    if a.get("skipped"):
        pytest.skip(a["skipped"])
    p = page(folder)
    money_rows = [r for t in tables(p, "analysis-slices") for r in t["rows"] if "hybrid saves on test" in r]
    assert len(money_rows) == len(a["slices"]["money"])
    for cells, e in zip(money_rows, a["slices"]["money"], strict=True):
        t = e["test"]
        assert cells["lost per decision ($, 95% CI)"] == (f"{money(t['estimate'])} ({money(t['ci_low'])} to "
                                                          f"{money(t['ci_high'])})")
    every = " ".join(v for r in money_rows for v in r.values())
    assert "-$0.00 " not in every and "-$0.00)" not in every
    ratio_rows = [r for t in tables(p, "analysis-slices") for r in t["rows"] if "relative loss here / elsewhere" in r]
    for cells in ratio_rows:
        assert re.fullmatch(r"\[[\d.,]+, [\d.,]+\]", cells["95% CI"]), cells["95% CI"]
        assert all(len(x.replace(".", "").replace(",", "").lstrip("0")) <= 4 for x in cells["95% CI"][1:-1].split(", "))


def test_a_review_capacity_is_written_to_three_significant_digits(runs, tmp_path):
    """credit_data with a review capacity of 12.5%: the case's facts read "review capacity 12% of cases"."""
    run = runs.copy("credit-random", tmp_path / "credit")
    folder = run["folder"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["constraints"]["review_capacity"] = 0.125
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert _cli("report", folder, "--quiet")[0] == 0
    text = section_text(page(folder), "case")
    assert "review capacity 12.5% of cases" in text, text


def test_the_multiclass_report_opens_offline_with_every_plot_drawn(runs, open_report):
    view = open_report(runs.get("hpc-random")["folder"] / "report" / "index.html")
    view.assert_healthy()
    figs = view.figures()
    assert len(figs) >= 8 and all(f["marks"] > 0 for f in figs), figs


# --------------------------------------------------------------------------- monitoring after serving
def test_the_monitoring_section_writes_realized_cost_as_money_and_shows_the_scores_drift(runs, tmp_path):
    """hpc_data served (400 of its rows through the case's server, each labelled), `mlcase monitor`, `mlcase report`:
    the windows table read "realized cost 0.03" (no currency), the drift table left out the score (PSI 0.127, KS
    p 0.007: "warn", plotted but in no table), and one window was drawn on a date axis whose ticks read
    "23:59:59.999 Dec 6, 2026", a day no prediction was made. The realized cost is recomputed from the answers and
    the case's cost matrix."""
    import json as _json

    import numpy as np
    import pandas as pd
    from fastapi.testclient import TestClient

    from mlcase.case import load_case
    from mlcase.serve.app import ServeSettings, create_app
    from mlcase.tasks import multiclass_cost

    run = runs.copy("hpc-random", tmp_path / "hpc")
    folder = run["folder"]
    df = pd.read_csv(folder / "data.csv").sample(400, random_state=5).reset_index(drop=True)
    y = df.pop("class").astype(str)
    recs = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in df.to_dict("records")]
    answers = []
    with TestClient(create_app(ServeSettings(case=load_case(folder), warmup=0))) as client:
        for i in range(0, len(recs), 100):
            r = client.post("/predict", json=recs[i:i + 100])
            assert r.status_code == 200, r.text
            answers += r.json()["predictions"]
        ok = client.post("/labels", json=[{"request_id": a["request_id"], "label": t}
                                          for a, t in zip(answers, y, strict=True)])
        assert ok.json()["attached"] == 400
    code, out = _cli("monitor", folder, "--json", "--no-notify")
    assert code in (0, 1)
    w = _json.loads(out)["windows"][-1]
    pred = np.asarray([a["prediction"] for a in answers], dtype=object)
    cost = float(np.mean(multiclass_cost(run["case"], y.to_numpy(dtype=object), pred)))
    assert w["realized"]["cost"] == pytest.approx(cost)
    assert _cli("report", folder, "--quiet")[0] == 0
    p = page(folder)
    row = next(r for t in tables(p, "monitoring-windows") for r in t["rows"])
    assert row["realized cost"] == money(cost, "$", 3), row
    drift = {r["feature"]: r for t in tables(p, "monitoring-drift") for r in t["rows"]}
    sd = w["score_drift"]
    assert drift["score (model output)"]["status"] == sd["status"]
    assert float(drift["score (model output)"]["PSI"]) == pytest.approx(sd["psi"], rel=1e-3)
    html = (folder / "report" / "index.html").read_text(encoding="utf-8")
    figs = re.findall(r'<script type="application/json" data-for="fig\d+">(.*?)</script>', html, flags=re.S)
    windows_x = [f for f in map(_json.loads, figs)
                 if any(w["window"] in (tr.get("x") or []) for tr in f.get("data") or [] if isinstance(tr.get("x"), list))]
    assert windows_x and all(f["layout"]["xaxis"]["type"] == "category" for f in windows_x)


def test_the_cards_latency_names_the_number_the_limit_was_judged_on(runs):
    """credit_data's card read "single-row p95 9.178 ms" where the decision and the report's verdict judged the
    200 ms limit on 6.314 ms (wall time minus the time spent waiting for a busy CPU)."""
    run = runs.get("credit-random")
    lat = results.load(run["case"], "evaluation")["latency"]
    card = (run["folder"] / "model_card.md").read_text(encoding="utf-8")
    line = next(x for x in card.splitlines() if x.startswith("- **Latency:**"))
    from mlcase.formats import number

    path = f", through {lat['single_path']} as served" if lat.get("single_path") else ""
    assert f"single-row p95 {number(lat['single_p95_ms'], 4)} ms (wall clock{path})" in line, line
    assert line.endswith(f"against the {number(lat['limit_p95_ms'], 4)} ms limit"), line
    if lat["gate_ms"] != lat["single_p95_ms"]:
        assert f"judged on {number(lat['gate_ms'], 4)} ms ({lat['gate']})" in line, line


def test_the_label_audit_shows_a_binary_targets_own_values(runs):
    """credit_data's audit (the report's table and label_audit.csv, which a reviewer fills in) read "given_label 1,
    suggested_label 0" for loans whose Status is 'bad' or 'good'."""
    import pandas as pd

    run = runs.get("credit-random")
    folder = run["folder"]
    a = results.load(run["case"], "analysis")
    if (a.get("labels") or {}).get("skipped"):
        pytest.skip(a["labels"]["skipped"])
    audit = pd.read_csv(folder / "label_audit.csv")
    assert len(audit) and set(audit["given_label"]) <= {"good", "bad"}, audit["given_label"].unique()
    flagged = audit[audit["why"] == "label_issue"]
    assert set(flagged["suggested_label"]) <= {"good", "bad"}
    assert (flagged["given_label"] != flagged["suggested_label"]).all()
    data = pd.read_csv(folder / "data.csv")
    # the row key is the position in the data: each given label is that row's Status
    assert (data["Status"].to_numpy()[audit["row"].to_numpy()] == audit["given_label"].to_numpy()).all()
    rows = [r for t in tables(page(folder), "analysis-labels") for r in t["rows"]]
    assert rows and {r["given_label"] for r in rows} <= {"good", "bad"}


def test_the_card_does_not_promise_a_capacity_the_test_rows_broke_and_fit_rows_are_whole(runs):
    """credit_data's card said "Review capacity: 0.3 (thresholds never flag more)" beside a threshold that flagged
    33.6% of the test rows (the evaluation and the decision say so); "Know why" listed "712.4" fit rows."""
    run = runs.get("credit-random")
    folder = run["folder"]
    ev = results.load(run["case"], "evaluation")
    chk = ev["capacity_check"]
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    line = next(x for x in card.splitlines() if x.startswith("- **Review capacity:**"))
    assert "never flag more" not in line and line.startswith("- **Review capacity:** 30% of cases"), line
    assert f"the candidate's flags {100 * chk['test_flag_rate']:.1f}%" in line, line
    assert ("above it" in line) == bool(chk.get("test_over_capacity")), line
    points = [r for t in tables(page(folder), "analysis-curve") for r in t["rows"] if "fit rows (mean per fold)" in r]
    a = results.load(run["case"], "analysis")
    assert [int(r["fit rows (mean per fold)"].replace(",", "")) for r in points] == [
        round(p["fit_rows"]) for p in a["learning_curve"]["points"]]
