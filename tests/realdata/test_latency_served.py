"""The single-row latency a case is judged on is that of the path the server answers one record with.

The evaluation timed a single row through the scikit-learn pipeline on a one-row frame: modeldata::ames's linear
candidate (73 columns) took 38 ms of CPU a row there, while ``mlcase serve`` answers one record through the compiled
fast path (the coefficients on the encoded row) in tens of microseconds. A ``latency_p95_ms`` of 20 refused a model the
server answers far within it. Now the evaluation compiles the fast path as the server's warm-up does, keeps it only
where it gives the pipeline's scores on the timed rows, and says which path it timed.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlcase import results, tracking
from mlcase.data import prepare
from mlcase.latency import _records, measure_latency, served_fast_path
from mlcase.serve.fallback import Tier
from mlcase.serve.release import warm_tier

pytestmark = pytest.mark.slow

TABLES = ["ames-random", "boston-random", "credit-random", "fgl-random"]


@pytest.mark.parametrize("table", TABLES)
def test_a_single_row_is_timed_through_the_path_the_server_answers_with(runs, table):
    r = runs.get(table)
    case = r["case"]
    ev = results.load(case, "evaluation")
    cand = ev["champion_candidate"]
    lat = ev["latency"]
    bundle = tracking.load_bundle(case, "candidate")
    assert bundle.name == cand
    # the server's own warm-up on this bundle: the fast path it compiles and keeps
    tier = Tier("champion", bundle=bundle)
    report = warm_tier(tier, 5)
    kind = (report["fast_path"] or {}).get("kind") if isinstance(report["fast_path"], dict) else None
    assert lat["single_path"] == (f"fast path ({kind})" if kind else "pipeline"), (lat["single_path"], report)
    # what was timed answers what the pipeline answers, on test rows with their missing values
    X = prepare(case).X_test[bundle.features]
    picks = np.arange(min(len(X), 200))
    fast = served_fast_path(bundle, X, picks)
    if kind:
        assert fast is not None
        assert fast.check(_records(X.iloc[picks]), bundle.scores(X.iloc[picks])) <= 1e-9
        # and the pipeline, timed as before, is what a single row costs where nothing is compiled
        piped = measure_latency(bundle, X, None, n_single=20, n_batch=1, windows=2, fast_path=False)
        assert piped["single_path"] == "pipeline"



def test_the_decision_says_what_a_single_row_was_timed_through(runs):
    from mlcase.decision import _latency_line

    lat = results.load(runs.get("boston-random")["case"], "evaluation")["latency"]
    line = _latency_line("lightgbm", {**lat, "limit_p95_ms": 1000.0}, broken=False)
    assert line.startswith("latency holds") and f"through the {lat['single_path']}" in line
    if lat["single_path"] != "pipeline":
        assert "the server answers one record with" in line
