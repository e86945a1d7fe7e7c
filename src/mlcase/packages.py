"""Installed package versions, by the name code imports: ``xgboost`` also when the ``xgboost-cpu`` wheel provides it.

mlcase depends on ``xgboost-cpu`` (the CPU-only wheel, without CUDA and NCCL); a machine with a GPU may
install the full ``xgboost`` wheel instead (README, "XGBoost on a GPU"). Both provide the module
``xgboost``; :func:`distribution` finds which one is installed.
"""

from __future__ import annotations

import functools
import importlib.metadata as md

# distributions that provide a module under another name, in the order they are looked for
ALTERNATIVES = {"xgboost": ("xgboost", "xgboost-cpu", "xgboost-cu12", "xgboost-cu13")}


@functools.cache
def distribution(name: str) -> str | None:
    """The installed distribution that provides ``name`` (``"xgboost-cpu"`` for ``"xgboost"``), or None.

    >>> distribution("numpy")
    'numpy'
    """
    for dist in ALTERNATIVES.get(name, (name,)):
        try:
            md.version(dist)
            return dist
        except md.PackageNotFoundError:
            continue
    return None


def version(name: str) -> str | None:
    """The installed version of ``name`` (see :func:`distribution`), or None."""
    dist = distribution(name)
    return md.version(dist) if dist else None


def requirement(name: str) -> str | None:
    """A pinned pip requirement for what provides ``name``: ``"xgboost-cpu==3.2.0"``, or None."""
    dist = distribution(name)
    return f"{dist}=={md.version(dist)}" if dist else None
