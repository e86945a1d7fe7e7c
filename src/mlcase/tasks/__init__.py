"""One object per task type: metrics and their direction, costs, model-free policies, response shape.

Stages ask the task object (:func:`get_task`) instead of branching on
``spec.task``, so adding a task type is adding one module here
(``binary.py``, ``multiclass.py``, ``regression.py`` today) and one entry in
:data:`TASKS`.
"""

from __future__ import annotations

from .base import (
    EPS,
    ModelFreePolicy,
    Task,
    capacity_rows,
    capacity_share,
    volume_per_period,
)
from .binary import (
    BinaryTask,
    RowCosts,
    binary_costs,
    binary_flags,
    capacity_cut,
    capacity_threshold,
    carried_by_rate,
    choose_cut,
    choose_threshold,
    cost_curve,
    perfect_cost,
)
from .forecast import ForecastTask
from .multiclass import (
    MulticlassCosts,
    MulticlassTask,
    cost_matrix,
    decide_classes,
    multiclass_cost,
)
from .ranking import RankingTask
from .regression import (
    RegressionCosts,
    RegressionTask,
    choose_point,
    decide_point,
    optimal_constant,
    point_map,
    regression_cost,
    regression_cost_of,
    regression_rates,
    target_floor,
)

TASKS: dict[str, Task] = {"binary": BinaryTask(), "multiclass": MulticlassTask(), "regression": RegressionTask(),
                          "forecast": ForecastTask(), "ranking": RankingTask()}


def get_task(name: str) -> Task:
    """The task object of ``binary``, ``multiclass``, ``regression`` or ``ranking``."""
    return TASKS[name]


__all__ = [
    "EPS", "TASKS", "BinaryTask", "ForecastTask", "ModelFreePolicy", "MulticlassCosts", "MulticlassTask", "RankingTask",
    "RegressionCosts", "RegressionTask", "RowCosts", "Task", "binary_costs", "capacity_rows", "capacity_share",
    "binary_flags", "capacity_cut", "capacity_threshold", "carried_by_rate", "choose_cut", "choose_point", "cost_matrix", "decide_classes", "decide_point", "point_map",
    "target_floor",
    "choose_threshold", "cost_curve", "get_task", "multiclass_cost", "optimal_constant", "perfect_cost",
    "regression_cost", "regression_cost_of", "regression_rates", "volume_per_period",
]
