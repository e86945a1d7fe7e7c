"""The monitoring run: read the log into DuckDB, cut it into windows, and hand each stage its part.

:func:`monitor` resolves the log and the model, builds a :class:`_Run` (a
temporary DuckDB database capped at :data:`DUCKDB_MEMORY_LIMIT`, spilling to
disk past it), loads the log (:mod:`.sources`), builds the windowed ``log``
table, then runs drift (:mod:`.drift`), decisions and fallbacks (here),
performance (:mod:`.performance`), assumptions (:mod:`.assumptions`) and
alerts (:mod:`.alerts`) over it.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

import numpy as np

from ..drift import psi_js
from ..errors import DataError, ModelError, NotFoundError, RuleError, SpecError
from . import alerts as _alerts
from . import assumptions as _assumptions
from . import drift as _drift
from . import governance as _governance
from . import performance as _performance
from . import reviews as _reviews
from . import sources as _sources
from ._util import _iso, _lit, _num
from .reference import REFERENCE_VERSION, build_reference, feature_kinds
from .result import MonitorResult

DRIFT_ALPHA = 0.05     # level of the KS / chi-square tests
DUCKDB_MEMORY_LIMIT = "512MB"  # DuckDB spills to the run's temporary folder past this


def monitor(case, log=None, labels=None, window=None, bundle=None, *, now=None, alpha: float = DRIFT_ALPHA,
            alias: str | None = None, engine=None, compact: bool | None = None) -> MonitorResult:
    """Compare the served data and outcomes with the training reference, window by window.

    Parameters
    ----------
    case : mlcase.case.Case, str or Path
        The case, or the path of its ``case.yaml`` (or of the folder holding it).
    log : str, Path or DataFrame, optional
        The prediction log: a SQLite file or SQLAlchemy URL holding the
        ``predictions`` (and ``labels``) tables, or a CSV/Parquet file (or a
        DataFrame) of recent records: the feature columns plus optional ``ts``
        (or the spec's time column), ``request_id``, ``score``, ``decision``,
        ``prediction``, ``tier``, ``fallback``, ``reason`` and ``label`` (or the
        target column). Default: ``serving.log`` or ``<case>/predictions.db``.
    labels : str, Path or DataFrame, optional
        CSV/Parquet (or a DataFrame) of delayed labels: ``request_id``, ``label``
        and optionally ``ts`` (when the label arrived). Read after the log's own
        labels; the last label of a request id wins.
    window : str or float, optional
        Window length (``1d``, ``6h``, seconds); default ``monitoring.window``.
    bundle : ModelBundle, optional
        Default: the model registered under ``alias``.
    now : datetime, str or float, optional
        The time label maturity is judged at (a datetime, ISO-8601 text or epoch
        seconds); default the latest time in the log or its labels, so a
        replayed log gives the same answer.
    alpha : float
        Level of the drift tests, between 0 and 1.
    alias : str, optional
        The registered alias to monitor; default ``champion``, else ``baseline``
        when no champion is set. A given alias that is not registered is refused.
    engine : mlcase.engine.Engine, optional
        The Dask engine types the compacted part's date partitions (its windows) on the
        workers; the local engine (default) reads them here. The result is the same.
    compact : bool, optional
        Compact the closed windows of the case's own SQLite log first (:mod:`.compact`);
        default: when ``monitoring.compact_after`` closed rows wait (0 turns it off).

    Returns
    -------
    MonitorResult
    """
    from ..case import as_case
    from ..spec import parse_duration
    from ..times import read_now

    case = as_case(case)
    spec = case.spec
    if spec.task == "forecast":  # `mlcase monitor` hands it to monitor_forecasts; here it ended in a reference
        # "version None ... re-run mlcase run" (with labels: "lacks request_id, label"), both wrong advice
        raise SpecError(f"case '{case.name}' is a forecast case: it is monitored by horizon step against its actuals, "
                        "not by window against per-request labels",
                        "call mlcase.forecast.monitor.monitor_forecasts(case, log=..., labels=ACTUALS), as "
                        "`mlcase monitor` does")
    try:
        window_s = spec.monitoring.window if window is None else parse_duration(window)
    except ValueError as exc:  # the duration's own fix ('; write one like ...') gives way to the window's
        raise SpecError(f"--window: {str(exc).split('; ')[0]}", "give a duration such as 1d, 6h or 30m") from None
    if window_s <= 0:
        raise SpecError(f"--window: expected a positive duration, got {window!r}", "give a duration such as 1d or 6h")
    as_of = read_now(now) if now is not None else None
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise SpecError(f"alpha: the level of the drift tests must be between 0 and 1, got {alpha!r}",
                        "pass e.g. alpha=0.05")
    if alias is not None and (not isinstance(alias, str) or not alias.strip()):
        raise SpecError(f"alias: expected the name of a registered alias, got {alias!r}",
                        "pass e.g. alias='champion', or leave it out")
    source = _sources.resolve_source(case, log)  # before the registry: a wrong path fails fast
    labels = _sources.check_labels(case, labels)
    warnings: list[dict] = []
    alias_used = None
    if bundle is None:  # before compacting: a refusal changes nothing
        bundle, alias_used = default_bundle(case) if alias is None else (_alias_bundle(case, alias), alias)
    compacted = _auto_compact(case, source, window_s, compact, warnings)
    reference = bundle.reference
    if not reference:
        reference = _reference_from_case(case, bundle)
        warnings.append({"kind": "reference", "message": "the model has no stored monitoring reference; it was "
                         "rebuilt from the case's data (re-run `mlcase run` to store one with the model)"})
    if reference.get("version") != REFERENCE_VERSION:
        raise ModelError(f"the model's monitoring reference has version {reference.get('version')}, this mlcase "
                         f"reads {REFERENCE_VERSION}", "re-run `mlcase run` to register the model with a new reference")
    from ..governance.failpoints import failpoint
    from ..scratch import scratch

    with scratch(case, "monitor-") as tmp:  # the spill holds the log's rows: in the case, where forget reaches
        run = _Run(case, bundle, reference, window_s, alpha, warnings, tmp)
        run.engine = engine
        try:
            _sources.load(run, source, labels)
            failpoint("monitor:loaded")
            result = run.compute(as_of)
            if bundle.task == "ranking":  # lists: position rates, realized NDCG@k, clicks per list
                from .ranking import list_metrics

                info = bundle.ranking or {}
                result.ranking = list_metrics(run, int(info.get("k") or 10), info.get("relevance"))
                result.alerts.extend(_governance.finish_alerts(run, result.ranking.pop("alerts", [])))  # owners
        finally:
            run.close()
    result.model = {"name": bundle.name, "role": bundle.role, "version": bundle.version, "alias": alias_used,
                    "threshold": bundle.threshold}
    result.compacted = compacted
    return result


def _auto_compact(case, source, window_s: float, compact: bool | None, warnings: list) -> dict | None:
    """Compact the closed windows of the case's own SQLite log when enough wait (or ``compact`` says so)."""
    from . import compact as _compact

    if source.kind != "sqlite" or compact is False:
        return None
    min_rows = case.spec.monitoring.compact_after
    if compact is None and not min_rows:
        return None
    try:
        from ..serve.predlog import resolve_target

        if Path(resolve_target(case)).resolve() != Path(source.target).resolve():
            return None  # a log given with --log is read, never written
        done = _compact.compact(case, source.target, window=window_s) if compact else \
            _compact.auto_compact(case, Path(source.target), window_s, min_rows)
    except Exception as exc:  # noqa: BLE001 - compaction is an optimisation: monitoring reads the SQLite log anyway
        warnings.append({"kind": "compaction", "message": f"the closed windows were not compacted "
                         f"({type(exc).__name__}: {str(exc)[:160]}); monitoring read the SQLite log"})
        return None
    return done.to_dict() if done is not None else None


def default_bundle(case, alias: str = "champion"):
    """The registered bundle under ``alias``, else ``champion``, else ``baseline``: ``(bundle, alias used)``."""
    from .. import tracking

    tried = []
    for name in dict.fromkeys([alias, "champion", "baseline"]):
        try:
            return tracking.load_bundle(case, name), name
        except NotFoundError:
            tried.append(name)
    raise NotFoundError(f"no registered model under the alias(es) {', '.join(tried)} for case '{case.name}'",
                        "run `mlcase run` first, or pass a bundle")


def _alias_bundle(case, alias: str):
    """The bundle registered under ``alias``, asked for by name: no other alias stands in for it (the
    registry's refusal names the aliases the case has)."""
    from .. import tracking

    return tracking.load_bundle(case, alias)


def _reference_from_case(case, bundle) -> dict:
    from ..data import prepare

    try:
        dataset = prepare(case)
    except DataError as exc:
        raise ModelError(f"the model has no monitoring reference and the case's data cannot rebuild it ({exc})",
                         "re-run `mlcase run` so the reference is stored with the model") from None
    return build_reference(dataset, bundle)


# =========================================================================== the run
class _Run:
    """One monitoring run: a temporary DuckDB database holding the typed, windowed log."""

    def __init__(self, case, bundle, reference: dict, window_s: float, alpha: float, warnings: list, tmp: Path):
        import duckdb

        self.case, self.bundle, self.ref = case, bundle, reference
        self.spec = case.spec
        self.mon = case.spec.monitoring
        self.task = bundle.task
        self.window_s = float(window_s)
        self.alpha = alpha
        self.warnings = warnings
        self.con = duckdb.connect(":memory:")  # spills to temp_directory past memory_limit
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET temp_directory = {_lit(str(tmp / 'spill'))}")
        self.memory_limit = DUCKDB_MEMORY_LIMIT
        self.engine = None
        self.con.execute(f"SET memory_limit = {_lit(DUCKDB_MEMORY_LIMIT)}")
        self.features = [f for f in bundle.features if f in reference["features"]]
        self.kinds = {f: reference["features"][f]["kind"] for f in self.features}
        self.archive: list[dict] = []  # windows kept after serving.retention pruned their rows
        classes = reference.get("classes") or ([str(c) for c in bundle.classes] if bundle.classes else None)
        self.classes = classes
        self.positive = reference.get("positive") or (classes[1] if classes and len(classes) == 2 else None)
        self.threshold = bundle.threshold if bundle.threshold is not None else reference.get("threshold")
        self.target = self.spec.data.target
        # columns besides the features that costs and assumption checks read (extracted from the inputs)
        self.extras = self._extra_columns(bundle.schema or {})
        self._not_logged(warnings)
        self.col = {f: f"c{i}" for i, f in enumerate(self.features)}
        self.col.update({e: f"e{i}" for i, e in enumerate(self.extras)})
        self.has_time = False
        self.has_inline_label = False
        self.has_holdout = False   # any row on the holdout arm
        self.has_reviews = False   # any reviewer's verdict in the labels
        self.by_source = None      # label_sources.summarize over all windows
        self.reviews = None        # reviews.compute_reviews

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------------ columns
    def _not_logged(self, warnings: list) -> None:
        """A column the log keeps hashed or drops cannot be compared with training nor priced: say so, do not
        guess (``serving.log_inputs``)."""
        from ..governance.policy import LogPolicy

        policy = LogPolicy.from_spec(self.spec)
        self.not_logged = policy.limits(self.features)
        self.compared = [f for f in self.features if self.kinds[f] != "skipped" and f not in self.not_logged]
        for f, why in self.not_logged.items():
            warnings.append({"kind": "not_logged", "feature": f, "message": f"{f} is {why}"})
        priced = [c for c in self.extras if policy.of(c) != "raw"]
        if priced:
            warnings.append({"kind": "not_logged", "feature": priced[0], "message": f"{', '.join(priced)}: "
                             "per-row costs and assumption checks that read it see it as missing (the prediction "
                             "log does not keep it raw)"})

    def _extra_columns(self, schema: dict) -> list[str]:
        known = [c["name"] for c in schema.get("columns", [])] or list(self.features)
        known = [c for c in known if c != self.target]
        exprs = [v for v in (self.spec.costs.true_positive, self.spec.costs.false_positive,
                             self.spec.costs.false_negative, self.spec.costs.true_negative,
                             self.spec.costs.under, self.spec.costs.over) if isinstance(v, str)]
        exprs += [a.check for a in self.spec.assumptions if a.check]
        from ..rules import validate_expression

        used: list[str] = []
        for e in exprs:
            try:
                cols = validate_expression(e, known + [self.target], aggregate=True)
            except RuleError:
                continue  # reported when the expression is evaluated
            used += [c for c in cols if c not in self.features and c != self.target and c not in used]
        self.extra_kinds = feature_kinds(schema, used)
        return used

    def sql_type(self, name: str) -> str:
        return "DOUBLE" if (self.kinds.get(name) or self.extra_kinds.get(name)) == "numeric" else "VARCHAR"

    def value_sql(self, name: str, expr: str) -> str:
        """``expr`` (a JSON or file value) typed like the training column ``name``."""
        kind = self.kinds.get(name) or self.extra_kinds.get(name)
        if kind == "numeric":  # NaN counts as missing, like NULL
            return f"nullif(TRY_CAST({expr} AS DOUBLE), 'NaN'::DOUBLE)"
        if kind == "boolean":
            return f"lower(CAST({expr} AS VARCHAR))"
        return f"CAST({expr} AS VARCHAR)"

    def json_struct(self) -> str:
        return json.dumps({c: self.sql_type(c) for c in [*self.features, *self.extras]})

    # ------------------------------------------------------------------ the windowed log
    def _build_log(self) -> None:
        """``log``: the raw rows with their window, last label, fallback flag and binary decision flag."""
        W = self.window_s
        pos = _lit(self.positive) if self.positive is not None else "NULL"
        neg = _lit(self.classes[0]) if self.classes else "NULL"
        thr = float(self.threshold) if self.threshold is not None else 0.5
        if self.task == "binary":
            # the model's flag: serving writes decision flag/auto/review and the predicted class; a records
            # file may carry 0/1 or the class names instead; without either, the score at the threshold
            flag = f"""CASE WHEN r._decision = 'flag' THEN 1 WHEN r._decision = 'auto' THEN 0
                WHEN r._prediction = {pos} THEN 1 WHEN r._prediction = {neg} THEN 0
                WHEN r._decision = {pos} OR lower(r._decision) IN ('1', '1.0', 'true', 'yes') THEN 1
                WHEN r._decision = {neg} OR lower(r._decision) IN ('0', '0.0', 'false', 'no') THEN 0
                WHEN r._score IS NOT NULL THEN CAST(r._score >= {thr} AS INTEGER) END"""
            # on the holdout arm the decision is today's process; the model's own is in model_decision
            flag = f"""CASE WHEN r._arm = 'holdout' AND r._mdec IS NOT NULL THEN
                CASE WHEN r._mdec = 'flag' THEN 1 WHEN r._mdec = 'auto' THEN 0
                     WHEN r._score IS NOT NULL THEN CAST(r._score >= {thr} AS INTEGER) END
                ELSE ({flag}) END"""
            decision = f"""CASE WHEN g._decision IN ('flag', 'auto', 'review') THEN g._decision
                WHEN g._flag IS NULL THEN g._decision
                WHEN g._decision IS NULL OR g._decision = {pos} OR g._decision = {neg}
                     OR lower(g._decision) IN ('1', '1.0', 'true', 'yes', '0', '0.0', 'false', 'no')
                     THEN CASE WHEN g._flag = 1 THEN 'flag' ELSE 'auto' END
                ELSE g._decision END"""
        else:
            flag = "NULL"
            decision = "coalesce(g._decision, 'auto')"
        window = f"CAST(floor(r._t / {W}) AS BIGINT)" if self.has_time else "CAST(0 AS BIGINT)"
        label = "coalesce(l._label, r._label0)" if self.has_inline_label else "l._label"
        # a blank label is no outcome yet, never a retraction: on ISLR::Caravan a labels file leaving 300 outcomes
        # blank took the 300 earlier labels of those requests out of realized performance (cost -0.70 -> -0.45)
        self.con.execute("""CREATE TABLE lastlab AS SELECT _rid, _label, _lts, _src, _reviewer FROM lab
                            WHERE _label IS NOT NULL
                            QUALIFY row_number() OVER (PARTITION BY _rid ORDER BY _seq DESC) = 1""")
        # the last reviewer's verdict per request id: what review- and audit-based estimates rest on
        self.con.execute("""CREATE TABLE lastrev AS SELECT _rid, _label AS _rlabel FROM lab
                            WHERE _reviewer IS NOT NULL AND _label IS NOT NULL
                            QUALIFY row_number() OVER (PARTITION BY _rid ORDER BY _seq DESC) = 1""")
        # the last label no reviewer gave, what realized performance rests on: a reviewer saw a case because a
        # decision chose it (flagged, deferred, audited), and those outcomes are not the population's
        self.con.execute("""CREATE TABLE lastout AS SELECT _rid, _label, _src FROM lab
                            WHERE _reviewer IS NULL AND coalesce(_src, '') NOT IN ('review', 'audit')
                              AND _label IS NOT NULL
                            QUALIFY row_number() OVER (PARTITION BY _rid ORDER BY _seq DESC) = 1""")
        self.con.execute(f"""CREATE TABLE wmap AS SELECT _w, CAST(row_number() OVER (ORDER BY _w) - 1 AS INTEGER)
                             AS _wi FROM (SELECT DISTINCT {window} AS _w FROM raw r WHERE _w IS NOT NULL)""")
        self.windows = [int(r[0]) for r in self.con.execute("SELECT _w FROM wmap ORDER BY _wi").fetchall()]
        self.n_no_time = int(self.con.execute("SELECT count(*) FROM raw WHERE _t IS NULL").fetchall()[0][0]
                             ) if self.has_time else 0
        if self.n_no_time:
            self.warnings.append({"kind": "timestamps", "message": f"{self.n_no_time} logged rows have no readable "
                                  "timestamp and were left out"})
        if not self.windows and not self.archive:
            raise DataError(f"--log: {self.source.label} holds no predictions" + (
                " with a readable timestamp" if self.n_no_time else ""),
                "serve some traffic first, or pass a file of recent records")
        # what each row's label rests on: as stored, or (older logs, files) from its arm and reviewer
        source = f"""CASE WHEN {label} IS NULL THEN NULL
                WHEN l._src IN ('holdout', 'audit', 'review', 'outcome') THEN l._src
                WHEN r._arm = 'holdout' THEN 'holdout'
                WHEN l._reviewer IS NOT NULL THEN CASE WHEN r._audit = 1 THEN 'audit' ELSE 'review' END
                ELSE 'outcome' END"""
        olabel = "coalesce(o._label, r._label0)" if self.has_inline_label else "o._label"
        osource = f"""CASE WHEN {olabel} IS NULL THEN NULL WHEN o._src IN ('holdout', 'outcome') THEN o._src
                WHEN r._arm = 'holdout' THEN 'holdout' ELSE 'outcome' END"""
        self.con.execute(f"""
            CREATE TABLE log AS SELECT g.*, {decision} AS _dec FROM (
                SELECT r.*, m._wi, {label} AS _label, l._lts AS _lts, {flag} AS _flag, {source} AS _lsrc,
                       v._rlabel AS _rlabel, {olabel} AS _olabel, {osource} AS _osrc,
                       (coalesce(r._fallback, 0) = 1 OR coalesce(r._tier, 'model') <> 'model') AS _fb
                FROM raw r JOIN wmap m ON m._w = {window} LEFT JOIN lastlab l ON l._rid = r._rid
                LEFT JOIN lastrev v ON v._rid = r._rid LEFT JOIN lastout o ON o._rid = r._rid) g""")
        self.has_holdout = bool(self.con.execute("SELECT count(*) FILTER (WHERE _arm = 'holdout') > 0 FROM log")
                                .fetchall()[0][0])
        self.has_reviews = bool(self.con.execute("SELECT count(*) > 0 FROM lab WHERE _reviewer IS NOT NULL")
                                .fetchall()[0][0])
        kind = self.con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'raw'").fetchall()
        self.con.execute("DROP VIEW raw" if kind and kind[0][0] == "VIEW" else "DROP TABLE raw")
        self.con.execute("DROP TABLE IF EXISTS raw_tail")

    # ------------------------------------------------------------------ compute
    def compute(self, now) -> MonitorResult:
        self.archive = _governance.read_archive(self)
        self._build_log()
        self._warn_unitless()
        if not self.windows:  # every row was pruned by serving.retention: the archived windows are the report
            return self._archived_only()
        W = len(self.windows)
        base = self._window_basics()
        as_of = self._as_of(now)
        delay = self.spec.data.label_delay
        windows: list[dict] = []
        for i, w in enumerate(self.windows):
            b = base[i]
            start = w * self.window_s if self.has_time else None
            end = (w + 1) * self.window_s if self.has_time else None
            mature = True
            if delay and self.has_time and as_of is not None:
                mature = end + delay <= as_of
            windows.append({
                "window": _iso(start) if start is not None else "all", "start": _iso(start), "end": _iso(end),
                "n": b["n"], "too_small": b["n"] < self.mon.min_window_rows, "mature": mature,
                "drift": {}, "score_drift": None, "decisions": {}, "predictions": {},
                "fallback": {"count": b["n_fallback"], "share": b["n_fallback"] / b["n"] if b["n"] else 0.0,
                             "by_tier": {}, "by_reason": {}},
                "labels": {"labelled": b["n_labelled"],
                           "unlabelled_share": 1 - b["n_labelled"] / b["n"] if b["n"] else None,
                           "delay_median_s": b["delay_median"], "delay_p90_s": b["delay_p90"]},
                "realized": None, "realized_so_far": None, "estimated": None, "assumptions": [],
                "invalid_inputs": b["n_bad_json"]})
        overall: dict[str, Any] = {"n": int(sum(b["n"] for b in base)), "drift": {}, "score_drift": None}
        _drift.compute_drift(self, windows, overall, W)
        self._decisions(windows)
        self._fallback(windows)
        label_summary = _performance.label_summary(self)
        _performance.compute_performance(self, windows)
        if self.by_source is not None:
            overall["by_source"] = self.by_source
        self.reviews = _reviews.compute_reviews(self, windows)
        _assumptions.check_assumptions(self, windows)
        _governance.compute_freshness(self, windows)
        windows = _governance.merge_archive(self, windows)
        alerts = _alerts.compute_alerts(self, windows)
        alerts += _governance.stale_alerts(self, windows) + _governance.gap_alerts(self, windows)
        _governance.finish_alerts(self, alerts)
        _alerts.summary_warnings(self, windows, overall, label_summary)
        return MonitorResult(case=self.case.name, source=self.source.label, model={}, task=self.task,
                             window_seconds=self.window_s, as_of=_iso(as_of), thresholds=self._thresholds(),
                             features=list(self.features), windows=windows, overall=overall,
                             labels=label_summary, alerts=alerts, warnings=self.warnings, reviews=self.reviews)

    def _thresholds(self) -> dict:
        return {"psi_alert": self.mon.psi_alert, "psi_warn": self.mon.psi_warn, "alpha": self.alpha,
                "max_fallback_share": self.mon.max_fallback_share, "max_estimated_cost": self.mon.max_estimated_cost,
                "max_realized_cost": self.mon.max_realized_cost, "min_window_rows": self.mon.min_window_rows,
                "label_delay_seconds": self.spec.data.label_delay, "backlog_windows": self.mon.backlog_windows,
                "max_stale_share": self.mon.max_stale_share, "dead_man_windows": self.mon.dead_man_windows}

    def _archived_only(self) -> MonitorResult:
        """The result when every row was pruned: the archived windows, their alerts, nothing recomputed."""
        windows = _governance.merge_archive(self, [])
        alerts = _alerts.compute_alerts(self, windows) + _governance.stale_alerts(self, windows)
        _governance.finish_alerts(self, alerts)
        labels = {"labels": 0, "duplicated_request_ids": 0, "conflicting_request_ids": 0, "unmatched_request_ids": 0}
        return MonitorResult(case=self.case.name, source=self.source.label, model={}, task=self.task,
                             window_seconds=self.window_s, as_of=windows[-1]["end"], thresholds=self._thresholds(),
                             features=list(self.features), windows=windows,
                             overall={"n": 0, "drift": {}, "score_drift": None}, labels=labels, alerts=alerts,
                             warnings=self.warnings, reviews=None)

    def _window_basics(self) -> list[dict]:
        rows = self.con.execute("""
            SELECT _wi, count(*), sum(CAST(_fb AS INTEGER)), count(_label),
                   median(_lts - _t) FILTER (WHERE _label IS NOT NULL AND _lts IS NOT NULL),
                   quantile_cont(_lts - _t, 0.9) FILTER (WHERE _label IS NOT NULL AND _lts IS NOT NULL),
                   sum(CAST(_bad_json AS INTEGER))
            FROM log GROUP BY _wi ORDER BY _wi""").fetchall()
        return [{"n": int(r[1]), "n_fallback": int(r[2] or 0), "n_labelled": int(r[3]),
                 "delay_median": _num(r[4]), "delay_p90": _num(r[5]), "n_bad_json": int(r[6] or 0)} for r in rows]

    def _warn_unitless(self) -> None:
        """Say so where the case names its unit (``data.id``) but the serving log kept none: monitoring then counts
        each request as a unit, and a unit sent several times reads as several independent outcomes."""
        idcol = self.spec.data.id
        if not idcol or self.task == "ranking" or getattr(self.source, "kind", None) not in ("sqlite", "sqlalchemy"):
            return
        n, units = self.con.execute("SELECT count(*), count(_unit) FROM log").fetchall()[0]
        if not n or units:
            return
        dropped = (self.spec.serving.log_inputs or {}).get(idcol) == "drop"
        why = (f"serving.log_inputs drops data.id '{idcol}'" if dropped else
               f"the log holds no unit_id (data.id '{idcol}' was not sent, or the log predates it)")
        self.warnings.append({"kind": "units", "message": f"{why}: each request is counted as a unit, so a unit "
                              "sent several times reads as several independent outcomes; log it hashed "
                              f"(serving.log_inputs: {{{idcol}: hashed}}) to count units"})

    def _as_of(self, now: float | None) -> float | None:
        """``now`` (epoch seconds, read by :func:`mlcase.times.read_now`), else the log's latest time."""
        if now is not None:
            return float(now)
        if not self.has_time:
            return None
        r = self.con.execute("SELECT max(_t), max(_lts) FROM log").fetchall()[0]
        vals = [v for v in r if v is not None]
        return float(max(vals)) if vals else None

    # ------------------------------------------------------------------ decisions and fallbacks
    def _decisions(self, windows: list[dict]) -> None:
        ref_dec = self.ref.get("decisions") or {}
        for wi, dec, c in self.con.execute("SELECT _wi, coalesce(_dec, '(none)'), count(*) FROM log GROUP BY ALL "
                                           "ORDER BY 1, 2").fetchall():
            windows[int(wi)]["decisions"][str(dec)] = c / windows[int(wi)]["n"]
        if self.task != "regression":
            for wi, pred, c in self.con.execute("SELECT _wi, coalesce(_prediction, '(none)'), count(*) FROM log "
                                                "GROUP BY ALL ORDER BY 1, 2").fetchall():
                windows[int(wi)]["predictions"][str(pred)] = c / windows[int(wi)]["n"]
        for wi, version, c in self.con.execute("SELECT _wi, _version, count(*) FROM log WHERE _version IS NOT NULL "
                                               "GROUP BY ALL ORDER BY 1, 2").fetchall():
            windows[int(wi)].setdefault("model_versions", {})[str(version)] = c / windows[int(wi)]["n"]
        # the model's own decisions, which the reference holds: serving sends a row whose prediction set is not a
        # single class to review (conformal deferral) after the model decided it, and the reference knows no
        # 'review'. Compared as routed, every unchanged window of a deferring case moved: AER::CreditCard's 377
        # held-out applications served had decisions PSI 0.31 (4.8% to review, flag rate 18.0% vs 23.3%),
        # nycflights13's 5,849 flights 2.76 (33% to review, never flagged). A binary row's own decision is its flag
        own = [{} for _ in windows]
        if self.task == "binary":
            for wi, flag, c in self.con.execute("SELECT _wi, CASE WHEN _flag = 1 THEN 'flag' WHEN _flag = 0 THEN "
                                                "'auto' ELSE coalesce(_dec, '(none)') END, count(*) FROM log "
                                                "GROUP BY ALL ORDER BY 1, 2").fetchall():
                own[int(wi)][str(flag)] = c / windows[int(wi)]["n"]
        else:
            for i, w in enumerate(windows):
                for k, v in w["decisions"].items():
                    key = "auto" if k == "review" else k
                    own[i][key] = own[i].get(key, 0.0) + v
        for w, mine in zip(windows, own, strict=True):
            keys = sorted(set(ref_dec) | set(mine))
            w["decisions_ref"] = ref_dec
            w["model_decisions"] = mine
            if ref_dec:
                cur = np.array([[mine.get(k, 0.0) for k in keys]])
                w["decisions_psi"] = float(psi_js(cur, np.array([ref_dec.get(k, 0.0) for k in keys]))[0][0])
            if self.task == "binary":
                w["flag_rate"] = mine.get("flag", 0.0)
                w["flag_rate_ref"] = ref_dec.get("flag", 0.0) if ref_dec else None  # never flagged: 0, not unknown

    def _fallback(self, windows: list[dict]) -> None:
        for wi, tier, c in self.con.execute("SELECT _wi, coalesce(_tier, 'model'), count(*) FROM log "
                                            "GROUP BY ALL ORDER BY 1, 2").fetchall():
            windows[int(wi)]["fallback"]["by_tier"][str(tier)] = c / windows[int(wi)]["n"]
        for wi, reason, c in self.con.execute("""SELECT _wi, coalesce(_reason, '(none)'), count(*) FROM log
                                                 WHERE _fb GROUP BY ALL ORDER BY 1, 3 DESC""").fetchall():
            by = windows[int(wi)]["fallback"]["by_reason"]
            if len(by) < 20:
                by[str(reason)] = c / windows[int(wi)]["n"]
