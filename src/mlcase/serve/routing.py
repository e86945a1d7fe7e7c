"""Arms by salted hash: which units the model's decision is acted on for, and which are held out.

A *unit* is the record's ``data.id`` when the request carries it (a customer,
a loan application), else the request id. Each arm after the first is drawn
from its own hash, ``sha256(f"{salt}:{arm}:{unit}")`` read as a number in
[0, 1) (:func:`mlcase.abtest.assign.unit_position`, the A/B assignment's hash),
so:

- the same unit lands in the same arm on every request, process and restart
  (no use of Python's randomised ``hash``), as long as the salt and the shares
  stay;
- raising an arm's share only moves units *into* it (a unit held out at 2% is
  still held out at 5%), and changing one arm's share never reshuffles the
  units of another;
- shares change at run time (:meth:`Router.update`, ``PUT /routing``) without
  a restart; every logged row carries its arm and its review sampling
  probability, so monitoring never needs the history of the shares.

Arms, in the order they are drawn:

``holdout`` (``serving.holdout``)
    gets today's process, not the model: the case's rule (``serving.holdout_policy:
    rule``, the default when the case has one) or never act (``never``). The
    model still scores the record and its score and decision are logged, so the
    holdout's labels, which the model's action never touched, measure what the
    model would have done.
``canary`` (``serving.canary``, ``mlcase serve --canary N:10%``)
    a second registry version, acted on for this share of units: the staged
    rollout :mod:`mlcase.releases` watches (``mlcase rollout status``). Drawn
    after the holdout, so starting, widening or ending a canary never moves a
    held-out unit.
``model``
    everyone else: the champion's decision is acted on. (The log calls the
    champion's arm ``model``, as it did before canaries existed, so older logs
    read the same; ``mlcase rollout status`` shows it as "champion".)

The *audit sample* is separate from the arms: with ``serving.audit_share``, that
share of the acted-on arms' (``model`` and ``canary``) automatic (``auto``) decisions is also sent to review,
drawn from the hash of the request id (every request its own draw), and logged
with ``sampling_probability = audit_share`` so monitoring can weight it back to
the whole population.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from ..errors import SpecError

HOLDOUT_ARM = "holdout"
CANARY_ARM = "canary"
ARMS = (HOLDOUT_ARM, CANARY_ARM)   # drawn in this order, each from its own hash; everyone else gets MODEL_ARM
MODEL_ARM = "model"                # the champion's arm
ACTED_ARMS = (MODEL_ARM, CANARY_ARM)  # arms where a model's decision is acted on (and audited)
AUDIT_LAYER = "audit"
MAX_SHARE = {"holdout": 0.5, "canary": 0.5, "audit_share": 1.0}


@dataclass(frozen=True)
class Shares:
    """The routing shares in force (an immutable value: :meth:`Router.update` swaps it whole)."""

    holdout: float = 0.0
    audit_share: float = 0.0
    canary: float = 0.0

    def to_dict(self) -> dict:
        return {"holdout": self.holdout, "audit_share": self.audit_share, "canary": self.canary}


def check_shares(changes: dict) -> dict:
    """Validate share changes (``{"holdout": 0.05}``); a bad one is a :class:`SpecError` naming it."""
    out = {}
    for key, value in changes.items():
        if key not in MAX_SHARE:
            raise SpecError(f"routing: unknown share '{key}'", f"set one of {', '.join(MAX_SHARE)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) <= MAX_SHARE[key]:
            raise SpecError(f"routing: {key} = {value!r} is not a share between 0 and {MAX_SHARE[key]:g}",
                            f"give {key} as a number such as 0.02")
        out[key] = float(value)
    return out


@dataclass
class Route:
    """Where one record went: its arm, the unit it was drawn for, and the audit draw."""

    arm: str
    unit_id: str | None     # the data.id value (None: the request id was the unit)
    audit_draw: bool        # the request fell in the audit share (applies to automatic decisions only)
    audit_share: float      # the audit share the draw was made with (the sampling probability of 'auto')


class Router:
    """Salted-hash arms and the audit draw, with shares that change at run time.

    Parameters
    ----------
    salt : str
        Salt of every hash (``serving.salt``, default the case name).
    shares : Shares
    policy : {"rule", "never"}
        What the holdout arm gets.

    Examples
    --------
    >>> r = Router("loans", Shares(holdout=0.1))
    >>> [r.route(["a-17"], ["req-1"])[0].arm] == [r.route(["a-17"], ["req-2"])[0].arm]
    True
    """

    def __init__(self, salt: str, shares: Shares | None = None, policy: str = "never",
                 salt_source: str = "given"):
        self.salt = str(salt)
        self.salt_source = salt_source
        self.policy = policy
        self._shares = shares or Shares()
        self._lock = threading.Lock()

    @property
    def shares(self) -> Shares:
        return self._shares

    @property
    def active(self) -> bool:
        """Whether any arm or the audit sample is switched on (else every record takes the model arm)."""
        s = self._shares
        return s.holdout > 0 or s.audit_share > 0 or s.canary > 0

    def update(self, **changes) -> Shares:
        """Change shares at run time (validated; the new shares apply to the next request)."""
        clean = check_shares(changes)
        with self._lock:
            self._shares = replace(self._shares, **clean)
            return self._shares

    def positions(self, layer: str, keys: list[str]) -> np.ndarray:
        """Each key's position in [0, 1) for this layer: the first 8 bytes of sha256(salt:layer:key)."""
        from ..abtest.assign import unit_position

        return unit_position(keys, f"{self.salt}:{layer}")

    def route(self, units: list[str | None], request_ids: list[str]) -> list[Route]:
        """The arm and audit draw of each record (``units[k]`` None: the request id is the unit)."""
        shares = self._shares  # one consistent set for the whole request
        keys = [u if u is not None else r for u, r in zip(units, request_ids, strict=True)]
        arms = np.full(len(keys), MODEL_ARM, dtype=object)
        taken = 0.0
        for arm in ARMS:
            share = getattr(shares, arm)
            if share <= 0:
                continue
            # the share of all units: conditional on not being taken by an earlier arm
            cut = share / (1.0 - taken) if taken < 1 else 0.0
            free = arms == MODEL_ARM
            arms[free & (self.positions(arm, keys) < cut)] = arm
            taken += share
        audit = (self.positions(AUDIT_LAYER, list(request_ids)) < shares.audit_share if shares.audit_share > 0
                 else np.zeros(len(keys), dtype=bool))
        return [Route(str(a), u, bool(d), shares.audit_share) for a, u, d in zip(arms, units, audit, strict=True)]

    def describe(self) -> dict:
        """What ``/ready`` and ``GET /routing`` show (never the salt)."""
        return {**self._shares.to_dict(), "arms": [*ARMS, MODEL_ARM], "holdout_policy": self.policy,
                "salt": self.salt_source}


def router_for(case, rule_available: bool) -> Router:
    """The router of a case's ``serving`` section (a bad combination is a :class:`SpecError`)."""
    serving = case.spec.serving
    shares = Shares(holdout=float(serving.holdout), audit_share=float(serving.audit_share))
    policy = serving.holdout_policy or ("rule" if rule_available else "never")
    if policy == "rule" and not rule_available:
        raise SpecError("serving.holdout_policy is 'rule' but the case has no rule to give the holdout",
                        "add a rule baseline (baselines: [{rule: ...}]) or set serving.holdout_policy: never")
    if shares.holdout > 0 and case.spec.task != "binary":
        raise SpecError(f"serving.holdout needs a binary task (this case is {case.spec.task}): a holdout keeps "
                        "the model's action from some units", "set serving.holdout: 0 for this case")
    return Router(serving.salt or case.name, shares, policy,
                  salt_source="serving.salt" if serving.salt else "the case name")


def decision_of(flag: bool) -> str:
    """The holdout policy's decision for a 0/1 flag."""
    return "flag" if flag else "auto"


def sampling_probability(arm: str, decision: str, audit_share: float) -> float:
    """P(this row is sent to review): flagged and deferred cases always, the acted-on arms' automatic
    decisions with the audit share, the holdout's automatic decisions never."""
    if decision in ("flag", "review"):
        return 1.0
    return float(audit_share) if arm in ACTED_ARMS else 0.0


__all__ = ["ACTED_ARMS", "ARMS", "CANARY_ARM", "HOLDOUT_ARM", "MODEL_ARM", "Route", "Router", "Shares", "check_shares", "router_for", "sampling_probability"]
