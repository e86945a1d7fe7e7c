"""Batch scoring writes a regression's intervals and predictions as the JSON/text they always were, without a
Python call per row to make each one (MASS::Boston; a run of its own, so beside test_scoring_path_probe)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from mlcase import results, tracking
from mlcase.data import prepare


def test_batch_intervals_are_written_as_json_writes_them_without_a_dump_per_row(runs, tmp_path, monkeypatch):
    """MASS::Boston's intervals (and unbounded ones, where a calibration is too small) written as the text
    ``json.dumps(json_interval(low, high))`` gives, but not by calling it once per row (2.0 of the 11.5 s that
    modeldata::ames's 200k rows took under the profiler; 3.4 -> 1.5 us a row alone)."""
    import mlcase.score as score_mod
    from mlcase.conformal.sets import intervals_from_scores, json_interval

    run = runs.get("boston-random")
    assert run["code"] == 0
    case = run["case"]
    bundle = tracking.load_bundle(case, version=results.load(case, "registry")["candidate_version"])
    ds = prepare(case)
    frame = pd.concat([ds.X_test] * 20, ignore_index=True)   # 2,020 rows
    scores = np.asarray(bundle.scores(frame), dtype="float64")
    dumps = []
    real = json.dumps
    monkeypatch.setattr(score_mod.json, "dumps", lambda *a, **k: dumps.append(1) or real(*a, **k))
    for conf in (bundle.conformal, {**bundle.conformal, "quantile": None}, {**bundle.conformal, "quantile": 0.0}):
        b = dataclasses.replace(bundle, conformal=conf)
        text, size, width = score_mod._conformal_column(b, scores)
        low, high = intervals_from_scores(scores, conf)
        assert list(text) == [real(json_interval(a, c)) for a, c in zip(low, high, strict=True)]
        assert list(size) == [2] * len(scores)
    assert text[0] == f"[{float(scores[0])!r}, {float(scores[0])!r}]"
    assert dumps == []   # before: one json.dumps per row and calibration (6,060)
    predicted = score_mod._float_text(bundle.decide(scores))
    assert list(predicted) == [str(float(v)) for v in bundle.decide(scores)]
    assert list(score_mod._float_text(np.array([np.nan, np.inf, -0.0, 1e16, 0.1]))) == ["nan", "inf", "-0.0", "1e+16",
                                                                                       "0.1"]
