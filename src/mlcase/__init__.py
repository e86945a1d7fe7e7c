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

from .case import Case, load_case  # noqa: E402
from .errors import MlcaseError  # noqa: E402
from .spec import CaseSpec  # noqa: E402


def run(case, budget=None, force: bool = False, quiet: bool = False, console=None):
    """Run a case end to end; see :func:`mlcase.pipeline.run`."""
    from .pipeline import run as _run

    return _run(case, budget=budget, force=force, quiet=quiet, console=console)
