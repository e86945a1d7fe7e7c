"""The case spec: ``case.yaml`` as pydantic v2 models.

Load with :func:`load_spec` (or :func:`mlcase.load_case`). Errors name the YAML
path and line and what is expected, e.g.
``costs.true_positive (line 14): expected a number or a SQL expression, got 'high'``.
Unknown keys are errors, with the closest allowed key suggested.

A package along its seams: :mod:`.base` (durations, rates, the strict base model),
:mod:`.sections` (one model per section), :mod:`.case` (``CaseSpec`` and the checks that span
sections), :mod:`.loading` (the bounded YAML loader and the error messages).
"""

from __future__ import annotations

from .base import (
    PERIOD_SECONDS,
    SPEC_VERSION,
    Duration,
    PositiveDuration,
    parse_duration,
    parse_rate,
)
from .case import (
    CaseSpec,
)
from .loading import (
    MAX_SPEC_BYTES,
    MAX_SPEC_DEPTH,
    decode_spec,
    dump_spec,
    load_spec,
    parse_spec,
    spec_from_dict,
)
from .sections import (
    CANDIDATES,
    DEFAULT_CANDIDATES,
    FORECAST_BASELINES,
    PERSONAL_KINDS,
    AcceptedFinding,
    AnalysisSpec,
    Assumption,
    BakeoffSpec,
    BaselineSpec,
    CanarySpec,
    ChecksSpec,
    Compute,
    ConformalSpec,
    Constraints,
    Costs,
    CostValue,
    DataSpec,
    EngineSpec,
    EvaluationSpec,
    FeatureSelection,
    ForecastSpec,
    Guardrails,
    MonitoringSpec,
    NotifyCommand,
    NotifySpec,
    PersonalDatum,
    Problem,
    RankingSpec,
    ReleasesSpec,
    RuleBaseline,
    ServingSpec,
    SplitSpec,
    TaskName,
)

__all__ = [
    "AnalysisSpec",
    "Assumption",
    "BakeoffSpec",
    "BaselineSpec",
    "BaselineSpec",
    "CanarySpec",
    "CANDIDATES",
    "DEFAULT_CANDIDATES",
    "CaseSpec",
    "Compute",
    "ConformalSpec",
    "Constraints",
    "Costs",
    "CostValue",
    "DataSpec",
    "decode_spec",
    "dump_spec",
    "Duration",
    "EngineSpec",
    "EvaluationSpec",
    "FeatureSelection",
    "FORECAST_BASELINES",
    "ForecastSpec",
    "Guardrails",
    "load_spec",
    "MAX_SPEC_BYTES",
    "MAX_SPEC_DEPTH",
    "MonitoringSpec",
    "NotifyCommand",
    "NotifySpec",
    "parse_duration",
    "parse_rate",
    "parse_spec",
    "PERIOD_SECONDS",
    "PERSONAL_KINDS",
    "PersonalDatum",
    "AcceptedFinding",
    "ChecksSpec",
    "PositiveDuration",
    "Problem",
    "RankingSpec",
    "ReleasesSpec",
    "RuleBaseline",
    "ServingSpec",
    "spec_from_dict",
    "SPEC_VERSION",
    "SplitSpec",
    "TaskName",
]
