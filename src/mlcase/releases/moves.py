"""Moving the ``champion`` (and ``canary``) alias: ``mlcase promote`` and ``mlcase rollback``.

Every move is recorded in the release history (:func:`mlcase.tracking.record_release`):
who, when, from, to, why and the evidence (the readiness score, the rollout status).
A running server picks the move up at its next registry check (``serving.reload_every``)
or at once on ``POST /release/check``.
"""

from __future__ import annotations

from ..arguments import flag, registry_version
from ..case import Case, as_case
from ..errors import MlcaseError, NotFoundError, SpecError


class ReleaseRefused(MlcaseError):
    """A promote or rollback that the gates refuse (``--force`` overrides the readiness and rollout gates)."""

    http_status = 409


def rollback_target(case: Case, current: int, history: list[dict] | None = None,
                    versions: list[dict] | None = None) -> int | None:
    """The version ``mlcase rollback`` returns to from ``current``.

    The version the champion last moved from to ``current`` (a promote or a decision), else the
    newest earlier champion (tag ``mlcase.was_champion``); never a version that was rolled back.
    """
    from .. import tracking

    history = tracking.release_history(case) if history is None else history
    versions = tracking.versions(case) if versions is None else versions
    bad = {v["version"] for v in versions if v["tags"].get("mlcase.rolled_back")}
    for h in history:  # newest first
        if (h.get("alias") == "champion" and h.get("to_version") == current
                and h.get("action") not in ("rollback", "auto_rollback")
                and h.get("from_version") not in (None, current) and h["from_version"] not in bad):
            return h["from_version"]
    older = [v["version"] for v in versions if v["version"] != current and v["version"] not in bad
             and str(v["tags"].get("mlcase.was_champion", "")).lower() == "true"]
    return max(older) if older else None


def promote(case: Case, version: int, *, why: str | None = None, force: bool = False, log: str | None = None,
            with_rollout: bool = True) -> dict:
    """Point ``champion`` at ``version`` if it passes the gates; record the move with its evidence.

    Gates (``force`` overrides both, and the record says so): the readiness score must reach
    ``releases.min_readiness``, and when the version ran as a canary, ``mlcase rollout status``
    must not say ``rollback``. The version must load with a valid signature. When the
    ``canary`` alias points at ``version``, the canary ends (the alias is removed).

    Returns
    -------
    dict
        ``from_version``, ``to_version``, ``forced``, ``readiness`` (score, groups, minimum),
        ``rollout`` (the canary's verdict and reasons, when it ran as one), ``run_id`` of the record.
    """
    case = as_case(case)  # a case.yaml path, as mlcase.run takes it ('str' object has no attribute 'work_dir')
    version = registry_version(version)  # promote(case, True) promoted version 1, promote(case, 1.5) too
    why, force = _why(why), flag(force, "force")
    from ..lock import case_lock

    # a run rewrites the evidence read here (readiness, the decision) and moves the champion itself: a promote
    # during one went through on half-written results, and either move could record the wrong 'from'
    with case_lock(case, "promote"):
        return _promote(case, version, why, force, log, with_rollout)


def _why(why) -> str | None:
    """The reason a caller gives for a move, checked before anything moves: ``why=5`` moved the champion, then
    failed on ``reason[:4000]`` (TypeError) before the release was recorded."""
    if why is None or isinstance(why, str):
        return why
    raise SpecError(f"why: expected text (the reason recorded with the move), got a {type(why).__name__}",
                    "pass e.g. why='the canary held its guardrails for a week', or leave it out")


def _promote(case: Case, version: int, why: str | None, force: bool, log: str | None, with_rollout: bool) -> dict:
    from .. import tracking
    from .mltest import readiness

    current = tracking.alias_version(case, "champion")
    if current == version:
        raise ReleaseRefused(f"version {version} is the champion already", "nothing to promote")
    tracking.load_bundle(case, alias=None, version=version)  # exists, and its files and signature verify
    from .rollout import given_log

    given_log(case, log, f"promote version {version}")
    ready = readiness(case, log=log)
    rollout = _canary_verdict(case, version, log) if with_rollout else None
    overridden = []
    if not ready.passes:
        overridden.append(f"readiness {ready.score:g} is below releases.min_readiness {ready.minimum:g}")
    if rollout and rollout["verdict"] == "rollback":
        overridden.append(f"the canary's rollout status says rollback ({'; '.join(rollout['reasons'][:2])})")
    if overridden and not force:
        steps = "; ".join(ready.next_steps(2)) if not ready.passes else ""
        raise ReleaseRefused(f"promote version {version} refused: {'; '.join(overridden)}",
                             (f"close: {steps}; " if steps else "") + "or pass --force (the record says so)")
    against = _against_decision(case, version, rollout)
    # a version rolled back before and promoted again kept its 'mlcase.rolled_back' tag while champion: the next
    # rollback from a later version skipped it (HMDA: 1 -> 3, rolled back, 3 again, then 2: rollback went to 1,
    # not to 3), and nothing said the version had been rolled back. The move says so and clears the tag.
    was_rolled_back = _rolled_back(case, version)
    evidence = {"readiness": {"score": ready.score, "groups": ready.groups, "minimum": ready.minimum},
                "rollout": rollout, "overridden": overridden, "against_decision": against,
                "was_rolled_back": was_rolled_back}
    text = why or (f"canary verdict {rollout['verdict']}" if rollout else "promoted by hand")
    if current is not None:
        tracking.set_version_tags(case, current, {"mlcase.was_champion": "true"})
    if was_rolled_back:
        _clear_rolled_back(case, version)
    tracking.set_alias(case, "champion", version, reason=text, record={
        "action": "promote", "why": text, "forced": bool(overridden), "readiness": ready.score, "evidence": evidence})
    if tracking.alias_version(case, "canary") == version:
        tracking.delete_alias(case, "canary", record={"action": "canary_end", "why": f"version {version} promoted"})
    return {"action": "promote", "alias": "champion", "from_version": current, "to_version": version,
            "forced": bool(overridden), "overridden": overridden, "why": text,
            "readiness": evidence["readiness"], "rollout": rollout, "against_decision": against,
            "was_rolled_back": was_rolled_back}


def _rolled_back(case: Case, version: int) -> str | None:
    """Why ``version`` was rolled back (its ``mlcase.rolled_back`` tag), or None."""
    from .. import tracking

    return next((v["tags"].get("mlcase.rolled_back") for v in tracking.versions(case) if v["version"] == version),
                None) or None


def _clear_rolled_back(case: Case, version: int) -> None:
    """A version made champion again is no longer 'rolled back': :func:`rollback_target` skips a tagged one."""
    from .. import tracking

    tracking.client(case).delete_model_version_tag(case.name, str(version), "mlcase.rolled_back")


def _against_decision(case: Case, version: int, rollout: dict | None) -> str | None:
    """What the case's last decision said of ``version`` when a hand promotes the candidate it did not make
    champion (and no canary of it says promote), else None. Promoting a NO_GO candidate was answered as any move
    ("champion: version None -> 1"), with nothing saying the case's own gate had said no."""
    from .. import results

    decision, registry = results.load(case, "decision") or {}, results.load(case, "registry") or {}
    verdict = decision.get("verdict")
    if (verdict in (None, "GO") or registry.get("candidate_version") != version
            or (rollout or {}).get("verdict") == "promote"):
        return None
    first = (decision.get("reasons") or [""])[0]
    return f"the case's last decision is {verdict} for version {version}" + (f" ({first[:160]})" if first else "")


def _canary_verdict(case: Case, version: int, log: str | None) -> dict | None:
    """The rollout status of ``version`` when the log holds it as a canary, else None."""
    from .rollout import NoCanary, rollout_status

    try:
        status = rollout_status(case, log=log, version=version)
    except NoCanary as exc:
        # a log named by hand that is not there is no evidence that the version never ran as a canary:
        # `promote --log typo.db` went past a canary whose rollout status, in the default log, said rollback
        if log is not None and getattr(exc, "no_log", False):   # given_log refuses it first; kept for callers
            raise NotFoundError(f"promote version {version}: {exc.message}", exc.fix) from None
        return None
    return {"verdict": status.verdict, "reasons": status.reasons, "canary_version": status.canary_version}


def rollback(case: Case, *, to: int | None = None, why: str | None = None) -> dict:
    """End a running canary, or move ``champion`` back to the version before it.

    With a ``canary`` alias set (and ``to`` not given), the canary ends: the alias is removed
    and every server stops routing units to it. Otherwise ``champion`` moves to ``to`` or to
    :func:`rollback_target`; the version it leaves is tagged ``mlcase.rolled_back`` (and is no
    longer anyone's ``previous_champion``).
    """
    case, why = as_case(case), _why(why)
    if to is not None:  # rollback(to=2.9) moved the champion to version 2
        to = registry_version(to, "to")
    from ..lock import case_lock

    with case_lock(case, "rollback"):  # not in the middle of a run's (or a promote's) move of the champion
        return _rollback(case, to, why)


def _rollback(case: Case, to: int | None, why: str | None) -> dict:
    from .. import tracking

    al = tracking.aliases(case)
    champ, canary = al.get("champion"), al.get("canary")
    if to is None and canary is not None and canary != champ:
        text = why or "canary rolled back by hand"
        tracking.delete_alias(case, "canary", record={"action": "rollback", "why": text})
        return {"action": "rollback", "alias": "canary", "from_version": canary, "to_version": None, "why": text}
    if champ is None:
        raise NotFoundError(f"case '{case.name}' has no champion to roll back", "promote a version first")
    target = to if to is not None else rollback_target(case, champ)
    if target is None:
        raise NotFoundError(f"no earlier champion of case '{case.name}' to roll back to from version {champ}",
                            "pass --to N (mlcase models lists the versions)")
    if target == champ:
        raise ReleaseRefused(f"version {target} is the champion already", "pass --to with another version")
    tracking.load_bundle(case, alias=None, version=target)  # the way back must load and verify
    text = why or "rolled back by hand"
    was_rolled_back = _rolled_back(case, target)   # --to a version rolled back before: champion again, untagged
    tracking.set_version_tags(case, champ, {"mlcase.rolled_back": text, "mlcase.was_champion": "false"})
    if was_rolled_back:
        _clear_rolled_back(case, target)
    tracking.set_alias(case, "champion", target, reason=text, record={
        "action": "rollback", "why": text, "evidence": {"was_rolled_back": was_rolled_back}})
    return {"action": "rollback", "alias": "champion", "from_version": champ, "to_version": target, "why": text,
            "was_rolled_back": was_rolled_back}


def history(case: Case, limit: int = 100, evidence: bool = False) -> dict:
    """The release history, newest first, and the aliases now (what ``mlcase releases`` prints)."""
    case = as_case(case)
    from .. import tracking

    return {"case": case.name, "aliases": tracking.aliases(case),
            "events": tracking.release_history(case, limit=limit, evidence=evidence)}


__all__ = ["ReleaseRefused", "history", "promote", "rollback", "rollback_target"]
