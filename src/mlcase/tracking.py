"""MLflow tracking and registry: the only module that imports mlflow.

The default store is embedded in the case folder (``sqlite:///<case>/mlflow.db``,
artifacts in ``<case>/mlartifacts``); ``tracking_uri`` in the spec or
``MLFLOW_TRACKING_URI`` points elsewhere. MLflow's usage telemetry is turned off
unless the user set ``MLFLOW_DISABLE_TELEMETRY=false`` themselves.

Models are registered under the case's name with aliases ``candidate``,
``baseline`` and ``champion``. Each is a :class:`~mlcase.bundle.ModelBundle`:
the model saved with skops (types trusted only from an explicit module allowlist)
and ``bundle.json``; the sha256 of both is recorded as version tags and checked
on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .bundle import BUNDLE_VERSION, ModelBundle
from .case import Case
from .errors import ModelError, NotFoundError

# module prefixes whose types mlcase trusts when loading a skops file
TRUSTED_MODULES = ("sklearn.", "lightgbm.", "xgboost.", "numpy.", "scipy.", "mlcase.", "builtins.",
                   "collections.", "pandas.", "_codecs.", "functools.", "re.", "datetime.")
MODEL_FILE = "model.skops"
BUNDLE_FILE = "bundle.json"


def _quiet_env() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def mlflow():
    """The mlflow module, configured quietly."""
    _quiet_env()
    import mlflow as _mlflow

    return _mlflow


def setup(case: Case) -> str:
    """Point MLflow at the case's store; return the experiment id (created on first use)."""
    mf = mlflow()
    uri = case.tracking_uri
    if uri.startswith("sqlite:///"):
        case.root.mkdir(parents=True, exist_ok=True)
    mf.set_tracking_uri(uri)
    mf.set_registry_uri(uri)
    exp = mf.get_experiment_by_name(case.name)
    if exp is None:
        kwargs = {}
        if case.uses_embedded_store:
            kwargs["artifact_location"] = case.artifact_location
        exp_id = mf.create_experiment(case.name, **kwargs)
    else:
        exp_id = exp.experiment_id
    mf.set_experiment(experiment_id=exp_id)
    return exp_id


def client(case: Case):
    setup(case)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=case.tracking_uri, registry_uri=case.tracking_uri)


# --------------------------------------------------------------------------- runs
def base_tags(case: Case, fingerprint: str | None = None, stage: str | None = None) -> dict[str, str]:
    import importlib.metadata as md

    tags = {"mlcase.case": case.name, "mlcase.version": _version("mlcase")}
    if stage:
        tags["mlcase.stage"] = stage
    if fingerprint:
        tags["mlcase.data_fingerprint"] = fingerprint
    for pkg in ("scikit-learn", "lightgbm", "xgboost", "optuna", "pandas"):
        with contextlib.suppress(md.PackageNotFoundError):
            tags[f"mlcase.pkg.{pkg}"] = md.version(pkg)
    commit = git_commit(case.root)
    if commit:
        tags["mlcase.git_commit"] = commit
    return tags


def _version(pkg: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(pkg)
    except md.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def git_commit(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@contextlib.contextmanager
def run(case: Case, name: str, tags: dict | None = None, nested: bool = False):
    """Start an MLflow run in the case's experiment; yields the active run."""
    mf = mlflow()
    setup(case)
    with mf.start_run(run_name=name, tags=tags or {}, nested=nested) as active:
        yield active


def log_params(params: dict[str, Any]) -> None:
    mf = mlflow()
    clean = {str(k)[:250]: str(v)[:6000] for k, v in params.items()}
    if clean:
        mf.log_params(clean)


def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
    mf = mlflow()
    clean = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if f == f and abs(f) != float("inf"):
            clean[_metric_key(k)] = f
    if clean:
        mf.log_metrics(clean, step=step)


def _metric_key(k: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(k))[:250]


def log_dict(data: dict, artifact_file: str) -> None:
    mlflow().log_dict(data, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow().log_text(text, artifact_file)


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow().log_artifact(str(path), artifact_path)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow().set_tags({k: str(v) for k, v in tags.items()})


def active_run_id() -> str | None:
    r = mlflow().active_run()
    return r.info.run_id if r else None


# --------------------------------------------------------------------------- bundles
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _trusted_types(path: Path) -> list[str]:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=str(path))
    bad = [t for t in untrusted if not t.startswith(TRUSTED_MODULES)]
    if bad:
        raise ModelError(f"the model file {path.name} holds types mlcase does not trust: {', '.join(bad[:5])}",
                         "only scikit-learn, LightGBM, XGBoost and mlcase types can be registered")
    return untrusted


def save_bundle(bundle: ModelBundle, folder: Path) -> dict[str, str]:
    """Write ``model.skops`` and ``bundle.json`` into ``folder``; return their sha256."""
    import skops.io as sio

    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    sio.dump(bundle.model, model_path)
    _trusted_types(model_path)
    (folder / BUNDLE_FILE).write_text(json.dumps(bundle.metadata(), indent=1, default=str))
    return {"model_sha256": _sha256(model_path), "bundle_sha256": _sha256(folder / BUNDLE_FILE)}


def read_bundle(folder: Path, expected: dict[str, str] | None = None) -> ModelBundle:
    """Load a bundle written by :func:`save_bundle`, checking hashes and the format version."""
    import skops.io as sio

    folder = Path(folder)
    model_path, meta_path = folder / MODEL_FILE, folder / BUNDLE_FILE
    if not model_path.exists() or not meta_path.exists():
        raise ModelError(f"no mlcase model bundle in {folder}", "re-run `mlcase run` to register one")
    if expected:
        for key, path in (("model_sha256", model_path), ("bundle_sha256", meta_path)):
            want = expected.get(key)
            if want and _sha256(path) != want:
                raise ModelError(f"{path.name} does not match the hash recorded when it was registered",
                                 "the artifact was changed after registration; re-run `mlcase run`")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != BUNDLE_VERSION:
        raise ModelError(f"model bundle format {meta.get('format_version')} is not readable by this mlcase "
                         f"(reads {BUNDLE_VERSION})", "re-run `mlcase run` with this version")
    model = sio.load(model_path, trusted=_trusted_types(model_path))
    meta.pop("format_version", None)
    return ModelBundle(model=model, **meta)


def log_bundle(case: Case, bundle: ModelBundle, aliases: list[str] = (), tags: dict | None = None,
               input_example=None) -> int:
    """Log the bundle to the active run, register it under the case's name, set ``aliases``.

    Returns the new registry version.
    """
    mf = mlflow()
    cl = client(case)
    run_id = active_run_id()
    if run_id is None:
        raise ModelError("log_bundle needs an active MLflow run")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bundle"
        hashes = save_bundle(bundle, folder)
        mf.log_artifacts(str(folder), "bundle")
    # an MLflow model (signature + input example) for `mlflow ui` and `mlflow models serve`
    signature = None
    if input_example is not None:
        with contextlib.suppress(Exception):
            from mlflow.models import infer_signature

            signature = infer_signature(input_example, bundle.scores(input_example))
    model_info = None
    with contextlib.suppress(Exception):
        import skops.io as sio

        with tempfile.TemporaryDirectory() as tmp2:
            p = Path(tmp2) / "m.skops"
            sio.dump(bundle.model, p)
            trusted = _trusted_types(p)
        model_info = mf.sklearn.log_model(
            bundle.model, name="model", serialization_format="skops", skops_trusted_types=trusted,
            signature=signature, input_example=input_example,
            pyfunc_predict_fn="predict_proba" if bundle.task != "regression" else "predict")
    source = model_info.model_uri if model_info is not None else f"runs:/{run_id}/bundle"
    with contextlib.suppress(Exception):
        cl.create_registered_model(case.name, tags={"mlcase.case": case.name})
    mv = cl.create_model_version(case.name, source=source, run_id=run_id,
                                 tags={"mlcase.role": bundle.role, "mlcase.family": bundle.name,
                                       "mlcase.bundle_uri": f"runs:/{run_id}/bundle", **hashes,
                                       **{k: str(v) for k, v in (tags or {}).items()}})
    version = int(mv.version)
    for alias in aliases:
        cl.set_registered_model_alias(case.name, alias, version)
    return version


def set_alias(case: Case, alias: str, version: int, reason: str | None = None) -> None:
    cl = client(case)
    cl.set_registered_model_alias(case.name, alias, int(version))
    if reason:
        cl.set_model_version_tag(case.name, str(version), f"mlcase.alias.{alias}", reason[:4000])


def delete_alias(case: Case, alias: str) -> None:
    cl = client(case)
    with contextlib.suppress(Exception):
        cl.delete_registered_model_alias(case.name, alias)


def alias_version(case: Case, alias: str) -> int | None:
    """The version an alias points at, or None."""
    cl = client(case)
    try:
        return int(cl.get_model_version_by_alias(case.name, alias).version)
    except Exception:
        return None


def versions(case: Case) -> list[dict]:
    """All registered versions, oldest first, with their tags and aliases."""
    cl = client(case)
    try:
        mvs = cl.search_model_versions(f"name='{case.name}'")
    except Exception:
        return []
    out = [{"version": int(m.version), "run_id": m.run_id, "tags": dict(m.tags), "aliases": list(m.aliases)}
           for m in mvs]
    return sorted(out, key=lambda d: d["version"])


def set_version_tags(case: Case, version: int, tags: dict[str, Any]) -> None:
    cl = client(case)
    for k, v in tags.items():
        cl.set_model_version_tag(case.name, str(version), k, str(v)[:4000])


def load_bundle(case: Case, alias: str | None = "champion", version: int | None = None) -> ModelBundle:
    """Load a registered bundle by alias (default ``champion``) or version number."""
    mf = mlflow()
    cl = client(case)
    try:
        if version is not None:
            mv = cl.get_model_version(case.name, str(version))
        else:
            mv = cl.get_model_version_by_alias(case.name, alias)
    except Exception:
        what = f"version {version}" if version is not None else f"alias '{alias}'"
        raise NotFoundError(f"no registered model {what} for case '{case.name}' in {case.tracking_uri}",
                            "run `mlcase run` first (or pick an existing version with --version)") from None
    bundle_uri = mv.tags.get("mlcase.bundle_uri", f"runs:/{mv.run_id}/bundle")
    with tempfile.TemporaryDirectory() as tmp:
        local = mf.artifacts.download_artifacts(artifact_uri=bundle_uri, dst_path=tmp)
        bundle = read_bundle(Path(local), expected=dict(mv.tags))
    bundle.version = int(mv.version)
    bundle.run_id = mv.run_id
    return bundle


def run_data(case: Case, run_id: str) -> dict:
    cl = client(case)
    r = cl.get_run(run_id)
    return {"params": dict(r.data.params), "metrics": dict(r.data.metrics), "tags": dict(r.data.tags)}


def search_runs(case: Case, filter_string: str = "", max_results: int = 5000):
    """Runs of the case's experiment as a DataFrame (MLflow's ``search_runs``)."""
    mf = mlflow()
    exp_id = setup(case)
    return mf.search_runs(experiment_ids=[exp_id], filter_string=filter_string, max_results=max_results)


def download_run_artifact(case: Case, run_id: str, path: str, dst: Path) -> Path:
    mf = mlflow()
    setup(case)
    return Path(mf.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst)))
