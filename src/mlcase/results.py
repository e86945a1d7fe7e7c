"""Stage results kept as JSON in ``<case>/.mlcase/`` so the report and card rebuild without retraining."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .case import Case
from .errors import redact_text

RESULTS_VERSION = 1


def _default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _clean(o: Any):
    if isinstance(o, str):
        return redact_text(o) if "://" in o else o
    if isinstance(o, float) and (o != o or o in (float("inf"), float("-inf"))):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.generic):
        return _clean(o.item())
    return o


def to_json(data: Any, indent: int | None = 1) -> str:
    """JSON text of a result (NaN/inf become null, numpy values become numbers, URLs lose their credentials)."""
    return json.dumps(_clean(json.loads(json.dumps(data, default=_default))), indent=indent)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temp file beside it (per process), then a rename, so a reader
    never sees half a file and a crash leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save(case: Case, stage: str, data: dict) -> Path:
    """Write ``<case>/.mlcase/<stage>.json`` atomically (see :func:`write_atomic`)."""
    path = case.work_dir / f"{stage}.json"
    write_atomic(path, to_json({"results_version": RESULTS_VERSION, "stage": stage, "data": data}))
    return path


def load(case: Case, stage: str) -> dict | None:
    path = case.work_dir / f"{stage}.json"
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        from .errors import DataError

        raise DataError(f"{path}: the stored {stage} results are not readable JSON ({str(exc).splitlines()[0][:120]})",
                        f"delete the file and re-run the stage (`mlcase run {case.root}` rewrites them all)",
                        path=str(path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        return None  # not a results file this mlcase wrote: ignored, as one of another version is
    if doc.get("results_version") != RESULTS_VERSION:
        return None
    return doc["data"]


def load_all(case: Case) -> dict[str, dict]:
    out = {}
    if case.work_dir.exists():
        for p in sorted(case.work_dir.glob("*.json")):
            d = load(case, p.stem)
            if d is not None:
                out[p.stem] = d
    return out


def clear(case: Case, stages: list[str] | None = None) -> None:
    if not case.work_dir.exists():
        return
    for p in case.work_dir.glob("*.json"):
        if stages is None or p.stem in stages:
            p.unlink()


def ceiling_stop(case: Case) -> str | None:
    """Why the case's last run stopped at the value ceiling before training (its decision's last reason), or
    None when it did not: such a run registers no model and leaves no bake-off, by design, and commands that
    need them say so instead of "run `mlcase run` first" (Ecdat::Airline, where popularity was already perfect)."""
    ceiling = load(case, "ceiling") or {}
    if not ceiling.get("stop") or load(case, "bakeoff") is not None:
        return None
    reasons = (load(case, "decision") or {}).get("reasons") or []
    return reasons[-1] if reasons else "a process that needs no model already does as well as a model could"
