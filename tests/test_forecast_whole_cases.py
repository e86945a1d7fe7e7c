"""Whole forecast cases on real series whose history or verdict the first cases did not have: a history from
before 1678 (HistData::Arbuthnot) and an INCONCLUSIVE candidate beside a proven baseline (fpp3::us_change). Kept
apart from test_forecast_times.py so the two files' runs can share the test workers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.case import load_case
from mlcase.forecast.data import load_series
from tests.test_forecast_times import _table


def test_a_history_from_before_1678_is_checked_run_and_scored(tmp_path):
    """HistData::Arbuthnot (christenings in London, 1629 to 1710): `mlcase init` refused its years ("whole
    years (1678 to 2261, the span pandas' times hold)"), and past that the run stopped with an internal error
    (OutOfBoundsDatetime), because the forecast path cast times to nanoseconds. Times are microseconds now
    (pandas 3's unit for parsed text), so the case is checked, run and scored into 1711."""
    import contextlib
    import io
    import json

    from mlcase.cli import main

    _table("HistData", "Arbuthnot")[["Year", "Males"]].to_csv(tmp_path / "data.csv", index=False)
    assert main(["init", str(tmp_path / "data.csv"), "-t", "Males", "--task", "forecast", "--time", "Year"]) == 0
    data = load_series(load_case(tmp_path / "case.yaml"))
    assert data.freq == "YS-JAN" and len(data.frame) == 82
    assert (data.frame["ds"].iloc[0], data.frame["ds"].iloc[-1]) == (pd.Timestamp("1629-01-01"),
                                                                     pd.Timestamp("1710-01-01"))
    assert main(["check", str(tmp_path), "--quiet"]) == 0
    err = io.StringIO()
    with contextlib.redirect_stderr(err):      # --refit all: a forecast's models see every step already, said
        code = main(["run", str(tmp_path), "--budget", "5s", "--refit", "all"])
    verdict = json.loads((tmp_path / ".mlcase" / "decision.json").read_text())["data"]["verdict"]
    assert code in (0, 3) and verdict in ("GO", "NO_GO", "INCONCLUSIVE")
    assert ("note: a forecast's registered models are fitted on every series' whole history already; refit: all "
            "changes nothing") in " ".join(err.getvalue().split()), err.getvalue()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["score", str(tmp_path), str(tmp_path / "data.csv"), "-o", str(tmp_path / "fc.csv"), "-q"]) == 0
    fc = pd.read_csv(tmp_path / "fc.csv")
    horizon = load_case(tmp_path / "case.yaml").spec.forecast.horizon
    assert fc["ds"].str[:4].tolist() == [str(1711 + i) for i in range(horizon)]
    assert fc["forecast"].between(2_000, 10_000).all()  # christenings of boys per year: 2,890 to 8,426 in the data
    # /forecast has no canary or shadow arm: the flag was accepted, recorded, and nothing reached it
    from tests.serving_case import free_port

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["serve", str(tmp_path), "--port", str(free_port()), "--canary", "1:50%"]) == 2
    assert err.getvalue().strip() == (
        "mlcase: error: --canary: /forecast has no canary or shadow arm yet (this case is forecast), so nothing would "
        "reach that version; serve without it; promote a version after its evaluation (`mlcase promote`)")


def test_an_inconclusive_candidate_leaves_the_proven_baseline_serving_not_seasonal_naive(tmp_path):
    """fpp3::us_change (quarterly US consumption): ridge and the moving average both beat seasonal naive with
    a CI above zero, and ridge's gain over the moving average is not settled (INCONCLUSIVE). No champion was
    set, so `mlcase serve` and `mlcase score` answered with seasonal naive, the worst of the three. Now the
    decision names the baseline that serves until it is settled, and serving and scoring use it."""
    import contextlib
    import io
    import json

    from mlcase import results
    from mlcase.cli import main
    from mlcase.forecast.bakeoff import run_forecast_bakeoff
    from mlcase.forecast.decision import decide_forecast
    from mlcase.forecast.evaluate import evaluate_forecast
    from mlcase.forecast.service import load_served
    from mlcase.pipeline import _forecast_registry

    changes = _table("fpp3", "us_change").iloc[:-4]  # the last year held out, as a new user would
    changes.to_csv(tmp_path / "data.csv", index=False)
    assert main(["init", str(tmp_path / "data.csv"), "-t", "Consumption", "--task", "forecast",
                 "--time", "Quarter"]) == 0
    case = load_case(tmp_path / "case.yaml")
    data = load_series(case)
    bake = run_forecast_bakeoff(case, data, budget=120, quiet=True, max_trials=10)
    ev, _ = evaluate_forecast(case, data, bake)
    verdict = decide_forecast(case, ev)
    assert (verdict.verdict, bake.candidate, bake.best_baseline) == ("INCONCLUSIVE", "ridge", "moving_average")
    lifts = ev["lifts"]
    assert lifts["ridge"]["over_floor"]["mase"]["ci_low"] > 0 and lifts["ridge"]["over_best_baseline"]["mase"][
        "ci_low"] < 0 < lifts["ridge"]["over_best_baseline"]["mase"]["estimate"]
    assert lifts["moving_average"]["over_floor"]["mase"]["ci_low"] > 0
    assert verdict.champion is None and verdict.evidence["serves_without_champion"] == "moving_average"
    assert "until it is settled, the best baseline (the moving average) serves" in verdict.reasons[-1]
    results.save(case, "decision", verdict.to_dict())
    versions = _forecast_registry(case, data, bake, ev, verdict)
    assert versions["champion_version"] is None

    bundle, _schema, notes = load_served(case)
    assert (bundle.name, bundle.version) == ("moving_average", versions["baseline_version"])
    assert "(the decision was INCONCLUSIVE): serving the best baseline, moving_average" in notes[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["score", str(tmp_path), str(tmp_path / "data.csv"), "-o", str(tmp_path / "fc.csv"), "--json",
                     "-q"]) == 0
    assert json.loads(out.getvalue())["model_version"] == versions["baseline_version"]
    fc = pd.read_csv(tmp_path / "fc.csv")
    assert set(fc["tier"]) == {"model"} and len(fc) == 4
    assert not np.allclose(fc["forecast"], changes["Consumption"].iloc[-4:])  # not last year's quarters

    # a decision that does not find the baseline better than seasonal naive keeps seasonal naive
    results.save(case, "decision", {**verdict.to_dict(), "evidence": {}})
    assert load_served(case)[0] is None


def test_a_forecast_cases_assumptions_are_checked_on_the_training_series_and_on_the_served_actuals(tmp_path, capsys):
    """datasets::JohnsonJohnson (quarterly earnings per share). A forecast case refused every assumption check
    ("does not evaluate assumption checks yet"), so the one place a case states what it relies on was text only.
    Now `mlcase check` evaluates each on the series without their test period (as a tabular case's on its training
    rows): false is an error that stops the run, under the data's own column names. `mlcase monitor` checks them
    again on the actuals of the logged forecasts and alerts the model's owner when one breaks."""
    import contextlib
    import io
    import json

    import yaml

    from mlcase.cli import main
    from mlcase.forecast.data import Y
    from mlcase.serve.app import ServeSettings, create_app
    from tests.e2e.test_server import running

    jj = _table("datasets", "JohnsonJohnson")[["time", "value"]]
    jj["quarter"] = ((jj["time"] % 1) * 4).round().astype(int) + 1     # a column the series do not declare
    jj.to_csv(tmp_path / "data.csv", index=False)
    assert main(["init", str(tmp_path / "data.csv"), "-t", "value", "--task", "forecast", "--time", "time"]) == 0
    spec = yaml.safe_load((tmp_path / "case.yaml").read_text())
    spec["budget"], spec["owner"] = "10s", "earnings team"

    def check(*assumptions, force=False):
        (tmp_path / "case.yaml").write_text(yaml.safe_dump({**spec, "assumptions": list(assumptions)},
                                                           sort_keys=False))
        capsys.readouterr()
        code = main(["check", str(tmp_path), "--json"])
        captured = capsys.readouterr()
        return code, captured.out, captured.err.strip().splitlines()

    # a wrong column is one line naming it, and a column of the file the series do not keep says how to keep it
    code, _, err = check({"text": "x", "check": "avg(zz_nope) < 1"})
    assert code == 2 and len(err) == 1 and "unknown column 'zz_nope'" in err[0], err
    code, _, err = check({"text": "quarters", "check": "max(quarter) <= 4"})
    assert code == 2 and len(err) == 1, err
    assert "declare 'quarter' in forecast.known or forecast.past_only to check it" in err[0], err

    positive = {"text": "earnings are positive", "check": "min(value) > 0"}
    under_5 = {"text": "earnings stay under 5 a share", "check": "max(value) < 5"}
    code, out, _ = check(positive, under_5)
    doc = json.loads(out)
    before_test = load_series(load_case(tmp_path), jj).before_test()[Y]
    assert code == 1 and before_test.max() < jj["value"].max()              # the test quarters are not read
    measured = {a["text"]: (a["value"], a["measured"]) for a in doc["stats"]["assumptions"]}
    assert measured == {positive["text"]: (True, {"min(value)": pytest.approx(before_test.min())}),
                        under_5["text"]: (False, {"max(value)": pytest.approx(before_test.max())})}
    errors = [c for c in doc["checks"] if c["severity"] == "error"]
    assert [c["id"] for c in errors] == ["assumption"]
    assert f"is false on the training data: measured max(value) = {before_test.max():.4g}" in errors[0]["title"]
    assert main(["run", str(tmp_path), "--quiet"]) != 0                     # a false assumption stops the run
    assert not (tmp_path / ".mlcase" / "decision.json").exists()

    # accepted, the case runs and serves; its forecasts' actuals break the assumption again
    spec["checks"] = {"accept": [{"check": "assumption", "reason": "earnings grew past 5 in 1975"}]}
    spec["monitoring"] = {"min_window_rows": 4}
    assert check(positive, under_5)[0] == 0
    assert main(["run", str(tmp_path), "--quiet"]) == 0
    case = load_case(tmp_path)
    history = [{"time": float(t), "value": float(v)} for t, v in zip(jj["time"].iloc[:-4], jj["value"].iloc[:-4],
                                                                      strict=True)]
    import httpx

    with running(create_app(ServeSettings(case=case, warmup=0))) as url:
        r = httpx.post(f"{url}/forecast", json={"history": history}, timeout=30)
        assert r.status_code == 200 and len(r.json()["points"]) == 4, r.text
    jj.iloc[-4:][["time", "value"]].to_csv(tmp_path / "actuals.csv", index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["monitor", str(tmp_path), "--labels", str(tmp_path / "actuals.csv"), "--json", "--no-notify"])
    mon = json.loads(out.getvalue())
    assert code == 1 and mon["points"] == 4, mon
    last = jj["value"].iloc[-4:]
    assert [(a["text"], a["status"], a["n"]) for a in mon["assumptions"]] == [(positive["text"], "ok", 4),
                                                                              (under_5["text"], "broken", 4)]
    assert mon["assumptions"][1]["measured"] == {"max(value)": pytest.approx(last.max())}
    alert = [a for a in mon["alerts"] if a["kind"] == "assumption"]
    assert len(alert) == 1 and alert[0]["owner"] == "earnings team", mon["alerts"]
    assert "assumption broken on the actuals of 4 forecast points" in alert[0]["message"]
