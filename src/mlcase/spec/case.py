"""``CaseSpec``: the whole ``case.yaml`` and the checks that span its sections."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from .base import (
    SPEC_VERSION,
    Duration,
    _Model,
    parse_rate,
)
from .sections import (
    CANDIDATES,
    DEFAULT_CANDIDATES,
    AnalysisSpec,
    Assumption,
    BakeoffSpec,
    BaselineSpec,
    ChecksSpec,
    Compute,
    ConformalSpec,
    Constraints,
    Costs,
    DataSpec,
    EngineSpec,
    EvaluationSpec,
    ForecastSpec,
    MonitoringSpec,
    PersonalDatum,
    Problem,
    RankingSpec,
    ReleasesSpec,
    RuleBaseline,
    ServingSpec,
    SplitSpec,
    TaskName,
    _personal_list,
)


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
    checks: ChecksSpec = Field(default_factory=ChecksSpec)
    costs: Costs = Field(default_factory=Costs)
    constraints: Constraints = Field(default_factory=Constraints)
    compute: Compute = Field(default_factory=Compute)
    baselines: list[BaselineSpec] = Field(default_factory=lambda: ["majority", "linear"])
    candidates: list[Literal[CANDIDATES]] = Field(default_factory=lambda: list(DEFAULT_CANDIDATES))
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

    @field_validator("candidates")
    @classmethod
    def _some_candidate(cls, v):
        if not v:  # the bake-off then fitted nothing and said "every candidate failed or ran out of time"
            raise ValueError(f"no model family to try; list at least one of {', '.join(CANDIDATES)} "
                             "(the baselines always run beside them)")
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
            from ..forecast.spec import forecast_defaults

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
        if self.task in ("binary", "regression") and self.costs.matrix:
            # the matrix was accepted and never read: the case was priced at the default costs
            words = ("true_positive, false_positive, false_negative and true_negative" if self.task == "binary"
                     else "'under' and 'over'")
            raise ValueError(f"costs.matrix applies to multiclass cases; a {self.task} case is priced by {words}")
        if self.conformal.max_interval_width is not None and self.task != "regression":
            # accepted and never read: AER::SwissLabor's binary case ran with it and deferred by its sets alone
            what = ("whose prediction set is not a single class" if self.task in ("binary", "multiclass")
                    else "by no interval width")
            raise ValueError(f"conformal.max_interval_width applies to regression intervals; a {self.task} case "
                             f"defers cases {what}: remove conformal.max_interval_width")
        if self.split.method == "time" and not self.data.time:
            raise ValueError("split.method is 'time' but data.time names no column; set data.time or use another split")
        if self.split.method == "group" and not self.data.group:
            raise ValueError("split.method is 'group' but data.group names no column; set data.group or use another split")
        if self.task == "regression" and self.split.method == "stratified":
            self.split.method = "random"
        if self.serving.holdout > 0 and self.task != "binary":  # before a whole run, not at `mlcase serve`
            raise ValueError(f"serving.holdout needs a binary task (this case is {self.task}): a holdout keeps the "
                             "model's action from some units; set serving.holdout: 0 for this case")
        if self.serving.canary is not None and self.task in ("ranking", "forecast"):
            # /rank and /forecast answer with the champion's chain only: a canary was started and recorded in the
            # release history, and no list or series ever reached it
            route = "/rank" if self.task == "ranking" else "/forecast"
            raise ValueError(f"serving.canary: {route} has no canary arm yet (this case is {self.task}), so nothing "
                             "would reach it; remove serving.canary and promote a version after its evaluation")
        self._check_sensitive()
        self._check_rule_names()
        from ..governance.owners import check_notify_owners

        check_notify_owners(self)  # a command scoped to nobody never ran, silently
        seen = set()
        for p in self.personal_data:
            if p.column in seen:
                raise ValueError(f"personal_data: '{p.column}' is listed twice; keep one entry with its purpose")
            seen.add(p.column)
        from ..forecast.spec import check_forecast_spec

        check_forecast_spec(self)  # a forecast case's fields, and no forecast field in another task
        if self.task == "ranking" or self.ranking is not None or self.split.method == "group_time":
            from ..tasks.ranking import check_spec

            check_spec(self)
        return self

    def _check_sensitive(self) -> None:
        """A sensitive column is a group to audit the decisions across: the target (AER::HMDA's ``deny``, sliced by
        itself into recall and fall-out), an id or a time (one group per row or per moment) was accepted and
        read as a fairness audit."""
        roles = {"target": "the label the model predicts", "id": "one value per row",
                 "time": "a moment, not a group of people"}
        for i, c in enumerate(self.sensitive):
            for key, what in roles.items():
                if c == getattr(self.data, key):
                    raise ValueError(f"sensitive[{i}]: '{c}' is data.{key} ({what}), not a protected attribute to "
                                     f"audit the decisions across; remove it from sensitive and name a column such as "
                                     f"sex, race or age band")

    def _check_rule_names(self) -> None:
        """Each model of a run goes by one name (leaderboard, evaluation, decision, report, card, results): a rule
        named like another rule, a baseline or a model family would have overwritten its results."""
        from .sections import CANDIDATES, FORECAST_BASELINES

        taken = {*(b for b in self.baselines if isinstance(b, str)), "majority", "prior", "mean", "median", "linear",
                 "popularity", "recency", "als", *FORECAST_BASELINES, *CANDIDATES, "ensemble"}
        at = [i for i, b in enumerate(self.baselines) if isinstance(b, RuleBaseline)]
        first: dict[str, int] = {}
        for i, name in zip(at, self.rule_names(), strict=True):
            if self.baselines[i].name is not None and name in taken:
                raise ValueError(f"baselines[{i}].name: '{name}' is the name of a built-in baseline or model family; "
                                 "give the rule another name")
            if name in first:  # the rule that was given the name is the one to rename
                named, other = (i, first[name]) if self.baselines[i].name is not None else (first[name], i)
                raise ValueError(f"baselines[{named}].name: '{name}' is also the name of baselines[{other}]; give "
                                 "each rule its own name")
            first[name] = i

    # convenience -----------------------------------------------------------
    @property
    def rule_baselines(self) -> list[RuleBaseline]:
        return [b for b in self.baselines if isinstance(b, RuleBaseline)]

    def rule_names(self) -> list[str]:
        """The name of each rule baseline, in order, wherever its results are shown or stored: its ``name`` when
        the spec gives one. Unnamed: ``rule`` when it is the only rule, else ``rule:<n>`` (``n`` counts the rules
        from 1); a forecast's ``rule``, ``rule_2``, ...; a ranking's ``rule:<i>`` (``i`` its place in
        ``baselines``, from 0): the names results stored by earlier versions hold."""
        at = [i for i, b in enumerate(self.baselines) if isinstance(b, RuleBaseline)]
        out = []
        for k, i in enumerate(at):
            name = self.baselines[i].name
            if name is None:
                name = (f"rule:{i}" if self.task == "ranking" else
                        ("rule" if k == 0 else f"rule_{k + 1}") if self.task == "forecast" else
                        "rule" if len(at) == 1 else f"rule:{k + 1}")
            out.append(name)
        return out

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


