"""Who owns which alert: every alert kind maps to a role of ``owners:`` (or to a name).

The default roles follow who can act on the alert: the data's owner on drift and stale
features, the serving owner on fallbacks and silence, the model's owner on money and
assumptions, the review team on a growing backlog. ``monitoring.alert_owners`` overrides a
kind with a role (a key of ``owners:``) or a name. A role the case does not name falls back
to ``owner`` (the case's owner), then to ``owners.model``, then to ``unassigned``.
"""

from __future__ import annotations

#: alert kind -> default role (a key of ``owners:``)
ALERT_ROLES = {
    "drift": "data",
    "score_drift": "model",
    "stale_features": "data",
    "fallback": "serving",
    "no_traffic": "serving",
    "monitoring_gap": "serving",
    "estimated_cost": "model",
    "realized_cost": "model",
    "assumption": "model",
    "review_backlog": "review",
    "guardrail": "model",
    "label_bias": "model",            # labels (#15): acted-on labels differ from the holdout's
    "estimate_check": "model",
    "audit": "review",
    "behind_seasonal_naive": "model",  # forecast monitoring (#19)
    "interval_coverage": "model",
    "series_coverage": "model",
    "residual_drift": "data",
    "ranking_quality": "model",        # ranking monitoring: realized NDCG@k below the test period's
}
UNASSIGNED = "unassigned"


def owner_of(kind: str, spec) -> str:
    """The owner (a name) of alert ``kind`` under the case spec ``spec``."""
    explicit = spec.monitoring.alert_owners.get(kind)
    if explicit is not None:
        return spec.owners.get(explicit, explicit)
    role = ALERT_ROLES.get(kind, "model")
    return spec.owners.get(role) or spec.owner or spec.owners.get("model") or UNASSIGNED


def routing_table(spec) -> list[dict]:
    """Every alert kind with its owner and where the owner came from (for the card and the report)."""
    out = []
    for kind, role in ALERT_ROLES.items():
        explicit = spec.monitoring.alert_owners.get(kind)
        if explicit is not None:
            via = f"monitoring.alert_owners ({explicit})" if explicit not in spec.owners else f"owners.{explicit}"
        elif spec.owners.get(role):
            via = f"owners.{role}"
        elif spec.owner:
            via = "owner"
        elif spec.owners.get("model"):
            via = "owners.model"
        else:
            via = "nobody named"
        out.append({"alert": kind, "owner": owner_of(kind, spec), "via": via})
    return out


def assign(alerts: list[dict], spec) -> list[dict]:
    """Set ``owner`` on each alert (in place) and return them."""
    for a in alerts:
        a["owner"] = owner_of(a.get("kind", ""), spec)
    return alerts


def by_owner(alerts: list[dict]) -> dict[str, list[dict]]:
    """Alerts grouped by their ``owner``, owners in order of first appearance."""
    out: dict[str, list[dict]] = {}
    for a in alerts:
        out.setdefault(a.get("owner") or UNASSIGNED, []).append(a)
    return out


def owner_counts(alerts: list[dict]) -> dict[str, dict]:
    """``{owner: {"n": alerts, "kinds": [...]}}``: who has to act on what."""
    out: dict[str, dict] = {}
    for owner, items in by_owner(alerts).items():
        out[owner] = {"n": len(items), "kinds": list(dict.fromkeys(a["kind"] for a in items))}
    return out



def notify_targets(names: list[str], spec) -> set[str]:
    """The owners a ``monitoring.notify[i].owners`` list reaches: a role of ``owners:`` is its owner; a default
    role the case does not name (data, serving, model, review) is whoever owns that role's alert kinds (the
    case's ``owner`` where it falls back); anything else is an owner's name."""
    roles = set(ALERT_ROLES.values())
    out: set[str] = set()
    for name in names:
        if name in spec.owners:
            out.add(spec.owners[name])
            continue
        out.add(name)
        if name in roles:
            out |= {owner_of(k, spec) for k, r in ALERT_ROLES.items()
                    if r == name and k not in spec.monitoring.alert_owners}
    return out


def check_notify_owners(spec) -> None:
    """A ``monitoring.notify[i].owners`` entry must reach someone who owns an alert kind (a role or an owner's
    name): a typo ran the command for nobody, and no alert ever said so. Raises ValueError."""
    possible = {owner_of(kind, spec) for kind in ALERT_ROLES}
    for i, cmd in enumerate(spec.monitoring.notify):
        for name in cmd.owners or []:
            if not notify_targets([name], spec) & possible:
                raise ValueError(
                    f"monitoring.notify[{i}].owners: '{name}' owns no alert, so this command would never run; name "
                    f"a role of owners ({', '.join(spec.owners) or 'none set'}) or an alert's owner "
                    f"({', '.join(sorted(possible))})")
