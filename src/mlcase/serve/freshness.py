"""Feature freshness at serving time, and what the log may keep (the server's governance hooks).

``data.freshness: {balance: 1d}`` says how old a feature may be when the decision is made. A
record may carry its features' as-of time in ``_as_of``: one time for every such feature, or an
object by feature::

    {"balance": 1520.5, "income": 41000, "_as_of": {"balance": "2026-03-04T08:00:00Z"}}

Times are ISO 8601 (UTC when no zone is given) or seconds since the epoch. A feature whose age at
the request exceeds its limit is *stale*: the answer lists it in ``flags.stale``, and with
``serving.on_stale: fallback`` every tier that reads it steps aside (reason ``stale``), so the
next tier that does not read it answers, the constant tier at the latest. A feature without an
as-of time (or with ``null`` as its time) is not judged (its age is logged as unknown). The log
keeps each record's ages and stale features in ``freshness`` (JSON), which monitoring turns into
the stale share per feature.

:func:`load_governance` also sets the server's :class:`~mlcase.governance.policy.LogPolicy` (what
the log keeps of each column) and reads the log key, so a bad key stops ``serve`` before it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from ..formats import duration, rough_duration

AS_OF_FIELD = "_as_of"
MAX_CLOCK_SKEW_S = 300.0  # an as-of time this far ahead of the server's clock is taken as now
MILLISECONDS_FROM = 1e11  # epoch seconds past this (the year 5138) are milliseconds a client forgot to divide


@dataclass
class Staleness:
    """One record's freshness: the age in seconds of each feature with a limit (None: unknown) and the stale ones."""

    ages: dict[str, float | None]
    stale: dict[str, str]  # feature -> why ("2.0d old, limit 1d")

    def to_log(self) -> dict:
        return {"age_s": self.ages, "stale": list(self.stale)}


class Freshness:
    """The freshness limits of one served case (``data.freshness``, ``serving.on_stale``)."""

    def __init__(self, limits: dict[str, float], on_stale: str = "flag"):
        self.limits = dict(limits)
        self.fallback = on_stale == "fallback"

    def split(self, items: list) -> tuple[list, list, list[dict]]:
        """Take ``_as_of`` out of each record: ``(records without it, as-of per record, issues)``.

        An issue (a time that is not one, a feature without a limit, a time in the future) is
        ``{"record", "field", "message"}``, as the record validation reports them.
        """
        out, as_of, issues = [], [], []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or AS_OF_FIELD not in item:
                out.append(item)
                as_of.append({})
                continue
            item = dict(item)
            raw = item.pop(AS_OF_FIELD)
            out.append(item)
            given: dict[str, float] = {}
            if isinstance(raw, dict):
                pairs = list(raw.items())
            elif raw is None:
                pairs = []
            else:
                pairs = [(f, raw) for f in self.limits]
            bad: set[str] = set()  # one issue per field: a bad single time was reported once per feature
            for feature, value in pairs:
                field = f"{AS_OF_FIELD}.{feature}" if isinstance(raw, dict) else AS_OF_FIELD
                if feature not in self.limits:
                    issues.append({"record": i, "field": field, "message": f"'{feature}' has no limit in "
                                   f"data.freshness (features with one: {', '.join(self.limits)})"})
                    continue
                if value is None:  # {"balance": null}: not known, like no _as_of at all (a client's optional field)
                    continue
                t = parse_time(value)
                if t is None:
                    if field not in bad:
                        bad.add(field)
                        issues.append({"record": i, "field": field, "message": "expected an ISO 8601 time or "
                                       f"seconds since the epoch, got {str(value)[:40]!r}"})
                else:
                    given[feature] = t
            as_of.append(given)
        return out, as_of, issues

    def judge(self, as_of: list[dict], now: float | None = None) -> list[Staleness]:
        """Each record's ages and stale features at ``now`` (default: the server's clock)."""
        now = datetime.now(UTC).timestamp() if now is None else now
        out = []
        for given in as_of:
            ages: dict[str, float | None] = {}
            stale: dict[str, str] = {}
            for f, limit in self.limits.items():
                if f not in given:
                    ages[f] = None
                    continue
                age = max(0.0, now - given[f])
                ages[f] = round(age, 3)
                if age > limit:
                    stale[f] = f"{f} is {rough_duration(age)} old (data.freshness allows {duration(limit)})"
            out.append(Staleness(ages, stale))
        return out

    def future(self, as_of: list[dict], now: float | None = None) -> list[dict]:
        """Issues for as-of times later than now (beyond :data:`MAX_CLOCK_SKEW_S`)."""
        now = datetime.now(UTC).timestamp() if now is None else now
        return [{"record": i, "field": f"{AS_OF_FIELD}.{f}", "message": "the as-of time is in the future"
                 + (" (as seconds since the epoch it is past the year 5000: send seconds, not milliseconds)"
                    if t > MILLISECONDS_FROM else "")}
                for i, given in enumerate(as_of) for f, t in given.items() if t > now + MAX_CLOCK_SKEW_S]

    def schema(self) -> dict:
        """The JSON schema of ``_as_of`` (added to the Record model in ``/openapi.json``)."""
        time = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]}
        known = {"anyOf": [*time["anyOf"], {"type": "null"}]}  # null: this feature's time is not known
        return {"anyOf": [time, {"type": "object", "additionalProperties": False,
                                 "properties": {f: known for f in self.limits}}],
                "description": "When the features were last updated (ISO 8601 or epoch seconds): one time for "
                               f"{', '.join(self.limits)}, or an object by feature. A feature older than "
                               "data.freshness allows is flagged in flags.stale"
                               + (" and sent to the next fallback tier." if self.fallback else ".")}


def parse_time(value) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (UTC when it has no zone) or a number; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def load_governance(st, case, chain) -> None:
    """Set ``st.policy`` (what the log keeps) and ``st.freshness``; bad columns or a bad key stop ``serve``."""
    from ..governance.policy import LogPolicy

    spec = case.spec
    st.policy = LogPolicy.from_spec(spec)
    st.policy.check_columns(list(chain.primary.bundle.features), spec.data.freshness)
    st.policy.load_key()
    st.freshness = Freshness(spec.data.freshness, spec.serving.on_stale) if spec.data.freshness else None


def prepare_records(st, items: list):
    """``(items without _as_of, staleness per record or None, issues)`` for ``/predict``.

    The issues are :class:`~mlcase.serve.schema.Issue` objects, like the record validation's.
    """
    from .schema import Issue

    if getattr(st, "freshness", None) is None:  # an _as_of here was 'not a column of this model': it is not one
        issues = [Issue(record=i, field=AS_OF_FIELD, message="this case judges no feature's age: data.freshness is "
                        "not set in case.yaml; set it (e.g. {balance: 1d}) or leave _as_of out")
                  for i, item in enumerate(items) if isinstance(item, dict) and AS_OF_FIELD in item]
        if not issues:
            return items, None, []
        return [{k: v for k, v in it.items() if k != AS_OF_FIELD} if isinstance(it, dict) else it
                for it in items], None, issues
    items, as_of, issues = st.freshness.split(items)
    now = datetime.now(UTC).timestamp()
    issues += st.freshness.future(as_of, now)
    return items, st.freshness.judge(as_of, now), [Issue(**i) for i in issues]
