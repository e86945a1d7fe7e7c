"""The model bundle: a fitted model plus everything serving and monitoring need with it.

A bundle is what mlcase registers in MLflow: the scikit-learn-compatible model
(saved with skops), and ``bundle.json`` beside it holding the feature list, the
stored schema, the decision threshold, the conformal calibration and the
training reference for drift. ``bundle.json`` carries :data:`BUNDLE_VERSION`;
loading refuses other versions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

BUNDLE_VERSION = 1


@dataclass
class ModelBundle:
    """A fitted model and its serving metadata.

    Parameters
    ----------
    model : estimator
        Fitted; takes a DataFrame with the ``features`` columns.
    name : str
        Family or baseline name (``lightgbm``, ``rule``, ``majority`` ...).
    role : {"candidate", "baseline"}
    task : {"binary", "multiclass", "regression"}
    features : list of str
    schema : dict
        :meth:`mlcase.data.Schema.to_dict` of the training data.
    classes : list or None
        Class labels in the order of ``predict_proba`` columns (binary: ``[negative, positive]``).
    threshold : float or None
        Binary decision threshold on the positive-class probability.
    conformal : dict or None
        Conformal calibration (see :mod:`mlcase.conformal`).
    reference : dict or None
        Training reference for monitoring (see :mod:`mlcase.monitor`).
    """

    model: Any
    name: str
    role: str
    task: str
    features: list[str]
    schema: dict
    classes: list | None = None
    positive: Any = None
    threshold: float | None = None
    conformal: dict | None = None
    reference: dict | None = None
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    rule: str | None = None
    case_name: str | None = None
    data_fingerprint: str | None = None
    version: int | None = None       # registry version, filled on load
    run_id: str | None = None        # filled on load
    format_version: int = BUNDLE_VERSION

    def metadata(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "model"}
        return _jsonable(d)

    # predictions -------------------------------------------------------------------
    def scores(self, X) -> np.ndarray:
        """Positive-class probability (binary), class probabilities (multiclass: one column per
        ``classes`` entry, whatever the model's own ``classes_``), prediction (regression)."""
        from .tasks import get_task

        return get_task(self.task).scores(self.model, X, self.classes)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """The decision per row: binary flags at the threshold (1 = act), else the prediction."""
        if self.task == "binary":
            t = 0.5 if self.threshold is None else self.threshold
            return (scores >= t).astype("int64")
        if self.task == "multiclass":
            return np.asarray(self.classes, dtype=object)[np.argmax(scores, axis=1)]
        return scores


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and (v != v):
        return None
    return v
