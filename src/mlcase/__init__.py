"""mlcase: decision-first applied machine learning.

>>> import mlcase
>>> case = mlcase.load_case("examples/telco-churn")    # doctest: +SKIP
>>> result = mlcase.run(case, budget="60s")              # doctest: +SKIP
>>> result.decision                                      # doctest: +SKIP
'GO'
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Case", "CaseSpec", "MlcaseError", "__version__", "load_case", "run"]

# Public names resolve on first use (PEP 562), so `import mlcase` and `mlcase --help` stay fast.
_LAZY = {"Case": ("case", "Case"), "load_case": ("case", "load_case"),
         "MlcaseError": ("errors", "MlcaseError"), "CaseSpec": ("spec", "CaseSpec")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlcase' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def run(case, budget=None, force: bool = False, quiet: bool = False, console=None, refit=None, engine=None,
        scheduler=None):
    """Run a case end to end; see :func:`mlcase.pipeline.run`."""
    from .pipeline import run as _run

    return _run(case, budget=budget, force=force, quiet=quiet, console=console, refit=refit, engine=engine,
                scheduler=scheduler)
