"""The model bundle: a fitted model plus everything serving and monitoring need with it.

A bundle is what mlcase registers in MLflow: the scikit-learn-compatible model
(saved with skops), and ``bundle.json`` beside it holding the feature list, the
stored schema, the decision threshold, the conformal calibration and the
training reference for drift. ``bundle.json`` carries :data:`BUNDLE_VERSION`;
loading refuses other versions.

Loading a model file cannot run code (see ``docs/security.md``):

- its sha256 and that of ``bundle.json`` are recorded at registration, with an
  HMAC-SHA256 :func:`signature` over both made with a key kept outside the store
  (:func:`signing_key`); a bundle without them, or whose files or signature do not
  match, is refused before skops reads a byte of it;
- skops then builds only the exact types of :data:`TRUSTED_TYPES` (and its own
  defaults): never a module prefix, never a function that runs code it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

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
    tie_share : float or None
        Binary: the share of the rows scored exactly at ``threshold`` that are flagged, where the
        review capacity falls inside a block of tied scores (:func:`mlcase.tasks.choose_cut`); None
        flags every row at it.
    cost_matrix : list of lists or None
        Multiclass: ``C[i][j]``, the money when the truth is ``classes[i]`` and the decision
        ``classes[j]``, where the case's ``costs.matrix`` is uneven (see
        :func:`mlcase.tasks.cost_matrix`); the decision is then the class of least expected cost.
    point : dict or None
        Regression: ``{"intercept", "slope"}`` of the prediction ``intercept + slope * score`` that
        costs least under the case's ``costs.under``/``costs.over`` (see
        :func:`mlcase.tasks.choose_point`), and ``"floor"`` (0) where the training target never went
        below it (:func:`mlcase.tasks.target_floor`); None predicts the score itself.
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
    tie_share: float | None = None
    point: dict | None = None
    cost_matrix: list | None = None
    conformal: dict | None = None
    reference: dict | None = None
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    rule: str | None = None
    ranking: dict | None = None      # ranking: group/item columns, k, relevance, the popularity fallback
    case_name: str | None = None
    data_fingerprint: str | None = None
    version: int | None = None       # registry version, filled on load
    run_id: str | None = None        # filled on load
    format_version: int = BUNDLE_VERSION
    hashes: dict = field(default_factory=dict)  # sha256 of the files it was read from (filled on load, not saved)

    def metadata(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("model", "hashes")}
        return _jsonable(d)

    # predictions -------------------------------------------------------------------
    def scores(self, X) -> np.ndarray:
        """Positive-class probability (binary), class probabilities (multiclass: one column per
        ``classes`` entry, whatever the model's own ``classes_``), prediction (regression)."""
        from .candidates import few_rows
        from .tasks import get_task

        with few_rows(len(X)):
            return get_task(self.task).scores(self.model, self._own_columns(X), self.classes)

    def _own_columns(self, X):
        """``X`` cut to the bundle's features, in their order, when it holds more (an id, the label):
        a pipeline picks its columns by name, but not every model does (an ensemble checks the width)."""
        cols = getattr(X, "columns", None)
        if cols is None or not self.features or list(cols) == list(self.features):
            return X
        if set(self.features).issubset(cols):
            return X[list(self.features)]
        return X

    @property
    def valid_threshold(self) -> float | None:
        """The threshold on the scale of :func:`mlcase.evaluate.valid_scores` (out-of-fold scores).

        It differs from :attr:`threshold` where the served model's own scores are cut at the
        rate the out-of-fold threshold planned (:func:`mlcase.evaluate.policies.rate_matched`).
        """
        return self.metrics.get("threshold_oof", self.threshold)

    @property
    def valid_tie_share(self) -> float | None:
        """:attr:`tie_share` at :attr:`valid_threshold` (the out-of-fold scores' own)."""
        return self.metrics.get("tie_share_oof") if "threshold_oof" in self.metrics else self.tie_share

    def decide(self, scores: np.ndarray, draws=None) -> np.ndarray:
        """The decision per row: binary flags at the threshold (1 = act), the class of least expected cost (multiclass), the
        prediction (regression: the score, or its :attr:`point` map where the costs call for one).

        ``draws``: binary, one uniform number in [0, 1) per row choosing the rows at a split threshold
        (:attr:`tie_share`) that are flagged; without them, exactly that share is (:func:`mlcase.tasks.binary_flags`).
        """
        if self.task == "binary":
            from .tasks import binary_flags

            return binary_flags(scores, self.threshold, self.tie_share, draws)
        if self.task == "multiclass":
            from .tasks import decide_classes

            return decide_classes(scores, self.classes, self.cost_matrix)
        if self.task == "regression":
            from .tasks import decide_point

            return decide_point(scores, self.point)
        return scores


def schema_sha256(bundle: ModelBundle) -> str:
    """sha256 of the record schema a bundle validates requests against (its features and stored schema).

    Canonical JSON (sorted keys), so the same schema always hashes alike; the prediction log
    keeps it per row and ``mlcase replay`` compares it.
    """
    text = json.dumps({"features": list(bundle.features), "schema": _jsonable(bundle.schema)}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


# =========================================================================== the model file
MODEL_FILE = "model.skops"
BUNDLE_FILE = "bundle.json"
SIGNING_KEY_ENV = "MLCASE_SIGNING_KEY"
_SIGNATURE_CONTEXT = b"mlcase-bundle-signature-v1"


def _sklearn_types() -> list:
    """scikit-learn parts that skops does not trust by default."""
    from sklearn.calibration import _CalibratedClassifier, _SigmoidCalibration
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree
    from sklearn.utils.validation import check_array

    return [
        _CalibratedClassifier,    # CalibratedClassifierCV's fitted calibrators (evaluate's calibration)
        _SigmoidCalibration,      # calibrate: sigmoid
        # skops leaves the two tree stores untrusted: a crafted node array can crash predict().
        # mlcase checks the file's signature before skops reads it, so only a file mlcase
        # signed reaches them.
        TreePredictor,            # HistGradientBoosting* trees
        Tree,                     # RandomForest* / DecisionTree* trees
        check_array,              # HistGradientBoosting* with categorical features keeps partial(check_array, ...)
    ]


def _lightgbm_types() -> list:
    import lightgbm as lgb

    return [lgb.LGBMClassifier, lgb.LGBMRegressor, lgb.LGBMRanker, lgb.Booster]


def _xgboost_types() -> list:
    import xgboost as xgb

    return [xgb.XGBClassifier, xgb.XGBRegressor, xgb.XGBRanker, xgb.Booster]


def _catboost_types() -> list:
    import catboost

    # the fitted model is CatBoost's own binary format inside the estimator's state; the
    # signature check above is what keeps a crafted one from reaching CatBoost's loader
    return [catboost.CatBoostClassifier, catboost.CatBoostRegressor]


def _python_types() -> list:
    import collections
    import functools

    return [
        collections.OrderedDict,  # LightGBM's parameters
        functools.partial,        # the partial object only: what it wraps must be trusted on its own line
    ]


def _numpy_types() -> list:
    return [np.dtype]


def _scipy_types() -> list:
    from scipy.interpolate import BSpline

    # SplineTransformer's fitted basis (the linear families' splines) is a list of BSpline objects;
    # each keeps the array-conversion function of its array namespace (numpy's asarray through
    # SciPy's array-API layer), taken here from a real BSpline so the name follows SciPy's version
    return [BSpline, BSpline(np.arange(8.0), np.ones(4), 3)._asarray]


def _mlcase_types() -> list:
    from . import baselines, candidates, rankers, rules
    from .bakeoff import ensemble

    return [
        ensemble.EnsembleClassifier,   # Caruana ensembles of the bake-off's best trials
        ensemble.EnsembleRegressor,
        baselines.MajorityBaseline,
        baselines.MeanBaseline,
        baselines.RuleBaseline,
        rules.Rule,                    # RuleBaseline.rule_, RuleRanker.keys_
        rankers.PopularityRanker,      # ranking baselines (arrays and dicts of ids only)
        rankers.RecencyRanker,
        rankers.RuleRanker,
        rankers.ALSRanker,
        candidates.datetime_to_days,   # FunctionTransformer of date columns
        candidates._to_text,           # FunctionTransformer of categorical columns
        *_forecast_types(),
    ]


def _forecast_types() -> list:
    from .forecast import models

    return [models.GlobalForecaster, models.LocalForecaster, models.RuleForecaster]  # task: forecast


#: The model-file allowlist, by the top-level module of the names it holds: each group is
#: imported only when a file asks for a type of that module. A type is trusted when its
#: exact name (``module.qualname``) is built from one of these objects. Never a module
#: prefix, never a function that runs code it is given (``builtins.eval``, ``operator.*``).
#: A new estimator class (an ensemble, a model-free policy, a calibrator wrapper) is one
#: more line in its group; ``tests/test_bundle.py`` builds every family, baseline and
#: calibrator and loads it back through this list.
TRUSTED_TYPES = {
    "sklearn": _sklearn_types,
    "lightgbm": _lightgbm_types,
    "xgboost": _xgboost_types,
    "catboost": _catboost_types,
    "numpy": _numpy_types,
    "scipy": _scipy_types,
    "collections": _python_types,
    "functools": _python_types,
    "mlcase": _mlcase_types,
}


def type_name(obj) -> str:
    """The name skops gives a class or function: ``module.qualname``."""
    return f"{obj.__module__}.{obj.__qualname__}"


def trusted_type_names(requested=None) -> set[str]:
    """Exact names of the trusted types (only the groups ``requested`` names need, when given)."""
    tops = set(TRUSTED_TYPES) if requested is None else {n.split(".", 1)[0] for n in requested}
    out: set[str] = set()
    for top in sorted(tops & set(TRUSTED_TYPES)):
        try:
            objects = TRUSTED_TYPES[top]()
        except ImportError:  # a family whose library is not installed: its types stay untrusted
            continue
        out.update(type_name(o) for o in objects)
    return out


def check_trusted(path: Path, saving: bool = False) -> list[str]:
    """The non-default types ``path`` needs, all trusted; else a one-line :class:`ModelError`."""
    import skops.io as sio

    try:
        needed = sio.get_untrusted_types(file=str(path))
    except Exception as exc:  # noqa: BLE001 - a file skops cannot parse is a bad model file, not a bug
        raise ModelError(f"the model file {path.name} is not a readable skops file "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})",
                         "re-run `mlcase run` to register a fresh model") from None
    trusted = trusted_type_names(needed)
    bad = [t for t in needed if t not in trusted]
    if bad:
        raise ModelError(f"the model file {path.name} holds types mlcase does not trust: {', '.join(bad[:5])}"
                         + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""),
                         ("a class mlcase builds must be listed in mlcase.bundle.TRUSTED_TYPES (one line per class)"
                          if saving else "only the scikit-learn, LightGBM, XGBoost and mlcase types listed in "
                          "mlcase.bundle.TRUSTED_TYPES are loaded; re-run `mlcase run`"))
    return needed


# =========================================================================== hashes and signature
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def signing_key_path() -> Path:
    """``$XDG_CONFIG_HOME/mlcase/signing.key`` (default ``~/.config/mlcase/signing.key``)."""
    from .keys import config_dir

    return config_dir() / "signing.key"


def signing_key() -> bytes:
    """The key bundles are signed with: ``MLCASE_SIGNING_KEY``, else the key file (created 0600 on first use).

    The key lives outside the artifact store, so whoever can rewrite the store's files and
    tags still cannot sign a model. Every machine that registers or loads a case's models
    needs the same key (set ``MLCASE_SIGNING_KEY`` from a secret store on servers).
    See :mod:`mlcase.keys`.
    """
    from .keys import secret_key

    return secret_key(SIGNING_KEY_ENV, signing_key_path().name, ModelError, "signing key")


def key_id(key: bytes | None = None) -> str:
    """A short, public fingerprint of the signing key (to tell which key signed a bundle)."""
    return hashlib.sha256(b"mlcase-key-id" + (signing_key() if key is None else key)).hexdigest()[:12]


def signature(model_sha256: str, bundle_sha256: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 over the hashes of ``model.skops`` and ``bundle.json``."""
    msg = b"\0".join([_SIGNATURE_CONTEXT, model_sha256.encode("ascii"), bundle_sha256.encode("ascii")])
    return hmac.new(signing_key() if key is None else key, msg, hashlib.sha256).hexdigest()


# =========================================================================== save and load
def save_bundle(bundle: ModelBundle, folder: Path) -> dict[str, str]:
    """Write ``model.skops`` and ``bundle.json`` into ``folder``; return their sha256 and signature.

    The returned dict (``model_sha256``, ``bundle_sha256``, ``hmac_sha256``, ``signing_key_id``)
    is what :func:`read_bundle` needs as ``expected``; the registry keeps it as version tags.
    A model holding a type outside :data:`TRUSTED_TYPES` is refused here, before it is registered.
    """
    import skops.io as sio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    sio.dump(bundle.model, model_path)
    check_trusted(model_path, saving=True)
    (folder / BUNDLE_FILE).write_text(json.dumps(bundle.metadata(), indent=1, default=str))
    hashes = {"model_sha256": sha256_file(model_path), "bundle_sha256": sha256_file(folder / BUNDLE_FILE)}
    key = signing_key()
    return {**hashes, "hmac_sha256": signature(hashes["model_sha256"], hashes["bundle_sha256"], key),
            "signing_key_id": key_id(key)}


def skops_types(folder: Path) -> list[str]:
    """The exact non-default type names of a saved ``model.skops`` (for MLflow's ``skops_trusted_types``)."""
    return check_trusted(Path(folder) / MODEL_FILE)


def read_bundle(folder: Path, expected: dict[str, str] | None, what: str = "the model bundle") -> ModelBundle:
    """Load a bundle written by :func:`save_bundle`; refuse it unless hashes and signature match.

    In order, before any byte of the model is deserialised: ``expected`` must hold both
    hashes and the signature (a missing one is refused, never skipped); the files must
    match the hashes; the signature must be the HMAC of those hashes under this machine's
    :func:`signing_key`. Then the model file may hold only :data:`TRUSTED_TYPES`.
    """
    import skops.io as sio

    folder = Path(folder)
    model_path, meta_path = folder / MODEL_FILE, folder / BUNDLE_FILE
    if not model_path.exists() or not meta_path.exists():
        gone = " and ".join(p.name for p in (model_path, meta_path) if not p.exists())
        if what != "the model bundle":
            # a registered version, read from a scratch copy that is deleted on return: naming that folder sent the
            # user to a path that no longer existed
            raise ModelError(f"{what}: {gone} is missing from its registered files (the case folder's mlartifacts is "
                             "incomplete)", "restore mlartifacts beside mlflow.db (copy the whole case folder), or "
                             "run `mlcase run` to train and register the models again")
        raise ModelError(f"no mlcase model bundle in {folder} ({gone} missing)", "re-run `mlcase run` to register one")
    expected = expected or {}
    missing = [k for k in ("model_sha256", "bundle_sha256", "hmac_sha256") if not expected.get(k)]
    if missing:
        raise ModelError(f"{what} has no recorded {' or '.join(missing)}, so it cannot be verified and is refused",
                         "it was registered by an older mlcase or its tags were removed; re-run `mlcase run`")
    actual = {"model_sha256": sha256_file(model_path), "bundle_sha256": sha256_file(meta_path)}
    for key, path in (("model_sha256", model_path), ("bundle_sha256", meta_path)):
        if actual[key] != expected[key]:
            raise ModelError(f"{what}: {path.name} does not match the hash recorded when it was registered",
                             "the artifact was changed after registration; re-run `mlcase run`")
    if not hmac.compare_digest(signature(actual["model_sha256"], actual["bundle_sha256"]),
                               str(expected["hmac_sha256"])):
        signed_by = expected.get("signing_key_id")
        other = signed_by and signed_by != key_id()
        raise ModelError(f"{what}: the signature does not match"
                         + (f" (signed with key {signed_by}, this machine has key {key_id()})" if other else ""),
                         (f"set {SIGNING_KEY_ENV} to the key of the machine that registered it" if other else
                          "the model or its registry tags were replaced outside mlcase; re-run `mlcase run`"))
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ModelError(f"{what}: bundle.json is not readable ({str(exc)[:120]})", "re-run `mlcase run`") from None
    if not isinstance(meta, dict) or meta.get("format_version") != BUNDLE_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise ModelError(f"model bundle format {version} is not readable by this mlcase "
                         f"(reads {BUNDLE_VERSION})", "re-run `mlcase run` with this version")
    needed = check_trusted(model_path)
    model = sio.load(model_path, trusted=needed)
    meta.pop("format_version", None)
    meta.pop("hashes", None)
    return ModelBundle(model=model, **meta, hashes=actual)
