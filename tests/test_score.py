"""Batch scoring: validation to an errors file, the fallback chain, and Dask equal to local row for row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.score import score_file
from tests.serving_case import bundle, make_case, register


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    root = tmp_path_factory.mktemp("score") / "churn"
    case, ds = make_case(root, n=2500)
    b = bundle(ds, threshold=0.35)
    df = ds.rows("test").copy().reset_index(drop=True)
    df["tenure"] = df["tenure"].astype(object)
    df.loc[3, "tenure"] = "three"                    # not a number
    df.loc[5, "contract"] = None                     # a required column missing
    df.loc[8, "monthly_charges"] = 10 * df["monthly_charges"].max()   # far outside the training range
    df.loc[9, "payment_method"] = "Crypto wallet"    # unseen category: answered, flagged
    return case, ds, b, df


def test_local_scoring_validates_and_falls_back(churn, tmp_path):
    case, ds, b, df = churn
    inp = tmp_path / "in.csv"
    df.to_csv(inp, index=False)
    res = score_file(case, inp, tmp_path / "out.csv", bundles={"model": b}, chunk_rows=128, progress=False)
    out = pd.read_csv(tmp_path / "out.csv")
    errs = pd.read_csv(tmp_path / "out.errors.csv")
    assert res.rows == len(df) and res.invalid_rows == 2 and res.scored == len(df) - 2
    # bad rows: row number, field and reason
    assert errs.to_dict("records") == [
        {"row": 3, "field": "tenure", "message": "expected a number, got 'three'"},
        {"row": 5, "field": "contract", "message": "is required (it was never missing in training); "
                                                   "send a categorical value"}]
    assert list(out["row"]) == [r for r in range(len(df)) if r not in (3, 5)]
    # the out-of-domain row is answered by the constant tier with its reason
    far = out[out["row"] == 8].iloc[0]
    assert far["tier"] == "constant" and far["fallback"] and "monthly_charges beyond the training range" in far["reason"]
    assert res.fallbacks == {"constant": 1}
    # every other valid row is the pipeline's own score and decision
    valid = df.drop(index=[3, 5, 8]).reset_index(drop=True)
    valid["tenure"] = valid["tenure"].astype(float)
    expect = b.scores(valid[ds.features])
    got = out[out["row"] != 8]
    assert np.max(np.abs(got["score"].to_numpy() - expect)) <= 1e-12
    assert list(got["decision"]) == ["flag" if s >= 0.35 else "auto" for s in expect]
    assert list(got["customer_id"]) == list(valid["customer_id"])


def test_dask_equals_local_row_for_row(churn, tmp_path):
    from distributed import LocalCluster

    case, _, b, df = churn
    inp = tmp_path / "in.parquet"
    df.astype({"tenure": "str"}).to_parquet(inp, index=False)
    local = score_file(case, inp, tmp_path / "local.parquet", bundles={"model": b}, chunk_rows=100, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        csv_in = tmp_path / "in.csv"
        df.to_csv(csv_in, index=False)
        dist = score_file(case, csv_in, tmp_path / "dask.parquet", engine="dask", scheduler=cluster.scheduler_address,
                          bundles={"model": b}, chunk_rows=90, progress=False)
    a, d = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "dask.parquet")
    assert dist.rows == local.rows == len(df) and dist.invalid_rows == local.invalid_rows == 2
    assert list(a.columns) == list(d.columns) and len(a) == len(d) == len(df) - 2
    sa, sd = a["score"].to_numpy(), d["score"].to_numpy()
    assert np.array_equal(np.isnan(sa), np.isnan(sd)) and np.isnan(sa).sum() == 1  # the constant tier's row
    assert np.nanmax(np.abs(sa - sd)) <= 1e-12
    for col in ("row", "customer_id", "prediction", "decision", "tier", "fallback", "reason"):
        assert a[col].astype(str).tolist() == d[col].astype(str).tolist(), col
    assert pd.read_csv(tmp_path / "local.errors.csv").equals(pd.read_csv(tmp_path / "dask.errors.csv"))


def test_unreadable_input_and_unknown_scheduler(churn, tmp_path):
    from mlcase.errors import DataError

    case, _, b, _ = churn
    with pytest.raises(DataError, match="no input file"):
        score_file(case, tmp_path / "missing.csv", tmp_path / "o.csv", bundles={"model": b})
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported file type '.json'.*csv or .parquet"):
        score_file(case, tmp_path / "x.json", tmp_path / "o.csv", bundles={"model": b})


@pytest.mark.slow
def test_score_command_with_the_registered_champion(churn, tmp_path):
    from mlcase.cli import main

    case, ds, b, df = churn
    version = register(case, b, aliases=["champion"])
    df.to_csv(tmp_path / "in.csv", index=False)
    rc = main(["score", str(case.root), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--quiet"])
    assert rc == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert set(out["model_version"].dropna()) == {version} and len(out) == len(df) - 2
    assert out["model_version"].isna().sum() == 1  # the constant tier's answer has no model
    # one positional argument is the input (the case defaults to ./case.yaml)
    rc = main(["score", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv")])
    assert rc == 2
    # the console script (which freezes the GC before the interpreter shuts down) leaves its output
    # whole, its one JSON object flushed on stdout, and its exit codes as main() returns them
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = str(Path(sys.executable).parent / "mlcase")
    proc = subprocess.run([script, "score", str(case.root), str(tmp_path / "in.csv"), "-o",
                           str(tmp_path / "out.parquet"), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert res["scored"] == len(got) == len(df) - 2 and res["fallbacks"] == {"constant": 1}
    assert list(got["row"]) == list(out["row"]) and np.allclose(got["score"], out["score"], equal_nan=True)
    proc = subprocess.run([script, "score", str(case.root), str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "nope.csv" in proc.stderr and not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("k", [1, 2, 5, 62, 63])
def test_distinct_rows_is_numpys_unique_by_rows(k):
    from mlcase.conformal.sets import distinct_rows

    rng = np.random.default_rng(k)
    member = rng.random((3000, k)) < 0.2
    member[:5] = False                     # an empty set
    member[5:10] = True                    # every class
    patterns, inverse = distinct_rows(member)
    expect = np.unique(member, axis=0)
    assert patterns.dtype == bool and inverse.shape == (len(member),)
    assert (patterns[inverse] == member).all()
    assert sorted(map(tuple, patterns)) == sorted(map(tuple, expect))
    empty, inv = distinct_rows(np.zeros((0, k), dtype=bool))
    assert empty.shape[0] == 0 and inv.shape == (0,)


def test_the_vectorised_path_answers_as_the_fallback_chain_does_record_by_record(churn, tmp_path):
    """Chunks at the model's speed (one predict, sets and decisions for the whole chunk) give the serving path's
    answers; tiers behind the model are loaded only once a row needs one."""
    from mlcase.conformal import calibrate
    from mlcase.score import ChunkScorer, _answer_columns, _records, _typed
    from mlcase.serve.fallback import load_chain

    case, ds, b, df = churn
    cb = bundle(ds, threshold=0.35)
    cb.conformal = calibrate(cb, ds.X_valid, ds.y_valid, alpha=0.2, method="lac")
    chain = load_chain(case, bundles={"model": cb}, registry=False, fallbacks=False)
    full = load_chain(case, bundles={"model": cb}, registry=False)
    fast = ChunkScorer(chain, fallback=lambda: full)
    clean_rows = df.drop(index=[3, 5, 8])
    out, errs = fast(clean_rows.drop(index=[9]), 0)
    assert not fast.loaded_fallbacks and len(errs) == 0       # every row in the model's domain: no other tier
    out, errs = fast(df, 0)
    assert fast.loaded_fallbacks and len(errs) == 2            # the out-of-domain row needed the chain
    clean, _, ok = fast.spec.validate_frame(df.reset_index(drop=True))
    slow = _answer_columns(fast.predictor.predict(_records(clean.reset_index(drop=True), list(fast.spec.rules))))
    for col, values in slow.items():
        assert [str(v) for v in out[col]] == [str(v) for v in _typed(col, values)], col
    assert (out["decision"] == "review").any() and out["conformal"].str.startswith("[").all()


def test_fewer_gc_passes_while_loading_restores_the_thresholds(churn, tmp_path):
    """The GC's thresholds are raised only inside the loading block: nested, in threads ending in any
    order, on errors, and around score_file whether it succeeds or fails."""
    import gc
    import threading

    from mlcase.errors import NotFoundError
    from mlcase.startup import fewer_gc_passes

    before = gc.get_threshold()
    with fewer_gc_passes(young=60_000):
        assert gc.get_threshold() == (60_000, *before[1:])
        with fewer_gc_passes():
            pass
        assert gc.get_threshold()[0] == 60_000            # the inner block does not restore early
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError, match="inside"), fewer_gc_passes():
        raise RuntimeError("inside")
    assert gc.get_threshold() == before
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with fewer_gc_passes(young=60_000):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second():
        a_in.wait(5)
        with fewer_gc_passes(young=60_000):
            b_in.set()
            a_out.wait(5)
            seen["after_first_left"] = gc.get_threshold()[0]

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["after_first_left"] == 60_000 and gc.get_threshold() == before
    case, ds, b, df = churn
    df.to_csv(tmp_path / "in.csv", index=False)
    score_file(case, tmp_path / "in.csv", tmp_path / "out.csv", bundles={"model": b}, progress=False)
    assert gc.get_threshold() == before
    with pytest.raises(NotFoundError):
        score_file(case, tmp_path / "in.csv", tmp_path / "out2.csv", version=999, progress=False)
    assert gc.get_threshold() == before and not (tmp_path / "out2.csv").exists()
