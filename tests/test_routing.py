"""Salted-hash arms (mlcase.serve.routing): shares within binomial bounds, stable, monotone, separate layers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from mlcase.errors import SpecError
from mlcase.serve.routing import (
    HOLDOUT_ARM,
    MODEL_ARM,
    Router,
    Shares,
    router_for,
    sampling_probability,
)

N = 50_000


def band(n: int, p: float) -> tuple[int, int]:
    """Counts a fair draw lands in with probability 0.999."""
    return int(binom.ppf(0.0005, n, p)), int(binom.ppf(0.9995, n, p))


def arms(router: Router, units, rids=None) -> np.ndarray:
    rids = rids if rids is not None else [f"req-{u}" for u in units]
    return np.array([r.arm for r in router.route(list(units), rids)])


def test_holdout_share_within_binomial_bounds_and_the_same_for_every_request():
    units = [f"cust-{i}" for i in range(N)]
    r = Router("loans-2026", Shares(holdout=0.02))
    a = arms(r, units)
    lo, hi = band(N, 0.02)
    assert lo <= (a == HOLDOUT_ARM).sum() <= hi
    # a unit keeps its arm whatever the request id, and in a new router (a restarted server)
    again = arms(Router("loans-2026", Shares(holdout=0.02)), units, [f"other-{i}" for i in range(N)])
    assert (a == again).all()
    # a new salt reshuffles
    other = arms(Router("loans-2027", Shares(holdout=0.02)), units)
    assert ((a == HOLDOUT_ARM) & (other == HOLDOUT_ARM)).sum() < 0.1 * (a == HOLDOUT_ARM).sum()


def test_raising_a_share_only_moves_units_into_the_arm_and_audit_is_its_own_layer():
    units = list(range(N))  # ints: 7 and "7" are the same unit
    r = Router("s", Shares(holdout=0.02, audit_share=0.0))
    before = arms(r, units) == HOLDOUT_ARM
    assert (arms(r, [str(u) for u in units]) == HOLDOUT_ARM).tolist() == before.tolist()
    r.update(holdout=0.05)
    after = arms(r, units) == HOLDOUT_ARM
    assert after[before].all() and after.sum() > before.sum()
    lo, hi = band(N, 0.05)
    assert lo <= after.sum() <= hi
    r.update(audit_share=0.3)
    assert ((arms(r, units) == HOLDOUT_ARM) == after).all()  # the audit draw never moves arms
    routes = r.route(units, [f"req-{u}" for u in units])
    drawn = np.array([x.audit_draw for x in routes])
    lo, hi = band(N, 0.3)
    assert lo <= drawn.sum() <= hi
    assert {x.audit_share for x in routes} == {0.3}
    # the audit draw is per request (a unit is audited on some requests, not all)
    redraw = np.array([x.audit_draw for x in r.route(units, [f"again-{u}" for u in units])])
    assert 0.3 * 0.3 * N * 0.9 < (drawn & redraw).sum() < 0.3 * 0.3 * N * 1.1


def test_requests_without_a_unit_are_routed_by_request_id():
    r = Router("s", Shares(holdout=0.5))
    routes = r.route([None] * 2000, [f"r{i}" for i in range(2000)])
    assert {x.unit_id for x in routes} == {None}
    lo, hi = band(2000, 0.5)
    assert lo <= sum(x.arm == HOLDOUT_ARM for x in routes) <= hi
    assert all(x.arm == MODEL_ARM for x in Router("s").route(["a", "b"], ["1", "2"]))


@pytest.mark.parametrize("changes, fragment", [
    ({"holdout": 0.7}, "holdout = 0.7 is not a share between 0 and 0.5"),
    ({"holdout": -0.1}, "holdout = -0.1"),
    ({"audit_share": "lots"}, "audit_share = 'lots'"),
    ({"holdout": True}, "holdout = True"),
    ({"champion": 0.1}, "unknown share 'champion'"),
    ({"canary": 0.6}, "canary = 0.6 is not a share between 0 and 0.5"),
])
def test_bad_shares_are_refused_with_one_line(changes, fragment):
    r = Router("s", Shares(holdout=0.02))
    with pytest.raises(SpecError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as err:
        r.update(**changes)
    assert "\n" not in str(err.value)
    assert r.shares == Shares(holdout=0.02)  # unchanged


def test_the_case_decides_the_salt_and_the_holdouts_policy(tmp_path):
    from mlcase.case import case_from_spec

    spec = {"name": "loans", "decision": "review", "task": "binary",
            "data": {"source": "d.csv", "target": "y", "positive": "yes"}, "serving": {"holdout": 0.1}}
    case = case_from_spec(spec, tmp_path)
    assert router_for(case, rule_available=True).policy == "rule"
    r = router_for(case, rule_available=False)
    assert r.policy == "never" and r.salt == "loans" and r.describe()["salt"] == "the case name"
    ruled = case_from_spec({**spec, "serving": {"holdout": 0.1, "holdout_policy": "rule", "salt": "x"}}, tmp_path)
    with pytest.raises(SpecError, match="holdout_policy is 'rule' but the case has no rule"):
        router_for(ruled, rule_available=False)
    assert router_for(ruled, rule_available=True).salt == "x"
    # refused when the spec is read, before a run (it was found only at `mlcase serve`, after one)
    with pytest.raises(SpecError, match="serving.holdout needs a binary task"):
        case_from_spec({**spec, "task": "multiclass", "data": {"source": "d.csv", "target": "y"}}, tmp_path)


def test_sampling_probability():
    assert sampling_probability(MODEL_ARM, "flag", 0.01) == 1.0
    assert sampling_probability(MODEL_ARM, "review", 0.01) == 1.0
    assert sampling_probability(MODEL_ARM, "auto", 0.01) == 0.01
    assert sampling_probability(HOLDOUT_ARM, "auto", 0.01) == 0.0
    assert sampling_probability(HOLDOUT_ARM, "flag", 0.01) == 1.0
