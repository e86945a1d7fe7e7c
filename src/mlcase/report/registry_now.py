"""Which registered version each alias points at now, for the report and the model card.

``.mlcase/registry.json`` is what the last run registered and where it left ``champion``. ``mlcase promote``,
``mlcase rollback``, a canary and a server's automatic rollback move the registry's aliases without rewriting
it, so a report or card rebuilt from it alone kept naming the run's champion: modeldata::hpc_data after
``mlcase promote --version 2`` (the linear baseline) still read "champion lightgbm (registry version 1)", and
``mlcase card`` logged the card to version 1. :func:`registry_now` asks the registry (one call) and returns the
stage result with the live aliases.
"""

from __future__ import annotations

import logging

from ..case import Case

log = logging.getLogger("mlcase.report")


def _run_names(registry: dict) -> dict[int, str]:
    """The versions this run registered and the model each holds."""
    out: dict[int, str] = {int(v): str(k) for k, v in (registry.get("by_name") or {}).items() if v is not None}
    for key, name in (("candidate_version", registry.get("candidate")), ("baseline_version", registry.get("baseline"))):
        if registry.get(key) is not None and name:
            out[int(registry[key])] = str(name)
    refit = registry.get("refit") or {}
    if refit.get("refit_version") is not None:
        out[int(refit["refit_version"])] = str(refit.get("name") or registry.get("candidate") or "refit")
    return out


def registry_now(case: Case, registry: dict | None) -> dict:
    """``registry`` (the ``registry`` stage result) with the aliases the case's registry holds now.

    Adds ``aliases_now`` (alias -> version), ``champion_name`` and ``champion_of_this_run`` (whether the champion
    is one of the versions this run registered, whose test numbers the report shows); where ``champion`` moved
    after the run, ``champion_version`` is the live one, ``champion_version_at_run`` the run's and
    ``champion_moved_after_run`` is true. Without a store to ask (none written yet, or it cannot be read), the
    stage result is returned as it is.
    """
    registry = dict(registry or {})
    if not registry:
        return registry
    if case.uses_embedded_store and not (case.root / "mlflow.db").exists():
        return registry
    try:
        from .. import tracking

        versions = tracking.versions(case)
    except Exception as exc:  # noqa: BLE001 - a report is rebuilt from the stage results even without a registry
        log.debug("report: the registry could not be read (%s: %s); showing the run's aliases", type(exc).__name__, exc)
        return registry
    aliases = {a: v for v in versions for a in v.get("aliases") or []}
    names = _run_names(registry)
    champ = aliases.get("champion")
    now = int(champ["version"]) if champ else None
    registry["aliases_now"] = {a: int(v["version"]) for a, v in sorted(aliases.items())}
    at_run = registry.get("champion_version")
    if now != (None if at_run is None else int(at_run)):
        registry["champion_version_at_run"] = at_run
        registry["champion_version"] = now
        registry["champion_moved_after_run"] = True
    if now is not None:
        registry["champion_name"] = names.get(now) or (champ.get("tags") or {}).get("mlcase.family") or f"version {now}"
        registry["champion_of_this_run"] = now in names
    return registry


def champion_text(registry: dict, decided: str | None) -> str | None:
    """The champion in words for the report's banner and the card, or None when there is none to name.

    ``decided``: the model the run's decision made champion (``decision.champion``), if any.
    """
    now = registry.get("champion_version")
    name = registry.get("champion_name") or decided
    if registry.get("champion_moved_after_run"):
        at_run = registry.get("champion_version_at_run")
        before = (f"this run left it at version {at_run}" + (f" ({decided})" if decided else "")
                  if at_run is not None else "this run set none")
        if now is None:
            return f"none: the champion alias was removed after this run ({before})"
        return f"{name} (registry version {now}; moved after this run: {before})"
    if now is None:
        return None
    if not registry.get("champion_of_this_run", True):
        return (f"{name} (registry version {now}, from an earlier run: this run's decision did not move it; the test "
                "numbers here are of this run's versions, not of it)")
    return f"{name} (registry version {now})"
