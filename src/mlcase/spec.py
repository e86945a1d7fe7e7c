"""The case spec: ``case.yaml`` as pydantic v2 models.

Load with :func:`load_spec` (or :func:`mlcase.load_case`). Errors name the YAML
path and line and what is expected, e.g.
``costs.true_positive (line 14): expected a number or a SQL expression, got 'high'``.
Unknown keys are errors, with the closest allowed key suggested.
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SpecError

SPEC_VERSION = 1

# --------------------------------------------------------------------------- helpers
_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d|w)?\s*$", re.I)
_UNIT_SECONDS = {None: 1, "ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600,
                 "d": 86400, "w": 604800}
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
                  "month": 30 * 86400, "quarter": 91 * 86400, "year": 365 * 86400}


def parse_duration(value: Any) -> float:
    """Parse ``90s``, ``2m``, ``1h``, ``30d`` (or a number of seconds) into seconds.

    >>> parse_duration("2m"), parse_duration("90s"), parse_duration(30)
    (120.0, 90.0, 30.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '90s', '2m', '1h' or '30d', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"expected a duration like '90s', '2m', '1h' or '30d', got {value!r}")
        seconds = float(m.group(1)) * _UNIT_SECONDS[(m.group(2) or "").lower() or None]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a positive duration, got {value!r}; write one like '90s' or '2m'")
    return seconds


def _duration(value: Any) -> Any:
    if value is None:
        return None
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration)]


def _positive_duration(value: Any) -> Any:
    seconds = _duration(value)
    if seconds is not None and seconds <= 0:
        raise ValueError(f"expected a duration longer than zero, like '30s' or '180d', got {value!r}")
    return seconds


PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]


def parse_rate(value: Any, what: str = "rate") -> tuple[float, str | None]:
    """Parse ``12000/month`` or ``300/day`` into ``(count, period)``; a bare number has no period."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), None
    m = re.match(r"^\s*([\d_.,]+)\s*(?:/|per)\s*([a-z]+?)s?\s*$", str(value), re.I)
    if not m:
        raise ValueError(f"expected a {what} like '12000/month' or '300/day', got {value!r}")
    period = m.group(2).lower()
    if period not in PERIOD_SECONDS:
        raise ValueError(f"unknown period {period!r} in {value!r}; use one of {', '.join(PERIOD_SECONDS)}")
    try:
        count = float(m.group(1).replace(",", "").replace("_", ""))
    except ValueError:
        raise ValueError(f"expected a {what} like '12000/month' or '300/day', got {value!r}") from None
    return count, period


class _Model(BaseModel):
    # no field takes NaN or infinity (a YAML .nan or .inf): every number in a case is a finite amount
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True,
                              allow_inf_nan=False)


# --------------------------------------------------------------------------- sections
class Problem(_Model):
    current_process: str | None = None
    volume: str | float | None = Field(
        None, description="Decisions per period, e.g. '12000/month'; turns money per decision into money per period.")
    target: str | None = None

    @field_validator("volume")
    @classmethod
    def _check_volume(cls, v):
        if v is not None:
            parse_rate(v, "volume")
        return v

    @property
    def volume_rate(self) -> tuple[float, str | None] | None:
        return None if self.volume is None else parse_rate(self.volume, "volume")


class Assumption(_Model):
    text: str
    check: str | None = Field(None, description="SQL boolean over aggregates of the data, run by DuckDB.")
    needs_labels: bool | None = Field(None, description="Set when the check reads the target; inferred if omitted.")


class FeatureSelection(_Model):
    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)


class DataSpec(_Model):
    source: str = Field(description="CSV or Parquet path relative to the case folder, or a DuckDB SQL query over such files.")
    allowed_paths: list[str] = Field(
        default_factory=list, description="Folders or files outside the case folder that data.source may read "
                                          "(relative to the case folder or absolute); nothing else outside it is read.")
    target: str
    positive: str | int | float | bool | None = None
    id: str | None = None
    time: str | None = None
    group: str | None = None
    series: str | None = Field(None, description="Forecast: the column naming each series (one series when left out).")
    item: str | None = Field(None, description="Ranking: the item column (movie, product, document); enables the "
                                               "recommendation baselines (popularity, recency, ALS).")
    label_time: str | None = Field(
        None, description="Column with the time each label became known; a label known before data.time means "
                          "the features were recorded after the outcome (a leak).")
    features: FeatureSelection = Field(default_factory=FeatureSelection)
    unavailable_at_serving: list[str] = Field(default_factory=list)
    label_delay: Duration | None = None
    include_immature: bool = Field(False, description="Keep rows younger than label_delay in training.")
    freshness: dict[str, PositiveDuration] = Field(
        default_factory=dict, description="How old each feature may be when the decision is made, e.g. "
                                          "{balance: 1d}; a request may carry the features' as-of time in '_as_of'.")

    @field_validator("features", mode="before")
    @classmethod
    def _features_list(cls, v):
        if isinstance(v, list):
            return {"include": v}
        return v


class SplitSpec(_Model):
    method: Literal["random", "stratified", "time", "group", "group_time"] = Field(
        "stratified", description="'group_time' (ranking): each group's last interactions (by data.time) are "
                                  "held out, so no group's future reaches its past.")
    test_size: float = Field(0.2, gt=0, lt=1)
    valid_size: float = Field(0.2, gt=0, lt=1, description="Share of the training part carved out for threshold and calibration choices.")
    seed: int = 42
    cv_folds: int = Field(5, ge=2, le=20)


CostValue = float | str


class Costs(_Model):
    """Money per decision (binary), per unit of error (regression), or a matrix (multiclass).

    Each binary entry is a number or a SQL expression over the row's columns,
    e.g. ``"0.6 * loan_amount"``.
    """

    true_positive: CostValue | None = None
    false_positive: CostValue | None = None
    false_negative: CostValue | None = None
    true_negative: CostValue | None = None
    under: CostValue | None = Field(None, description="Regression: cost per unit of under-prediction.")
    over: CostValue | None = Field(None, description="Regression: cost per unit of over-prediction.")
    matrix: dict[str, dict[str, float]] | None = Field(None, description="Multiclass: matrix[actual][predicted].")
    relevant_item: CostValue | None = Field(None, description="Ranking: the value of a relevant item shown at "
                                            "position 1 (a number or a SQL expression over the row).")
    position_discount: Literal["log2", "linear", "none"] | list[float] = Field(
        "log2", description="Ranking: the share of an item's value kept at position p: 'log2' (DCG's 1/log2(p+1)), "
                            "'linear' (1/p), 'none', or one number per position.")
    currency: str = "$"

    @field_validator("true_positive", "false_positive", "false_negative", "true_negative",
                     "under", "over", "relevant_item", mode="before")
    @classmethod
    def _number_or_expression(cls, v):
        if v is None or isinstance(v, bool):
            if isinstance(v, bool):
                raise ValueError(f"expected a number or a SQL expression, got {v!r}")
            return v
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                if not re.search(r"[A-Za-z_]", v):
                    raise ValueError(f"expected a number or a SQL expression, got {v!r}") from None
                return v
        if isinstance(v, (int, float)):
            if not math.isfinite(v):  # .nan or .inf would turn every cost comparison into NaN
                raise ValueError(f"expected a finite amount of money, got {v!r}; write a number or a SQL expression")
            return float(v)
        raise ValueError(f"expected a number or a SQL expression, got {v!r}")

    def binary_given(self) -> bool:
        return any(getattr(self, k) is not None for k in
                   ("true_positive", "false_positive", "false_negative", "true_negative"))

    def regression_given(self) -> bool:
        return self.under is not None or self.over is not None


class Constraints(_Model):
    review_capacity: float | str | None = Field(
        None, description="Share of cases that can be flagged (0.08) or a count per period ('300/day').")
    latency_p95_ms: float | None = Field(None, gt=0)
    min_lift: float = Field(0.0, description="Money per decision the model must add over the best baseline.")
    operating_cost: float | Literal["auto"] = Field(0.0, description="Money per decision to run the model, or 'auto'.")

    @field_validator("review_capacity")
    @classmethod
    def _capacity(cls, v):
        if v is None:
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if not 0 < v <= 1:
                raise ValueError(f"expected a share between 0 and 1 or a count like '300/day', got {v!r}")
            return float(v)
        parse_rate(v, "review capacity")
        return v

    @field_validator("operating_cost")
    @classmethod
    def _opcost(cls, v):
        if isinstance(v, (int, float)) and v < 0:
            raise ValueError(f"expected a cost >= 0 or 'auto', got {v!r}")
        return v


class Compute(_Model):
    cost_per_cpu_hour: float = Field(0.05, ge=0)
    retrain_every: Duration = 30 * 86400.0


class RuleBaseline(_Model):
    rule: str
    name: str | None = None


BaselineSpec = Literal["majority", "prior", "mean", "median", "linear", "popularity", "recency", "als"] | RuleBaseline
#: the baselines of a forecast case (statsforecast models, and a rule over lag_<k> columns)
FORECAST_BASELINES = ("naive", "seasonal_naive", "moving_average", "auto_ets", "auto_arima")
BaselineSpec = BaselineSpec | Literal[FORECAST_BASELINES]


class RankingSpec(_Model):
    """``ranking``: the list people see and what counts as relevant (task: ranking only)."""

    k: int = Field(10, ge=1, le=1000, description="The list length people see; NDCG@k, MAP@k, recall@k use it.")
    relevant_from: float | None = Field(
        None, description="A target at or above this counts as relevant (a click, a purchase, a rating of 4+); "
                          "default 1 for a 0/1 target, else the target's 75th percentile.")
    gain: Literal["graded", "binary"] = Field(
        "graded", description="NDCG's gain: 'graded' (target - relevant_from + 1 for relevant items) or 'binary'.")


class ConformalSpec(_Model):
    alpha: float = Field(0.1, gt=0, lt=1)
    method: Literal["lac", "aps"] = "lac"
    max_interval_width: float | None = Field(None, gt=0, description="Regression: defer cases whose interval is wider.")
    defer: bool = True


class CanarySpec(_Model):
    """``serving.canary``: ``"3:10%"``, ``"candidate:0.05"`` or ``{version: 3, share: 0.1}``."""

    version: int | str = Field(description="Registry version number, or an alias such as 'candidate'.")
    share: float = Field(gt=0, le=0.5, description="Share of units whose decision the canary makes.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, v):
        if not isinstance(v, str):
            return v
        ref, sep, share = v.rpartition(":")
        if not sep or not ref.strip() or not share.strip():
            raise ValueError(f"expected 'VERSION:SHARE' such as '3:10%' or 'candidate:0.05', got {v!r}")
        text = share.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"the share in {v!r} is not a number; write it as '10%' or 0.1") from None
        ref = ref.strip()
        return {"version": int(ref) if ref.isdigit() else ref, "share": value}


class ServingSpec(_Model):
    fallback: list[Literal["previous_champion", "rule", "baseline", "constant"]] = Field(
        default_factory=lambda: ["previous_champion", "baseline", "constant"])
    api_key: str | None = Field(None, description="Refused: case.yaml may be committed; use MLCASE_API_KEY or api_key_file.")
    api_key_file: str | None = Field(
        None, description="File holding the API key of /predict and /labels (relative to the case folder or absolute; "
                          "keep it out of version control). MLCASE_API_KEY takes precedence.")
    default_action: str | None = Field(None, description="The constant tier's answer; defaults to the majority decision.")
    timeout_ms: float | None = Field(None, gt=0, description="Model time limit; defaults to 4x latency_p95_ms.")
    domain_margin: float = Field(0.5, ge=0, description="Numeric values beyond this share of the training range are out of domain.")
    max_unseen_categories: int = Field(2, ge=0)
    max_body_bytes: int = Field(1_000_000, gt=0)
    log: str | None = Field(None, description="Prediction log: a SQLAlchemy URL; default sqlite predictions.db in the case folder.")
    holdout: float = Field(0.0, ge=0, le=0.5, description="Live holdout: the share of units (by data.id, else request id) "
                           "that get today's process instead of the model's decision; their labels are unbiased.")
    holdout_policy: Literal["rule", "never"] | None = Field(
        None, description="What the holdout gets: the case's rule, or never act; default the rule when there is one.")
    audit_share: float = Field(0.0, ge=0, le=1, description="Share of automatic ('auto') decisions also sent to review "
                               "(the audit sample), logged with this sampling probability.")
    salt: str | None = Field(None, max_length=200, description="Salt of the arm hash; default the case name. A new salt "
                             "reshuffles which units are held out.")
    canary: CanarySpec | None = Field(None, description="A staged rollout: 'N:10%' (registry version or alias N, share "
                                      "of units) is acted on by version N; everyone else gets the champion.")
    auto_rollback: bool = Field(False, description="Let the server roll back a canary or a new champion itself when "
                                "a guardrail of releases.guardrails breaks.")
    reload_every: Duration = Field(5.0, description="How often the server checks the registry's champion and canary "
                                   "aliases (0: never; a pinned --version is never reloaded).")


    log_inputs: dict[str, Literal["raw", "hashed", "drop"]] = Field(
        default_factory=dict, description="What the prediction log keeps of each input column (and of data.id, "
                                          "logged as unit_id): raw, hashed (HMAC keyed by MLCASE_LOG_KEY) or drop; "
                                          "default hashed for personal_data, raw for the rest.")
    retention: PositiveDuration | None = Field(
        None, description="Prediction-log rows older than this are pruned by `mlcase retention` (e.g. 180d); the "
                          "monitoring windows they made are kept as aggregates.")
    on_stale: Literal["flag", "fallback"] = Field(
        "flag", description="A feature older than data.freshness allows: flag it in the answer, or also send the "
                            "record past every tier that reads it (the next fallback tier answers).")

    @field_validator("api_key")
    @classmethod
    def _no_key_in_yaml(cls, v):
        if v is not None:
            raise ValueError("an API key written in case.yaml is refused: case.yaml is meant to be committed and "
                             "shared, and a key in it is no longer secret; remove it, and set the MLCASE_API_KEY "
                             "environment variable or serving.api_key_file (a file kept out of version control)")
        return v


def _command(value: Any) -> list[str]:
    """A notify command as an argv: a list as given, a string split like a POSIX shell would (never run by one)."""
    import shlex

    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command {value!r} into words ({exc}); check its quotes") from None
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        argv = list(value)
    else:
        raise ValueError(f"expected a command (a string, or a list of its words), got {value!r}")
    if not argv or not argv[0].strip():
        raise ValueError("the command is empty; name the program to run")
    return argv


class NotifySpec(_Model):
    """One notify command, optionally only for some owners."""

    command: list[str] = Field(description="The program and its arguments (a string is split like a shell would).")
    owners: list[str] | None = Field(None, description="Run it only for these owners (names or owner roles); "
                                                       "default every owner with alerts.")

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, v):
        return _command(v)


def _notify_entry(value: Any) -> Any:
    if isinstance(value, (str, list)):
        return {"command": value}
    return value


NotifyCommand = Annotated[NotifySpec, BeforeValidator(_notify_entry)]


class MonitoringSpec(_Model):
    psi_alert: float = Field(0.25, gt=0)
    psi_warn: float = Field(0.1, gt=0)
    window: Duration = 86400.0
    max_fallback_share: float = Field(0.05, ge=0, le=1)
    max_estimated_cost: float | None = None
    max_realized_cost: float | None = None
    min_window_rows: int = Field(50, ge=1)
    backlog_windows: int = Field(3, ge=1, description="Alert when the review backlog grows this many windows in a row.")
    compact_after: int = Field(100_000, ge=0, description="`mlcase monitor` compacts the closed windows of the SQLite "
                               "serving log into Parquet once this many closed rows wait (0: never by itself; "
                               "`mlcase log compact` does it on demand).")
    max_stale_share: float = Field(0.05, ge=0, le=1, description="Alert when more of a window's answers than this "
                                   "share used a feature older than data.freshness allows.")
    alert_owners: dict[str, str] = Field(
        default_factory=dict, description="Who owns each alert kind: a key of owners (a role) or a name, e.g. "
                                          "{drift: data, fallback: serving}; the rest go to their default role.")
    notify: list[NotifyCommand] = Field(
        default_factory=list, description="Commands run once per owner with that owner's alerts as JSON on stdin "
                                          "(no shell: a string is split like a shell would, a list is the argv).")
    notify_timeout: PositiveDuration = Field(30.0, description="Time limit of one notify command.")
    dead_man_windows: int | None = Field(
        None, ge=1, description="Alert when no prediction arrived, or monitoring did not run, for this many "
                                "windows (`mlcase deadman`, and `mlcase monitor`).")

    @field_validator("alert_owners")
    @classmethod
    def _known_alert_kinds(cls, v):
        from .governance.owners import ALERT_ROLES

        for kind in v:
            if kind not in ALERT_ROLES:
                close = difflib.get_close_matches(kind, list(ALERT_ROLES), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"alert kinds: {', '.join(ALERT_ROLES)}"
                raise ValueError(f"unknown alert kind '{kind}'; {hint}")
        return v


class Guardrails(_Model):
    """``releases.guardrails``: what a canary or a new champion must keep, per arm (``mlcase rollout status``)."""

    max_error_share: float = Field(0.01, ge=0, le=1, description="Share of records whose model raised.")
    max_fallback_share: float | None = Field(None, ge=0, le=1, description="Default monitoring.max_fallback_share.")
    max_latency_p95_ms: float | None = Field(None, gt=0, description="Default constraints.latency_p95_ms.")
    max_psi: float | None = Field(None, gt=0, description="Input and score drift; default monitoring.psi_alert.")
    capacity_tolerance: float = Field(0.1, ge=0, description="The flag rate may pass the review capacity by this "
                                      "relative share.")


class ReleasesSpec(_Model):
    """``releases``: when a release may go ahead (``mlcase promote``, ``rollout status``, auto-rollback)."""

    min_readiness: float = Field(0.0, ge=0, le=7, description="ML Test Score `mlcase promote` needs (0-7).")
    min_units: int = Field(200, ge=2, description="Labelled units per arm the canary's experiment plans for; "
                           "before that, fixed-horizon intervals are marked as peeking.")
    cost_margin: float = Field(0.0, ge=0, description="Money per decision the canary may cost more and still be "
                               "promoted (non-inferiority margin).")
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_rows: int = Field(50, ge=5, description="Records per arm before an operational guardrail can break.")
    guardrails: Guardrails = Field(default_factory=Guardrails)


class EvaluationSpec(_Model):
    bootstrap: int = Field(1000, ge=100)
    slice_gap_alert: float = Field(0.1, gt=0)
    min_slice_size: int = Field(30, ge=1)
    calibrate: Literal["auto", "isotonic", "sigmoid", "none"] = "auto"


class BakeoffSpec(_Model):
    """How the bake-off searches and selects (every field has a default)."""

    select_on: Literal["loss", "cost"] = Field(
        "loss", description="Rank trials on the proper loss (log loss, RMSE) or on the business cost at the best "
                            "threshold per fold (the old behaviour). Money sets the threshold and the decision either way.")
    ensemble: bool = Field(True, description="Consider a weighted ensemble of the best trials (Caruana selection); "
                                             "kept only when its cross-fitted gain exceeds its noise.")
    holdout_above: int = Field(100_000, ge=100, description="Past this many train + validation rows, validate on a "
                                                            "holdout with growing samples instead of k folds.")


class EngineSpec(_Model):
    """``engine``: where trials, scoring and monitoring windows run (``engine: dask`` is short for ``{kind: dask}``)."""

    kind: Literal["local", "dask"] = Field("local", description="local: this process; dask: a Dask cluster.")
    scheduler: str | None = Field(None, description="Address of a running Dask scheduler (tcp://host:8786); "
                                  "without it a LocalCluster sized to the machine's cores is started.")
    workers: int | None = Field(None, ge=1, description="Workers of the LocalCluster (default: one per core).")
    memory_limit: str | None = Field(None, description="Memory of each LocalCluster worker, e.g. 2GB "
                                     "(default: the machine's memory shared between the workers).")
    memory_share: float = Field(0.5, gt=0, le=1, description="A Parquet data source larger than this share of "
                                "the memory is trained on out of core (Dask estimators).")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v):
        return {"kind": v} if isinstance(v, str) else v


PERSONAL_KINDS = ("email", "phone", "card_number", "account_number", "national_id", "person_name", "other")


class PersonalDatum(_Model):
    """A column holding personal data, and why the case keeps it."""

    column: str
    purpose: str = Field(description="Why the case needs this column (shown in the datasheet and the model card).")
    kind: Literal[PERSONAL_KINDS] | None = Field(None, description="What it holds; default what the checks found.")

    @field_validator("purpose")
    @classmethod
    def _purpose_given(cls, v):
        if not v.strip():
            raise ValueError("the purpose is empty; say why the case keeps this column (e.g. 'to call the customer')")
        return v.strip()


def _personal_list(value: Any) -> Any:
    """``{email: purpose, ...}`` is short for ``[{column: email, purpose: ...}, ...]``."""
    if isinstance(value, dict):
        return [{"column": k, "purpose": v} if not isinstance(v, dict) else {"column": k, **v}
                for k, v in value.items()]
    return value


class AnalysisSpec(_Model):
    """``analysis``: where the model loses, whether more labels would pay, which labels look wrong."""

    enabled: bool = Field(True, description="Run the analysis stage after the evaluation (mlcase analyze runs it "
                                            "on demand either way).")
    time_share: float = Field(0.25, ge=0, le=4, description="Share of the run's budget the refits (learning "
                              "curve, feature-group value) may take; 0 skips them.")
    fractions: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0],
                                   description="Shares of the training rows the learning curve is measured at.")
    bins: int = Field(5, ge=2, le=20, description="Quantile bins a numeric column is cut into for the slice search.")
    max_slices: int = Field(10, ge=1, le=100, description="Slices tried on the test rows (Holm's correction is "
                            "over these).")
    error_ratio: float = Field(1.25, gt=1, description="A slice errs much more when its relative loss is at "
                               "least this many times the rest's.")
    label_audit_top: int = Field(50, ge=1, description="Rows of the label audit shown in the report.")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v):
        if not v or any(not 0 < f <= 1 for f in v):
            raise ValueError(f"expected shares in (0, 1] such as [0.25, 0.5, 0.75, 1.0], got {v!r}")
        return sorted(set(float(f) for f in v))


TaskName = Literal["binary", "multiclass", "regression", "forecast", "ranking"]
CANDIDATES = ("logistic", "ridge", "hist_gbm", "lightgbm", "xgboost", "random_forest")


class ForecastSpec(_Model):
    """``forecast``: the horizon, the frequency and the covariates of a ``task: forecast`` case."""

    horizon: int = Field(gt=0, le=10_000, description="Steps each forecast covers (e.g. 14 days).")
    freq: str | None = Field(None, description="pandas frequency alias (D, W-SUN, MS, h ...); inferred from data.time "
                             "when left out.")
    season_length: int | None = Field(None, gt=0, description="Steps in a season (7 for daily data, 12 monthly, ...); "
                                      "from the frequency when left out.")
    known: list[str] = Field(default_factory=list, description="Covariates known in advance for every future step "
                             "(calendar, holidays, planned prices, schedules): used at the step they describe.")
    past_only: list[str] = Field(default_factory=list, description="Covariates observed only up to the forecast's "
                                 "cut-off (weather, sales of other items): used lagged by at least the horizon.")
    backtest_windows: int = Field(20, ge=2, le=500, description="Rolling-origin cut-offs before the test period "
                                  "(tuning, model choice, conformal calibration).")
    test_windows: int = Field(8, ge=1, le=500, description="Cut-offs in the test period, the last part of the "
                              "history, forecast once at the end.")
    step: int | None = Field(None, gt=0, description="Steps between two cut-offs (default: the horizon).")
    quantile: float | None = Field(None, gt=0, lt=1, description="The quantile acted on; default under / (under + "
                                   "over) from costs (the newsvendor's critical ratio), else the median.")
    lags: list[int] | None = Field(None, description="Target lags of the learned models (default: 1..season and "
                                   "whole seasons up to a year).")
    input_size: int | None = Field(None, gt=0, description="Steps of history AutoETS/AutoARIMA fit on at each cut-off "
                                   "(default: the last 8 seasons).")

    @field_validator("lags")
    @classmethod
    def _positive_lags(cls, v):
        if v is not None and (not v or any(int(x) < 1 for x in v)):
            raise ValueError(f"expected a list of positive lags such as [1, 7, 364], got {v!r}")
        return v


class CaseSpec(_Model):
    """The whole ``case.yaml``."""

    spec_version: int = SPEC_VERSION
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    decision: str
    owner: str | None = None
    problem: Problem = Field(default_factory=Problem)
    goals: list[str] = Field(default_factory=list)
    non_goals: list[str] = Field(default_factory=list)
    owners: dict[str, str] = Field(default_factory=dict)
    assumptions: list[Assumption] = Field(default_factory=list)
    task: TaskName
    data: DataSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    sensitive: list[str] = Field(default_factory=list)
    personal_data: Annotated[list[PersonalDatum], BeforeValidator(_personal_list)] = Field(
        default_factory=list, description="Columns holding personal data (direct identifiers), each with its "
                                          "purpose; logged hashed by default (serving.log_inputs).")
    costs: Costs = Field(default_factory=Costs)
    constraints: Constraints = Field(default_factory=Constraints)
    compute: Compute = Field(default_factory=Compute)
    baselines: list[BaselineSpec] = Field(default_factory=lambda: ["majority", "linear"])
    candidates: list[Literal[CANDIDATES]] = Field(default_factory=lambda: ["logistic", "hist_gbm", "lightgbm", "xgboost"])
    budget: Duration = 120.0
    bakeoff: BakeoffSpec = Field(default_factory=BakeoffSpec)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    refit: Literal["none", "all"] = Field(
        "none", description="'all': after the decision, register the champion refitted on every labelled row "
                            "beside the evaluated version (it becomes champion through the same decision).")
    slices: list[str] = Field(default_factory=list)
    feature_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Named groups of feature columns (e.g. one per data source) whose value "
                                          "in money per decision the analysis measures; default each column.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    conformal: ConformalSpec = Field(default_factory=ConformalSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    releases: ReleasesSpec = Field(default_factory=ReleasesSpec)
    forecast: ForecastSpec | None = Field(None, description="task: forecast: horizon, frequency, covariates, "
                                          "backtest windows.")
    ranking: RankingSpec | None = Field(None, description="Ranking only: k, what counts as relevant, the gain.")
    tracking_uri: str | None = None

    @field_validator("budget")
    @classmethod
    def _budget_positive(cls, v):
        if v <= 0:
            raise ValueError(f"expected a positive time budget like '90s' or '2m', got {v!r}")
        return v

    @field_validator("constraints")
    @classmethod
    def _capacity_needs_volume(cls, v, info):
        cap = v.review_capacity
        problem = info.data.get("problem")
        if isinstance(cap, str) and problem is not None and problem.volume is None:
            _, period = parse_rate(cap, "review capacity")
            raise ValueError(f"review_capacity '{cap}' is a count per {period}, which needs problem.volume to "
                             "become a share of decisions; set problem.volume (e.g. '12000/month') or give the "
                             "capacity as a share (0.08)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw):
        if isinstance(raw, dict) and raw.get("task") == "forecast":
            from .forecast.spec import forecast_defaults

            return forecast_defaults(raw)
        return raw

    @model_validator(mode="after")
    def _task_consistency(self):
        if self.spec_version != SPEC_VERSION:
            raise ValueError(f"spec_version {self.spec_version} is not supported by this mlcase (expected {SPEC_VERSION})")
        if self.task == "regression" and self.costs.binary_given():
            raise ValueError("costs: true_positive/false_positive/... apply to binary tasks; a regression case uses 'under' and 'over'")
        if self.task == "binary" and self.costs.regression_given():
            raise ValueError("costs: 'under'/'over' apply to regression; a binary case uses true_positive, false_positive, false_negative, true_negative")
        if self.split.method == "time" and not self.data.time:
            raise ValueError("split.method is 'time' but data.time names no column; set data.time or use another split")
        if self.split.method == "group" and not self.data.group:
            raise ValueError("split.method is 'group' but data.group names no column; set data.group or use another split")
        if self.task == "regression" and self.split.method == "stratified":
            self.split.method = "random"
        seen = set()
        for p in self.personal_data:
            if p.column in seen:
                raise ValueError(f"personal_data: '{p.column}' is listed twice; keep one entry with its purpose")
            seen.add(p.column)
        from .forecast.spec import check_forecast_spec

        check_forecast_spec(self)  # a forecast case's fields, and no forecast field in another task
        if self.task == "ranking" or self.ranking is not None or self.split.method == "group_time":
            from .tasks.ranking import check_spec

            check_spec(self)
        return self

    # convenience -----------------------------------------------------------
    @property
    def rule_baselines(self) -> list[RuleBaseline]:
        return [b for b in self.baselines if isinstance(b, RuleBaseline)]

    def named_columns(self) -> dict[str, list[str]]:
        """Every column the spec names, keyed by the YAML path that names it."""
        d = self.data
        out: dict[str, list[str]] = {"data.target": [d.target]}
        for key in ("id", "time", "group", "item", "label_time", "series"):
            if getattr(d, key):
                out[f"data.{key}"] = [getattr(d, key)]
        if d.features.include:
            out["data.features.include"] = list(d.features.include)
        if d.features.exclude:
            out["data.features.exclude"] = list(d.features.exclude)
        if d.unavailable_at_serving:
            out["data.unavailable_at_serving"] = list(d.unavailable_at_serving)
        if self.sensitive:
            out["sensitive"] = list(self.sensitive)
        if self.slices:
            out["slices"] = list(self.slices)
        if self.personal_data:
            out["personal_data"] = [p.column for p in self.personal_data]
        if d.freshness:
            out["data.freshness"] = list(d.freshness)
        if self.serving.log_inputs:
            out["serving.log_inputs"] = list(self.serving.log_inputs)
        for g, cols in self.feature_groups.items():
            out[f"feature_groups.{g}"] = list(cols)
        if self.forecast is not None:
            for key in ("known", "past_only"):
                if getattr(self.forecast, key):
                    out[f"forecast.{key}"] = list(getattr(self.forecast, key))
        return out

    @property
    def personal_columns(self) -> list[str]:
        """The columns declared under ``personal_data``."""
        return [p.column for p in self.personal_data]


# --------------------------------------------------------------------------- loading
#: case.yaml is read by these limits before anything else happens (see docs/security.md)
MAX_SPEC_BYTES = 1_000_000
MAX_SPEC_DEPTH = 50


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and nesting deeper than :data:`MAX_SPEC_DEPTH`.

    An alias (``*name``) makes one node stand for a whole subtree: nine nested aliases of
    nine items each are 387 million values, from 1.6 KB of YAML. case.yaml has no use for
    them, so they are refused while composing, before any of it is expanded.
    """

    def __init__(self, stream, source: str):
        super().__init__(stream)
        self._source, self._depth = source, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise SpecError(f"{self._source} (line {event.start_mark.line + 1}): the YAML alias *{event.anchor} is "
                            "not allowed in a case spec", "write the value out instead of referring to an anchor")
        self._depth += 1
        try:
            if self._depth > MAX_SPEC_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"{self._source} (line {mark.line + 1}): nested more than {MAX_SPEC_DEPTH} levels deep",
                                "a case spec is a few levels deep; fix the indentation or brackets there")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _index_lines(node: yaml.Node, source: str, path: tuple = (), out: dict | None = None) -> dict:
    """The line of every mapping key and sequence item; a key given twice in one mapping is a :class:`SpecError`."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode):
                if key in seen:
                    raise SpecError(f"{source}: the key '{_fmt_path(path + (key,))}' is given twice (lines {seen[key]} "
                                    f"and {line}); YAML would keep only the last", "keep one of them")
                seen[key] = line
            out[path + (key,)] = line
            _index_lines(value_node, source, path + (key,), out)
            out[path + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, source, path + (i,), out)
    return out


def _fmt_path(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for p in loc:
        if isinstance(p, int) or current is None:
            continue
        field = getattr(current, "model_fields", {}).get(p)
        if field is None:
            return []
        ann = field.annotation
        current = None
        for cand in getattr(ann, "__args__", (ann,)):
            for c in getattr(cand, "__args__", (cand,)):
                if isinstance(c, type) and issubclass(c, BaseModel):
                    current = c
    return list(getattr(current, "model_fields", {})) if current else []


def _explain(err: dict) -> tuple[tuple, str]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in (
        "function-after[_number_or_expression(), union[float,str]]",))))
    # pydantic puts union member names in loc (e.g. 'float', 'str', 'RuleBaseline'); drop them
    loc = tuple(p for p in loc if p not in ("float", "str", "int", "bool", "RuleBaseline", "literal['auto']",
                                             "function-before[_duration(), float]",
                                             "function-before[_positive_duration(), float]"))
    typ, msg, got = err["type"], err["msg"], err.get("input")
    if typ == "extra_forbidden":
        key = loc[-1]
        allowed = _allowed_keys(CaseSpec, loc[:-1])
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
        return loc, f"unknown key '{key}'; {hint}"
    if typ == "missing":
        return loc, "is required; add it to case.yaml"
    if typ in ("value_error", "assertion_error"):
        return loc, msg.removeprefix("Value error, ")
    if typ.startswith("literal_error"):
        return loc, f"{msg.lower()}, got {got!r}"
    if typ in ("float_parsing", "float_type", "int_parsing", "int_type"):
        return loc, f"expected a number, got {got!r}"
    if typ == "finite_number":
        return loc, f"expected a finite number, got {got!r}; .nan and .inf are not amounts"
    if typ == "string_pattern_mismatch":
        return loc, f"expected letters, digits, '-', '_' or '.', got {got!r}"
    return loc, f"{msg[0].lower() + msg[1:]}, got {got!r}"


def spec_from_dict(raw: Any, lines: dict | None = None, source: str = "case.yaml") -> CaseSpec:
    """Validate a dict as a :class:`CaseSpec`, turning pydantic errors into one :class:`SpecError`."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a YAML mapping at the top level, got {type(raw).__name__}",
                        "start from `mlcase init DATA --target COL`")
    try:
        return CaseSpec.model_validate(raw)
    except ValidationError as exc:
        messages = []
        seen = set()
        for err in exc.errors():
            loc, text = _explain(err)
            key = (loc, text)
            if key in seen:
                continue
            seen.add(key)
            line = None
            if lines:
                probe = loc
                while probe and probe not in lines:
                    probe = probe[:-1]
                line = lines.get(probe) if probe else None  # no line for a key missing at the top
            where = _fmt_path(loc) + (f" (line {line})" if line else "")
            messages.append(f"{where}: {text}")
        # union errors repeat themselves per member; keep the most specific few
        messages = _dedupe_union(messages)
        first = messages[0]
        more = f" (and {len(messages) - 1} more: {'; '.join(messages[1:3])})" if len(messages) > 1 else ""
        raise SpecError(f"{source}: {first}{more}", None, errors=messages) from None


def _dedupe_union(messages: list[str]) -> list[str]:
    out: list[str] = []
    for m in messages:
        where = m.split(":", 1)[0]
        if any(o.split(":", 1)[0] == where for o in out):
            continue
        out.append(m)
    return out


def load_spec(path: str | Path) -> CaseSpec:
    """Read and validate a ``case.yaml`` (UTF-8, at most :data:`MAX_SPEC_BYTES`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"{path.name} has {size:,} bytes, more than the {MAX_SPEC_BYTES:,} a case spec may have",
                            "a case spec is a page of YAML; keep data in data.source, not in case.yaml")
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"no case spec at {path}", "pass a case.yaml or its folder, or run `mlcase init DATA --target COL`") from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a folder", "pass the case.yaml inside it") from None
    return parse_spec(decode_spec(data, path.name), source=path.name)


def decode_spec(data: bytes, source: str = "case.yaml") -> str:
    """The text of a case spec: UTF-8 (a byte-order mark is allowed), else a :class:`SpecError` naming the encoding."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and b"\x00" in data[:2]):
        raise SpecError(f"{source} is UTF-16 text, not UTF-8", "save it as UTF-8 (your editor's encoding menu)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        byte = data[exc.start]
        try:
            data.decode("cp1252")
            guess = "Windows-1252 / Latin-1 (ISO-8859-1)"
        except UnicodeDecodeError:
            guess = "Latin-1 (ISO-8859-1)"
        char = bytes([byte]).decode("latin-1")
        raise SpecError(f"{source} is not UTF-8: byte 0x{byte:02x} on line {line} ({char!r} in {guess}, "
                        "which it looks like)", "save the file as UTF-8 (your editor's encoding menu)") from None


def parse_spec(text: str, source: str = "case.yaml") -> CaseSpec:
    """Validate the YAML text of a case spec: bounded (no aliases, size and depth capped), no duplicate keys."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{source} has {len(text):,} characters, more than the {MAX_SPEC_BYTES:,} a case spec may have",
                        "a case spec is a page of YAML; keep data in data.source, not in case.yaml")
    loader = _BoundedLoader(text, source)
    try:
        node = loader.get_single_node()
        lines = _index_lines(node, source) if node is not None else {}
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{where}: not valid YAML: {problem}", "fix the indentation or quoting there") from None
    finally:
        loader.dispose()
    return spec_from_dict(raw, lines, source)


def dump_spec(spec: CaseSpec) -> str:
    """The spec as YAML (defaults included), loadable by :func:`parse_spec`."""
    data = spec.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
