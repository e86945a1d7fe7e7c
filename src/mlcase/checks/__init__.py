"""Data checks: catch leakage, imbalance and unusable features before any model is fitted.

:func:`run_checks` takes the case and its prepared :class:`~mlcase.data.Dataset`
and returns a :class:`CheckReport`: one :class:`Check` per finding, each with an
id, a severity (``error`` blocks ``mlcase run``, ``warning`` is reported,
``info`` is context), the evidence in numbers and a fix in plain words.

Each check is one function registered with :func:`register` (see
:mod:`mlcase.checks.registry`), in a module by theme: :mod:`~.reading` (what reading
the file changed: duplicate names, infinities, missing-value tokens, mis-decoded text),
:mod:`~.target`, :mod:`~.features`, :mod:`~.personal` (direct identifiers), :mod:`~.duplicates`, :mod:`~.leakage`,
:mod:`~.labels`, :mod:`~.shift` and :mod:`~.assumptions`. :mod:`~.datasheet` turns the
data and the findings into the datasheet.

Checks that read the target use the training rows only. The statistical checks
(leakage, proxies, split shift) work on a seeded sample of at most
``sample_rows`` rows and are vectorised (rank AUC, out-of-fold target-rate
encoding by ``bincount``), so a table of a million rows checks in seconds with
memory bounded by a few columns of the sample.

Examples
--------
>>> from mlcase import load_case                          # doctest: +SKIP
>>> from mlcase.data import prepare                       # doctest: +SKIP
>>> case = load_case("examples/default")                  # doctest: +SKIP
>>> report = run_checks(case, prepare(case))              # doctest: +SKIP
>>> report.has_errors                                     # doctest: +SKIP
False
"""

from __future__ import annotations

# the check modules register their checks on import; the order of the report is each check's `order`
from . import assumptions, duplicates, features, labels, leakage, personal, reading, shift, target  # noqa: F401
from .context import Context, Skip
from .registry import REGISTRY, register, registered, run_checks
from .report import CHECKS_VERSION, SEVERITIES, Check, CheckReport

__all__ = ["CHECKS_VERSION", "REGISTRY", "SEVERITIES", "Check", "CheckReport", "Context", "Skip", "register",
           "registered", "run_checks"]
