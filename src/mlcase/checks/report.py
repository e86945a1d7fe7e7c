"""The findings of the data checks: :class:`Check` (one finding) and :class:`CheckReport` (all of them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ChecksFailed

CHECKS_VERSION = 1
SEVERITIES = ("error", "warning", "info")
CHECKS_FIX = ("fix the data, or accept a finding with its reason in the spec's checks.accept (see `mlcase check`), "
              "or run with --force to go past every error")


# --------------------------------------------------------------------------- results
@dataclass
class Check:
    """One finding of a data check.

    Attributes
    ----------
    id : str
        The check that fired (``target_leakage``, ``class_balance`` ...).
    severity : {"error", "warning", "info"}
        ``error`` stops ``mlcase run`` unless ``--force``.
    title : str
        What was found, with its numbers.
    column : str or None
        The column concerned, if one.
    evidence : dict
        The measured numbers behind the finding.
    fix : str or None
        What to do, in plain words.
    accepted : str or None
        The owner's reason, where the spec's ``checks.accept`` names this finding: it is still
        shown, and no longer stops a run.
    """

    id: str
    severity: str
    title: str
    column: str | None = None
    evidence: dict = field(default_factory=dict)
    fix: str | None = None
    accepted: str | None = None

    def __post_init__(self):
        if self.severity not in SEVERITIES:  # pragma: no cover - programming error
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "title": self.title, "column": self.column,
                "evidence": _jsonable(self.evidence), "fix": self.fix,
                **({"accepted": self.accepted} if self.accepted else {})}

    @classmethod
    def from_dict(cls, d: dict) -> Check:
        return cls(id=d["id"], severity=d["severity"], title=d["title"], column=d.get("column"),
                   evidence=dict(d.get("evidence") or {}), fix=d.get("fix"), accepted=d.get("accepted"))

    @property
    def label(self) -> str:
        """``accepted`` for a finding the owner accepted, else its severity."""
        return "accepted" if self.accepted else self.severity

    def line(self) -> str:
        col = f" [{self.column}]" if self.column else ""
        return f"{self.id}{col}: {self.title}"


@dataclass
class CheckReport:
    """The findings of :func:`run_checks`.

    ``checks`` holds what fired (errors first); ``ran`` every check that was run
    and ``skipped`` the ones that did not apply, with the reason; ``stats`` the
    numbers the datasheet shows (one-feature scores, proxy scores, shift).
    """

    checks: list[Check] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def errors(self) -> list[Check]:
        """Error-level findings the owner has not accepted: they stop ``mlcase run``."""
        return [c for c in self.checks if c.severity == "error" and not c.accepted]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.severity == "warning" and not c.accepted]

    @property
    def infos(self) -> list[Check]:
        return [c for c in self.checks if c.severity == "info" and not c.accepted]

    @property
    def accepted(self) -> list[Check]:
        """Findings the spec's ``checks.accept`` names, each with the owner's reason."""
        return [c for c in self.checks if c.accepted]

    @property
    def has_errors(self) -> bool:
        return bool(self.errors)

    @property
    def passed(self) -> list[str]:
        """Checks that ran and found nothing."""
        fired = {c.id for c in self.checks}
        return [i for i in self.ran if i not in fired]

    def counts(self) -> dict[str, int]:
        """Findings per severity (accepted ones apart, under ``accepted``)."""
        return {**{s: sum(c.label == s for c in self.checks) for s in SEVERITIES}, "accepted": len(self.accepted)}

    def by_id(self, check_id: str) -> list[Check]:
        return [c for c in self.checks if c.id == check_id]

    def to_dict(self) -> dict:
        return {"version": CHECKS_VERSION, "has_errors": self.has_errors, "counts": self.counts(),
                "checks": [c.to_dict() for c in self.checks], "ran": list(self.ran),
                "passed": self.passed, "skipped": dict(self.skipped), "rows": self.rows,
                "excluded": dict(self.excluded), "stats": _jsonable(self.stats),
                "elapsed_s": round(self.elapsed_s, 3)}

    @classmethod
    def from_dict(cls, d: dict) -> CheckReport:
        return cls(checks=[Check.from_dict(c) for c in d.get("checks", [])], ran=list(d.get("ran", [])),
                   skipped=dict(d.get("skipped", {})), rows=int(d.get("rows", 0)),
                   excluded=dict(d.get("excluded", {})), stats=dict(d.get("stats", {})),
                   elapsed_s=float(d.get("elapsed_s", 0.0)))

    def summary_lines(self) -> list[str]:
        """Plain-text lines for the CLI: a count line, then each finding and its fix."""
        n = self.counts()
        accepted = f", {n['accepted']} accepted" if n["accepted"] else ""
        lines = [f"{n['error']} error(s), {n['warning']} warning(s), {n['info']} note(s){accepted} "
                 f"from {len(self.ran)} checks on {self.rows:,} rows ({len(self.passed)} passed)"]
        for c in self.checks:
            lines.append(f"{c.label.upper():<7} {c.line()}")
            if c.accepted:
                lines.append(f"        accepted: {c.accepted}")
            elif c.fix and c.severity != "info":
                lines.append(f"        fix: {c.fix}")
        return lines

    def raise_for_errors(self) -> None:
        """Raise :class:`~mlcase.errors.ChecksFailed` listing the error-level findings, if any."""
        if not self.has_errors:
            return
        lines = [c.line() for c in self.errors]
        more = f" (+{len(lines) - 5} more)" if len(lines) > 5 else ""
        # one error with its own remedy: that remedy first (a rare class names the query that drops it)
        own = self.errors[0].fix if len(self.errors) == 1 else None
        fix = f"{own}; or accept the finding with its reason in the spec's checks.accept (see `mlcase check`), " \
              "or run with --force to go past it" if own else CHECKS_FIX
        raise ChecksFailed(f"data checks found {len(lines)} error(s): {'; '.join(lines[:5])}{more}", fix,
                           checks=[c.id for c in self.errors])



def apply_accepted(report: CheckReport, accept, known: set[str], columns) -> None:
    """Mark the findings the spec's ``checks.accept`` names as accepted, with the owner's reason.

    An entry naming a check that does not exist, or a column the data lacks, is a
    :class:`~mlcase.errors.SpecError`: a typo must not silently accept nothing. An entry that
    matched no finding of a check that ran is reported as a note, so a stale one is seen.
    """
    from ..errors import SpecError

    cols = {str(c) for c in columns}
    for i, a in enumerate(accept):
        if a.check not in known:
            raise SpecError(f"checks.accept[{i}].check: '{a.check}' is not a data check",
                            f"use an id that `mlcase check` prints: {', '.join(sorted(known))}")
        if a.column is not None and a.column not in cols:
            raise SpecError(f"checks.accept[{i}].column: '{a.column}' is not a column of the data",
                            "name a column of data.source, or leave column out to accept the finding on any column")
    for i, a in enumerate(accept):
        hits = [c for c in report.checks if c.id == a.check and (a.column is None or c.column == a.column)]
        for c in hits:
            c.accepted = a.reason
        if not hits and a.check in report.ran:
            col = f" [{a.column}]" if a.column else ""
            report.checks.append(Check("accepted_unused", "info", f"checks.accept[{i}] ({a.check}{col}) matched no "
                                       "finding", evidence={"check": a.check, "column": a.column},
                                       fix="remove it from checks.accept once the data no longer needs it"))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    report.checks.sort(key=lambda c: (order.get(c.severity, len(order)), c.accepted is not None))


def _jsonable(o: Any):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float):
        return None if not math.isfinite(o) else round(o, 6)
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    return o

