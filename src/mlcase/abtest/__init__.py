"""A/B tests: plan the sample size, assign units deterministically, analyse honestly, check with A/A.

>>> from mlcase.abtest import plan, assign, analyze, aa_test   # doctest: +SKIP

- :func:`plan` / :func:`plan_from_history` / :func:`plan_from_case`: units per arm and whole weeks.
- :func:`assign` / :func:`arm_of`: a salted SHA-256 of the unit id picks the arm.
- :func:`analyze`: SRM, assignment health, per-metric effects (Welch, z-test with
  Newcombe CI, bootstrap, Mann-Whitney, winsorized), CUPED, Holm, segments with BH,
  guardrails, peeking, a verdict in plain words.
- :func:`aa_test`: false-positive rate of the analysis over random re-splits of past data.
"""

from .aa import AAResult, aa_test
from .analyze import Analysis, analyze, parse_guardrail
from .assign import Assignment, arm_of, assign, parse_split, read_ids
from .plan import Plan, plan, plan_from_case, plan_from_history, required_n

__all__ = [
    "AAResult",
    "Analysis",
    "Assignment",
    "Plan",
    "aa_test",
    "analyze",
    "arm_of",
    "assign",
    "parse_guardrail",
    "parse_split",
    "plan",
    "plan_from_case",
    "plan_from_history",
    "read_ids",
    "required_n",
]
