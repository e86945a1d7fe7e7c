"""Releases inside the server: the canary arm, the champion reloaded from the registry, auto-rollback.

:class:`Release` lives beside the app's state. It holds

- the **canary**: a second registry version (``serving.canary`` or ``mlcase serve
  --canary N:10%``) acted on for the units the router puts in the ``canary`` arm. Its
  chain is the canary's model, then the champion (tier ``champion``), then the champion's
  fallbacks, so a canary that fails hands its records to the champion;
- a **watcher** thread that reads the registry's ``champion`` and ``canary`` aliases every
  ``serving.reload_every`` seconds. A new champion is loaded (its signature verified),
  compiled and warmed up *before* it is switched in, in one assignment; requests in flight
  finish on the model they started with. A version that cannot be loaded, or that cannot
  answer at least half of the warm-up records itself, is refused and the old one keeps
  serving. The version that was switched out stays loaded, warm, for a rollback;
- a **guard**: per arm, the error share, fallback share and model time (p95) of the last
  records. When a guardrail of ``releases.guardrails`` breaks on the canary or on a
  champion switched in since the server started, and ``serving.auto_rollback`` is on, the
  server rolls back by itself (the canary's share goes to 0; the previous champion comes
  back) and moves the registry alias back, recording who, when, from, to, why and the
  numbers in the release history (:func:`mlcase.tracking.record_release`).

A ``--version N`` server is pinned: it never follows the alias. Injected bundles
(``ServeSettings.bundles``) are never reloaded.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
import time
from datetime import UTC, datetime

import numpy as np

from ..errors import MlcaseError, ModelError, SpecError, redact_text
from .routing import CANARY_ARM, MODEL_ARM

MIN_WARM_SHARE = 0.5   # a new version must answer at least this share of the warm-up records itself
GUARD_ROWS = 400       # records per arm the guard looks back over
RETIRE_AFTER_S = 60.0  # a switched-out predictor is closed this long after it is dropped (calls in flight finish)


def server_actor() -> str:
    """Who the server is in the release history."""
    return f"mlcase serve on {socket.gethostname()} (pid {os.getpid()})"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- warm-up
def warm_tier(t, n: int) -> dict:
    """Compile a model tier's fast path (kept only where it matches the pipeline), then run ``n``
    single-record predictions and one batch through it. Returns the fast path's state and how many
    warm-up records the tier answered itself (``answered`` of ``tried``)."""
    from .fallback import _call
    from .schema import synthetic_records

    recs = synthetic_records(t.bundle.schema, t.spec, n=64)
    out: dict = {}
    try:
        t.compile(recs)
        out["fast_path"] = {"kind": t.fast.kind if t.fast else None, "max_abs_diff": t.fast_error}
    except Exception as exc:  # noqa: BLE001 - a model that cannot be compiled is served through its pipeline
        t.fast = None
        out["fast_path"] = f"not used: {type(exc).__name__}: {exc}"[:300]
    answered = sum(not isinstance(_call(t, [r]), Exception) for r in recs)
    for k in range(max(0, (n if t.fast is not None else min(n, 5)) - len(recs))):
        with contextlib.suppress(Exception):
            t.scores([recs[k % len(recs)]])
    with contextlib.suppress(Exception):
        t.scores(recs)
    out.update(answered=answered, tried=len(recs))
    return out


def verify(tier, report: dict) -> None:
    """Refuse a version that answered fewer than :data:`MIN_WARM_SHARE` of its warm-up records."""
    if report["answered"] < MIN_WARM_SHARE * report["tried"]:
        raise ModelError(f"version {tier.version} answered {report['answered']} of {report['tried']} warm-up "
                         "records itself (the rest raised or gave non-finite scores)",
                         "fix the model and register a new version; the old one keeps serving")


# --------------------------------------------------------------------------- the guard
class Guard:
    """Operational guardrails per arm over the last :data:`GUARD_ROWS` records.

    ``error``: the arm's own model raised; ``fallback``: any other tier answered; ``model_ms``:
    the time the arm's predictions took (one sample per request and arm). A share breaks when
    its Wilson interval's lower bound (at ``releases.alpha``) passes the limit, so a few
    unlucky records do not roll anything back; the p95 breaks when it passes the limit over at
    least ``releases.min_rows`` requests.
    """

    def __init__(self, case):
        spec = case.spec
        g = spec.releases.guardrails
        self.alpha = spec.releases.alpha
        self.min_rows = spec.releases.min_rows
        self.max_error = g.max_error_share
        self.max_fallback = g.max_fallback_share if g.max_fallback_share is not None else \
            spec.monitoring.max_fallback_share
        self.max_p95 = g.max_latency_p95_ms if g.max_latency_p95_ms is not None else spec.constraints.latency_p95_ms
        self._rows = {a: collections.deque(maxlen=GUARD_ROWS) for a in (MODEL_ARM, CANARY_ARM)}
        self._ms = {a: collections.deque(maxlen=GUARD_ROWS) for a in (MODEL_ARM, CANARY_ARM)}
        self._lock = threading.Lock()

    def record(self, arm: str, answers, ms: float) -> None:
        with self._lock:
            for a in answers:
                self._rows[arm].append((a.fallback and a.reason_code == "error", bool(a.fallback)))
            self._ms[arm].append(ms)

    def reset(self, arm: str) -> None:
        with self._lock:
            self._rows[arm].clear()
            self._ms[arm].clear()

    def stats(self, arm: str) -> dict:
        from ..abtest.stats import wilson

        with self._lock:
            rows, ms = list(self._rows[arm]), list(self._ms[arm])
        n = len(rows)
        out = {"records": n, "requests": len(ms)}
        if n:
            err = sum(r[0] for r in rows)
            fb = sum(r[1] for r in rows)
            out["error_share"] = {"value": err / n, "low": max(0.0, float(wilson(err, n, 2 * self.alpha)[0]))}
            out["fallback_share"] = {"value": fb / n, "low": max(0.0, float(wilson(fb, n, 2 * self.alpha)[0]))}
        if ms:
            out["model_ms_p95"] = float(np.percentile(ms, 95))
        return out

    def broken(self, arm: str) -> tuple[list[str], dict]:
        """The guardrails that break on ``arm`` now (empty: none, or too few records yet) and the numbers."""
        st = self.stats(arm)
        reasons: list[str] = []
        if st["records"] >= self.min_rows:
            e, f = st["error_share"], st["fallback_share"]
            if e["low"] > self.max_error:
                reasons.append(f"error share {e['value']:.1%} of {st['records']} records (lower bound "
                               f"{e['low']:.1%}) is above releases.guardrails.max_error_share {self.max_error:.1%}")
            if f["low"] > self.max_fallback:
                reasons.append(f"fallback share {f['value']:.1%} of {st['records']} records (lower bound "
                               f"{f['low']:.1%}) is above the limit {self.max_fallback:.1%}")
        if self.max_p95 and st["requests"] >= self.min_rows and st["model_ms_p95"] > self.max_p95:
            reasons.append(f"model time p95 {st['model_ms_p95']:.1f} ms over {st['requests']} requests is above "
                           f"the limit {self.max_p95:g} ms")
        limits = {"max_error_share": self.max_error, "max_fallback_share": self.max_fallback,
                  "max_latency_p95_ms": self.max_p95, "min_rows": self.min_rows, "alpha": self.alpha}
        return reasons, {"arm": arm, **st, "limits": limits}


# --------------------------------------------------------------------------- the release state
class Release:
    """The canary, the registry watcher and the guard of one server (see the module docstring)."""

    def __init__(self, st, case, settings, canary_text: str | None = None):
        serving = case.spec.serving
        self.st = st
        self.case = case
        self.registry = bool(settings.registry)
        self.follow = self.registry and settings.version is None and "model" not in (settings.bundles or {})
        self.auto_rollback = bool(serving.auto_rollback)
        self.every = float(serving.reload_every)
        self.timeout_s = st.predictor.timeout_s
        self.workers = settings.workers
        self.warmup = max(5, min(settings.warmup, 50))
        self.champion_version = st.predictor.primary.version
        self.canary = None              # the canary arm's Predictor
        self.canary_version: int | None = None
        self.canary_share = 0.0
        self.canary_in_registry = False  # the 'canary' alias was seen on our version: its removal ends the canary
        self.previous = None            # (Predictor, version) switched out, kept warm for a rollback
        self.watching: int | None = None  # a champion switched in by this server: the guard watches it
        self.refused: dict[int, str] = {}
        self.events: collections.deque = collections.deque(maxlen=50)
        self.last_check: str | None = None
        self.last_error: str | None = None
        self.guard = Guard(case)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retired: list = []
        text = canary_text or None
        spec_canary = serving.canary
        if text is not None:
            from pydantic import ValidationError

            from ..spec import CanarySpec

            try:
                spec_canary = CanarySpec.model_validate(text)
            except ValidationError as exc:
                msg = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
                raise SpecError(f"--canary {text!r}: {msg}", "write it as VERSION:SHARE, e.g. --canary 3:10%") from None
        if spec_canary is not None:
            self._start_canary(spec_canary.version, spec_canary.share)

    # ------------------------------------------------------------------ canary
    def _resolve(self, ref) -> int:
        from .. import tracking

        if isinstance(ref, int):
            return ref
        v = tracking.alias_version(self.case, str(ref))
        if v is None:
            raise SpecError(f"serving.canary: no registered alias '{ref}' for case '{self.case.name}'",
                            "give a registry version number (mlcase models lists them) or an existing alias")
        return v

    def _canary_predictor(self, bundle):
        """The canary's chain: its model, then the champion, then the champion's fallbacks."""
        import copy

        from .fallback import Predictor, Tier

        p = self.st.predictor
        primary = p.primary.bundle
        if bundle.task != primary.task or list(bundle.classes or []) != list(primary.classes or []):
            raise SpecError(f"the canary version {bundle.version} predicts {bundle.task} {bundle.classes}, the "
                            f"champion {primary.task} {primary.classes}", "canary a version of the same case and target")
        missing = [f for f in bundle.features if f not in p.primary.spec.features]
        if missing:
            raise SpecError(f"the canary version {bundle.version} needs features the champion's requests do not "
                            f"carry: {', '.join(missing[:5])}", "canary a version trained on the same features")
        serving = self.case.spec.serving
        tier = Tier("model", bundle, check_domain=True, domain_margin=serving.domain_margin,
                    max_unseen=serving.max_unseen_categories)
        champion = copy.copy(p.primary)
        champion.name = "champion"
        return Predictor([tier, champion, *p.tiers[1:]], p.decider, timeout_s=p.timeout_s, workers=self.workers)

    def _start_canary(self, ref, share: float) -> None:
        from .. import tracking

        version = self._resolve(ref)
        if version == self.champion_version:  # promoted since the spec was written: nothing left to canary
            # or, with no champion alias, the baseline served in its place (`--canary 2:50%` on the baseline)
            now = "the champion now" if self.st.serving == "champion" else f"the {self.st.serving} served to every unit"
            self.st.notes.append(f"the canary version {version} is {now}: no canary is served; canary another version")
            return
        tags = next((v["tags"] for v in tracking.versions(self.case) if v["version"] == version), {})
        if tags.get("mlcase.rolled_back"):
            self.st.notes.append(f"the canary version {version} was rolled back ({tags['mlcase.rolled_back'][:200]}); "
                                 "it is not served again: remove serving.canary or canary a new version")
            return
        bundle = tracking.load_bundle(self.case, alias=None, version=version)
        self.canary = self._canary_predictor(bundle)
        self.canary_version, self.canary_share = version, float(share)
        self.st.router.update(canary=self.canary_share)
        if self.registry and tracking.alias_version(self.case, "canary") != version:
            try:
                tracking.set_alias(self.case, "canary", version, record={
                    "action": "canary_start", "who": server_actor(), "why": f"serving {share:.1%} of units",
                    "evidence": {"share": share}})
                self.canary_in_registry = True
            except Exception as exc:  # noqa: BLE001 - a read-only registry: the canary still runs here
                self._event("note", f"could not set the registry alias 'canary' ({redact_text(str(exc))[:200]})")
        else:
            self.canary_in_registry = self.registry
            if self.registry:   # served again (a restart): at another share than last recorded, the history says so
                self._record_share(version, share, "the server started")
        self._event("canary_start", f"version {version} on {share:.1%} of units")

    def _record_share(self, version: int, share: float, how: str, when: str | None = None) -> None:
        """Record the canary's share in the release history when it differs from the last one recorded there.

        ``mlcase rollout status`` checks the arms' sizes against the share in force at each record: a canary
        widened by ``PUT /routing`` (or restarted at another share) was checked against the share it started at,
        and read as a sample ratio mismatch.
        """
        from .. import tracking
        from ..releases.rollout import share_steps

        try:
            steps = share_steps(self.case, version)
            if steps and abs(steps[-1][1] - share) < 1e-12:
                return
            tracking.record_release(self.case, {
                "action": "canary_share", "alias": "canary", "from_version": version, "to_version": version,
                "who": server_actor(), "why": f"{how}: serving {share:.1%} of units"
                + (f" (was {steps[-1][1]:.1%})" if steps else ""), "evidence": {"share": share},
                **({"when": when} if when else {})})
        except Exception as exc:  # noqa: BLE001 - a read-only registry: the share still changed here
            self._event("note", f"could not record the canary's share ({redact_text(str(exc))[:200]})")

    def share_changed(self, share: float, when: str) -> None:
        """After ``PUT /routing`` changed the canary's share (at ``when``): record it for ``mlcase rollout status``."""
        with self._lock:
            version = self.canary_version
            if version is None or not self.registry:
                return
            self._record_share(version, float(share), "PUT /routing", when)
            self._event("canary_share", f"version {version} on {share:.1%} of units")

    def _end_canary(self, action: str, why: str, evidence: dict | None = None, move_alias: bool = True) -> None:
        from .. import tracking

        version = self.canary_version
        self.st.router.update(canary=0.0)
        self._retire(self.canary)
        self.canary, self.canary_version, self.canary_in_registry = None, None, False
        self.guard.reset(CANARY_ARM)
        if move_alias and self.registry and version is not None:
            try:
                if tracking.alias_version(self.case, "canary") == version:
                    tracking.delete_alias(self.case, "canary", record={
                        "action": action, "who": server_actor(), "why": why, "evidence": evidence})
            except Exception as exc:  # noqa: BLE001 - recorded here; the canary has stopped either way
                self._event("note", f"could not remove the registry alias 'canary' ({redact_text(str(exc))[:200]})")
        self._event(action, f"canary version {version} ended: {why}")

    def verify_canary(self, report: dict) -> None:
        """After the start-up warm-up: a canary that cannot answer its warm-up records never serves."""
        try:
            verify(self.canary.primary, report)
        except ModelError as exc:
            with self._lock:
                self.refused[self.canary_version] = str(exc)
                self._end_canary("canary_refused", str(exc), evidence={"warmup": report})

    def canary_tier(self):
        return self.canary.primary if self.canary is not None else None

    # ------------------------------------------------------------------ answering
    async def answer(self, p, records: list[dict], routes, skip=None) -> tuple[list, list[tuple]]:
        """Answers per record from its arm's chain, and per record ``(arm_version, provenance)``: the
        version its arm routes to and :meth:`~mlcase.serve.fallback.Tier.provenance` of the tier that
        answered (with the ``schema_sha256`` the record was validated against). ``skip`` (per record, the
        stale features a tier must not read: ``data.freshness``) is passed to the chain's ``apredict``."""
        canary = self.canary
        n = len(records)
        idx_c = [k for k, r in enumerate(routes) if r.arm == CANARY_ARM] if canary is not None else []
        if canary is None:
            for r in routes:
                if r.arm == CANARY_ARM:  # the canary ended between routing and here
                    r.arm = MODEL_ARM
        chosen = set(idx_c)
        idx_m = [k for k in range(n) if k not in chosen]
        answers: list = [None] * n
        meta: list[tuple] = [(p.primary.version, {})] * n
        schema = p.primary.provenance().get("schema_sha256")
        for idx, pred, arm in ((idx_m, p, MODEL_ARM), (idx_c, canary, CANARY_ARM)):
            if not idx:
                continue
            t0 = time.perf_counter()
            got = await pred.apredict([records[k] for k in idx],
                                      skip=None if skip is None else [skip[k] for k in idx])
            self.guard.record(arm, got, (time.perf_counter() - t0) * 1000.0)
            by_name = {t.name: t for t in pred.tiers}
            for k, a in zip(idx, got, strict=True):
                answers[k] = a
                meta[k] = (pred.primary.version, {**by_name[a.tier].provenance(), "schema_sha256": schema})
        return answers, meta

    # ------------------------------------------------------------------ the watcher
    def start(self) -> None:
        """Start the watcher thread (registry and guard checks every ``serving.reload_every`` seconds)."""
        if self.every <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="mlcase-release", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for pred in self._retired:
            with contextlib.suppress(Exception):
                pred.close()
        if self.canary is not None:
            self.canary.close()
        if self.previous is not None:
            self.previous[0].close()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.check()

    def check(self) -> dict:
        """One pass: the guardrails, then the registry's aliases. Never raises (errors are kept in ``last_error``)."""
        with self._lock:
            try:
                self._guard_pass()
                if self.registry:
                    self._registry_pass()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - the server keeps serving what it has
                self.last_error = redact_text(f"{type(exc).__name__}: {str(exc)[:300]}")
            self.last_check = _now()
        return self.describe()

    def _registry_pass(self) -> None:
        from .. import tracking

        aliases = tracking.aliases(self.case)
        champ = aliases.get("champion")
        if self.follow and champ is not None and champ != self.champion_version and champ not in self.refused:
            self._switch(champ)
        if self.canary_version is not None:
            can = aliases.get("canary")
            self.canary_in_registry = self.canary_in_registry or can == self.canary_version
            if self.canary_version == self.champion_version:
                self._end_canary("canary_end", f"version {self.canary_version} is the champion now", move_alias=True)
            elif can is None and self.canary_in_registry:
                self._end_canary("canary_end", "the registry alias 'canary' was removed", move_alias=False)
            elif can is not None and can != self.canary_version and can != self.champion_version and can not in self.refused:
                self._replace_canary(can)

    def _replace_canary(self, version: int) -> None:
        from .. import tracking

        try:
            pred = self._canary_predictor(tracking.load_bundle(self.case, alias=None, version=version))
            verify(pred.primary, warm_tier(pred.primary, self.warmup))
        except MlcaseError as exc:
            self.refused[version] = str(exc)
            self._event("canary_refused", f"version {version}: {exc}")
            return
        old = self.canary
        self.canary, self.canary_version, self.canary_in_registry = pred, version, True
        self.guard.reset(CANARY_ARM)
        self._retire(old)
        self._event("canary_start", f"version {version} on {self.st.router.shares.canary:.1%} of units "
                                    "(the alias moved)")

    def _switch(self, version: int) -> None:
        """Load, verify and warm up ``version``, then switch it in (the old one stays warm)."""
        from .. import tracking
        from .fallback import Predictor, load_chain

        t0 = time.perf_counter()
        old, old_version = self.st.predictor, self.champion_version
        try:
            chain = load_chain(self.case, version=version)
            if chain.primary.bundle.task != old.primary.bundle.task or \
                    list(chain.primary.bundle.classes or []) != list(old.primary.bundle.classes or []):
                raise ModelError(f"version {version} predicts {chain.primary.bundle.task} "
                                 f"{chain.primary.bundle.classes}, the served model {old.primary.bundle.task} "
                                 f"{old.primary.bundle.classes}", "restart the server to serve another task")
            pred = Predictor(chain.tiers, chain.decider, timeout_s=self.timeout_s, workers=self.workers)
            reports = {}
            for t in pred.tiers:
                if t.kind == "model":
                    reports[t.name] = warm_tier(t, self.warmup)
            verify(pred.primary, reports["model"])
        except Exception as exc:  # noqa: BLE001 - a bad version never replaces a good one
            why = redact_text(str(exc))[:500]
            self.refused[version] = why
            self._event("reload_refused", f"version {version}: {why}")
            if self.auto_rollback and old_version is not None:
                with contextlib.suppress(Exception):
                    tracking.set_version_tags(self.case, version, {"mlcase.rolled_back": why[:4000],
                                                                   "mlcase.was_champion": "false"})
                    tracking.set_alias(self.case, "champion", old_version, record={
                        "action": "auto_rollback", "who": server_actor(),
                        "why": f"version {version} was refused by the server before serving: {why}",
                        "evidence": {"refused": why}})
                    self._event("auto_rollback", f"champion alias moved back to version {old_version}")
            return
        self.st.predictor = pred
        self.st.serving, self.st.notes, self.st.unavailable = "champion", chain.notes, chain.unavailable
        if self.previous is not None:
            self._retire(self.previous[0])
        self.previous = (old, old_version)
        self.champion_version = version
        self.watching = version
        self.guard.reset(MODEL_ARM)
        if self.canary is not None and self.canary_version != version:
            self.canary = self._rebuild_canary()
        self._event("reload", f"champion {old_version} -> {version} in {time.perf_counter() - t0:.1f}s "
                              f"(warm-up: {reports['model']['answered']}/{reports['model']['tried']} answered)")

    def _rebuild_canary(self):
        old = self.canary
        pred = self._canary_predictor(old.primary.bundle)
        pred.tiers[0] = old.primary  # already warm
        self._retire(old)
        return pred

    # ------------------------------------------------------------------ auto-rollback
    def _guard_pass(self) -> None:
        if self.canary is not None:
            reasons, numbers = self.guard.broken(CANARY_ARM)
            if reasons:
                if self.auto_rollback:
                    self._end_canary("auto_rollback", "; ".join(reasons), evidence={"guard": numbers})
                else:
                    self._event("guardrail", f"canary version {self.canary_version}: {'; '.join(reasons)} "
                                             "(serving.auto_rollback is off)")
        if self.watching is not None and self.previous is not None:
            reasons, numbers = self.guard.broken(MODEL_ARM)
            if reasons and self.auto_rollback:
                self._roll_back_champion("; ".join(reasons), numbers)
            elif reasons:
                self._event("guardrail", f"champion version {self.watching}: {'; '.join(reasons)} "
                                         "(serving.auto_rollback is off)")
            elif numbers["records"] >= GUARD_ROWS:
                self.watching = None  # it served a full guard window within its guardrails

    def _roll_back_champion(self, why: str, numbers: dict) -> None:
        from .. import tracking

        bad = self.champion_version
        pred, version = self.previous
        self.st.predictor = pred
        self.previous, self.watching = None, None
        self.champion_version = version
        self.refused[bad] = f"rolled back: {why}"
        self.guard.reset(MODEL_ARM)
        if self.canary is not None:
            self.canary = self._rebuild_canary()
        self._event("auto_rollback", f"champion {bad} -> {version}: {why}")
        with contextlib.suppress(Exception):
            tracking.set_version_tags(self.case, bad, {"mlcase.rolled_back": why[:4000], "mlcase.was_champion": "false"})
        try:
            tracking.set_alias(self.case, "champion", version, record={
                "action": "auto_rollback", "who": server_actor(), "why": why, "evidence": {"guard": numbers}})
        except Exception as exc:  # noqa: BLE001 - this server serves the old version either way
            self._event("note", f"could not move the registry alias back ({redact_text(str(exc))[:200]})")

    # ------------------------------------------------------------------ housekeeping
    def _retire(self, pred) -> None:
        """Close a predictor once calls already in flight on it have finished."""
        if pred is None:
            return
        self._retired.append(pred)
        timer = threading.Timer(RETIRE_AFTER_S, pred.close)
        timer.daemon = True
        timer.start()

    def _event(self, kind: str, text: str) -> None:
        self.events.append({"at": _now(), "kind": kind, "message": text})

    def describe(self) -> dict:
        """What ``GET /release`` and ``/ready`` show."""
        return {"champion_version": self.champion_version, "follows_registry": self.follow,
                "canary": None if self.canary is None else {"version": self.canary_version,
                                                            "share": self.st.router.shares.canary},
                "previous_version": self.previous[1] if self.previous else None,
                "auto_rollback": self.auto_rollback, "reload_every_s": self.every,
                "watching": self.watching, "refused": {str(k): v for k, v in self.refused.items()},
                "guard": {a: self.guard.stats(a) for a in (MODEL_ARM, CANARY_ARM)},
                "last_check": self.last_check, "last_error": self.last_error, "events": list(self.events)}


__all__ = ["Guard", "Release", "server_actor", "verify", "warm_tier"]
