"""What a monitoring run returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MonitorResult:
    """What :func:`monitor` found.

    Attributes
    ----------
    alerts : list of dict
        ``kind`` (drift, score_drift, fallback, estimated_cost, realized_cost,
        assumption, review_backlog, stale_features, no_traffic, monitoring_gap),
        ``feature`` or ``assumption``, ``window``, ``value``, ``threshold``,
        ``message`` and ``owner`` (:mod:`mlcase.governance.owners`). Any alert
        makes ``mlcase monitor`` exit 1.
    windows : list of dict
        One per time window, oldest first (see :func:`monitor`). Each realized
        metric says what its labels rest on (``labels``: basis, rows, sources);
        with a holdout arm or reviews, ``by_source`` holds the window's
        holdout, acted-on, bias, audit-weighted and estimate-check figures
        (:mod:`mlcase.monitor.label_sources`).
    overall : dict
        Drift over all rows together, and ``by_source`` over all windows (with
        the holdout's sizing).
    labels : dict
        The label join: labels read, duplicated and conflicting request ids,
        labels for unknown request ids, unreadable labels.
    warnings : list of dict
        ``kind`` and ``message``: what deserves a look but raises no alert.
    reviews : dict or None
        Reviewer-vs-model and reviewer-vs-reviewer agreement and the backlog per
        window (:mod:`mlcase.monitor.reviews`); None when no verdict is in the log.
    """

    case: str
    source: str
    model: dict
    task: str
    window_seconds: float
    as_of: str | None
    thresholds: dict
    features: list[str]
    windows: list[dict]
    overall: dict
    labels: dict
    alerts: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    reviews: dict | None = None
    compacted: dict | None = None      # what compacting the closed windows first did (mlcase.monitor.compact)
    ranking: dict | None = None  # ranking cases: mlcase.monitor.ranking.list_metrics

    def __repr__(self) -> str:
        # the dataclass repr printed every window's drift tables: 23,859 characters for 300 rows of MASS::Boston
        # in one 30-day window, 86,555 in 13 daily ones
        from collections import Counter

        kinds = dict(Counter(a.get("kind") for a in self.alerts))
        return (f"MonitorResult(case={self.case!r}, model_version={(self.model or {}).get('version')!r}, "
                f"windows={len(self.windows)}, alerts={kinds}, warnings={len(self.warnings)})")

    @property
    def exit_code(self) -> int:
        """1 when an alert fired (for cron and CI), else 0."""
        return 1 if self.alerts else 0

    def alerts_by_owner(self) -> dict[str, dict]:
        """``{owner: {"n": alerts, "kinds": [...]}}``: who has to act on what."""
        from ..governance.owners import owner_counts

        return owner_counts(self.alerts)

    @property
    def n_rows(self) -> int:
        return int(sum(w["n"] for w in self.windows))

    def to_dict(self) -> dict:
        return {"case": self.case, "source": self.source, "model": self.model, "task": self.task,
                "window_seconds": self.window_seconds, "as_of": self.as_of, "thresholds": self.thresholds,
                "features": self.features, "n_rows": self.n_rows, "n_windows": len(self.windows),
                "status": "alert" if self.alerts else "ok", "n_alerts": len(self.alerts), "alerts": self.alerts,
                "alerts_by_owner": self.alerts_by_owner(),
                "warnings": self.warnings, "labels": self.labels, "overall": self.overall, "reviews": self.reviews,
                "compacted": self.compacted, "windows": self.windows,
                **({"ranking": self.ranking} if self.ranking is not None else {})}
