"""The registry of data checks: one function per check, registered with :func:`register`.

A check is a function of a :class:`~mlcase.checks.context.Context` that returns the
findings it made (a list of :class:`~mlcase.checks.report.Check`, empty when all is well)
or raises :class:`~mlcase.checks.context.Skip` when it does not apply to the case::

    @register("constant", ids=("constant_column", "near_constant_column"), order=80)
    def check_constant(ctx: Context) -> list[Check]:
        ...

``ids`` are the finding ids the check can report (what ``ran``, ``passed`` and ``skipped``
list); ``order`` is its place in the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..case import Case
from ..data import Dataset
from .context import Context, Skip
from .report import Check, CheckReport, apply_accepted
from .thresholds import SAMPLE_ROWS


@dataclass(frozen=True)
class Registered:
    """One registered check: its name, the finding ids it reports, its place and its function."""

    name: str
    ids: tuple[str, ...]
    order: int
    fn: Callable[[Context], list[Check]]


REGISTRY: dict[str, Registered] = {}


def register(name: str, *, ids: tuple[str, ...] | None = None, order: int = 1000):
    """Register the decorated function as the data check ``name``.

    Parameters
    ----------
    name : str
        The check's name (unique).
    ids : tuple of str, optional
        The finding ids it can report (default ``(name,)``).
    order : int
        Its place in the report (lower first).
    """
    def decorate(fn: Callable[[Context], list[Check]]):
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"a data check named {name!r} is already registered")
        REGISTRY[name] = Registered(name, tuple(ids or (name,)), order, fn)
        return fn
    return decorate


def registered() -> list[Registered]:
    """Every registered check, in report order."""
    return sorted(REGISTRY.values(), key=lambda r: (r.order, r.name))


def run_checks(case: Case, dataset: Dataset, *, sample_rows: int = SAMPLE_ROWS,
               only: list[str] | None = None) -> CheckReport:
    """Run every data check on a prepared dataset.

    Parameters
    ----------
    case : Case
    dataset : Dataset
        From :func:`mlcase.data.prepare` (missing-target and immature rows already
        dropped or excluded; their counts are in ``dataset.excluded``).
    sample_rows : int
        Rows used by the statistical checks (leakage, proxies, split shift).
    only : list of str, optional
        Names of the checks to run (default all registered checks).

    Returns
    -------
    CheckReport
        Errors first, then warnings, then notes. An invalid assumption check raises
        :class:`~mlcase.errors.RuleError` (bad input) rather than becoming a finding.
    """
    from ..data import require_dataset

    require_dataset(dataset, "run_checks")
    t0 = time.perf_counter()
    if only is not None:   # a name that matches no check would run none, and the empty report would look clean
        from ..errors import SpecError

        if isinstance(only, str):
            only = [only]
        names = [e.name for e in registered()]
        unknown = [o for o in only if o not in names]
        if unknown:
            raise SpecError(f"only: no data check is named {', '.join(repr(u) for u in unknown)}",
                            f"name checks from: {', '.join(names)}")
    ctx = Context(case, dataset, sample_rows)
    found: list[Check] = []
    ran: list[str] = []
    skipped: dict[str, str] = {}
    for entry in registered():
        if only is not None and entry.name not in only:
            continue
        try:
            found.extend(entry.fn(ctx))
            ran.extend(entry.ids)
        except Skip as why:
            skipped.update({i: str(why) for i in entry.ids})
    report = CheckReport(checks=found, ran=ran, skipped=skipped, rows=int(len(dataset.frame)),
                         excluded=dict(dataset.excluded), stats=ctx.stats)
    # marks the accepted findings, then orders them: errors first, accepted ones after the rest of their severity
    apply_accepted(report, case.spec.checks.accept, {i for e in registered() for i in e.ids}, dataset.frame.columns)
    report.elapsed_s = time.perf_counter() - t0
    return report
