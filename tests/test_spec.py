"""case.yaml: shape, defaults, and error messages that name the path, the line and the fix."""

from __future__ import annotations

import pytest

from mlcase.errors import SpecError
from mlcase.spec import CaseSpec, dump_spec, parse_duration, parse_rate, parse_spec

MINIMAL = """\
name: loans
decision: Send a loan application to manual review
task: binary
data:
  source: loans.csv
  target: status
"""

FULL = """\
name: loan-review
decision: Send a loan application to manual review before approval
owner: credit-risk team
problem:
  current_process: every application above 20k is reviewed by hand
  volume: 12000/month
  target: cut losses from bad loans by 20% without more reviewers
goals: [catch bad loans before approval]
non_goals: [setting interest rates]
owners: {model: ana, data: credit-dwh team, serving: platform team}
assumptions:
  - text: about 5% of applications go bad
    check: "avg(CASE WHEN status = 'bad' THEN 1 ELSE 0 END) BETWEEN 0.02 AND 0.10"
  - text: income is almost always filled in
    check: "avg(CASE WHEN income IS NULL THEN 1 ELSE 0 END) < 0.05"
task: binary
data:
  source: loans.csv
  target: status
  positive: bad
  id: application_id
  time: applied_at
  group: null
  features: {exclude: [officer_notes]}
  unavailable_at_serving: [days_past_due_90]
  label_delay: 90d
split: {method: stratified, test_size: 0.2, seed: 42}
sensitive: [age_band]
costs:
  true_positive: 150
  false_positive: 150
  false_negative: "0.6 * loan_amount"
  true_negative: 0
constraints:
  review_capacity: 0.08
  latency_p95_ms: 50
  min_lift: 0.0
  operating_cost: 0
compute: {cost_per_cpu_hour: 0.05, retrain_every: 30d}
baselines:
  - majority
  - linear
  - rule: "debt_to_income > 0.45 OR delinquencies_2y >= 2"
candidates: [logistic, hist_gbm, lightgbm, xgboost]
budget: 2m
slices: [region]
conformal: {alpha: 0.1}
serving: {fallback: [previous_champion, rule, constant]}
monitoring: {psi_alert: 0.25, window: 1d, max_fallback_share: 0.05}
"""


def test_full_example_from_the_issue_loads_with_its_values():
    spec = parse_spec(FULL)
    assert spec.problem.volume_rate == (12000.0, "month")
    assert spec.data.label_delay == 90 * 86400
    assert spec.budget == 120.0
    assert spec.costs.false_negative == "0.6 * loan_amount"
    assert spec.costs.true_positive == 150.0
    assert spec.rule_baselines[0].rule.startswith("debt_to_income")
    assert spec.constraints.review_capacity == 0.08
    assert spec.assumptions[1].text == "income is almost always filled in"


def test_minimal_spec_gets_defaults_and_round_trips():
    spec = parse_spec(MINIMAL)
    assert spec.split.method == "stratified" and spec.split.seed == 42
    assert spec.baselines == ["majority", "linear"]
    again = parse_spec(dump_spec(spec))
    assert again == spec


@pytest.mark.parametrize(
    "patch, path, line, words",
    [
        ("costs:\n  false_negative: [1, 2]\n", "costs.false_negative", 8, "number or a SQL expression"),
        ("costs:\n  false_negative: '12'\n  true_positive: '3 +'\n", "costs.true_positive", 9, "number or a SQL expression"),
        ("budget: -5s\n", "budget", 7, "positive duration"),
        ("budget: soon\n", "budget", 7, "duration like"),
        ("colour: red\n", "colour", 7, "unknown key"),
        ("split: {method: shuffle}\n", "split.method", 7, "'random', 'stratified', 'time', 'group' or 'group_time'"),
        ("constraints:\n  review_capacity: 1.5\n", "constraints.review_capacity", 8, "between 0 and 1"),
        ("problem:\n  volume: lots\n", "problem.volume", 8, "12000/month"),
    ],
)
def test_spec_errors_name_path_line_and_expectation(patch, path, line, words):
    with pytest.raises(SpecError) as err:
        parse_spec(MINIMAL + patch)
    msg = str(err.value)
    assert f"{path} (line {line})" in msg
    assert words in msg
    assert "\n" not in msg


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(SpecError) as err:
        parse_spec(MINIMAL.replace("target: status", "targt: status"))
    msg = str(err.value)
    assert "data.targt (line 6): unknown key 'targt'; did you mean 'target'?" in msg


def test_missing_required_field_is_named():
    with pytest.raises(SpecError, match=r"decision: is required"):
        parse_spec(MINIMAL.replace("decision: Send a loan application to manual review\n", ""))


def test_costs_of_the_wrong_task_are_rejected():
    with pytest.raises(SpecError, match="regression case uses 'under' and 'over'"):
        parse_spec(MINIMAL.replace("task: binary", "task: regression") + "costs: {false_positive: 3}\n")


def test_time_split_needs_a_time_column():
    with pytest.raises(SpecError, match="data.time names no column"):
        parse_spec(MINIMAL + "split: {method: time}\n")


def test_invalid_yaml_gives_the_line():
    with pytest.raises(SpecError, match=r"line \d+.*not valid YAML"):
        parse_spec(MINIMAL + "costs: [unclosed\n")


def test_durations_and_rates():
    assert parse_duration("90s") == 90 and parse_duration("2m") == 120 and parse_duration("1h") == 3600
    assert parse_duration("30d") == 30 * 86400 and parse_duration(15) == 15
    assert parse_rate("300/day") == (300.0, "day") and parse_rate("12,000 per month") == (12000.0, "month")
    with pytest.raises(ValueError):
        parse_duration("-1m")


def test_json_schema_is_available_for_editors():
    schema = CaseSpec.model_json_schema()
    assert "decision" in schema["properties"] and "costs" in schema["properties"]
