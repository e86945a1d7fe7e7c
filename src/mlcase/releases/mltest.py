"""The readiness gate: the ML Test Score (Breck et al., 2017) from the case's own evidence.

*The ML Test Score: A Rubric for ML Production Readiness and Technical Debt
Reduction* (Breck, Cai, Nielsen, Salib, Sculley; IEEE Big Data 2017) lists 28
tests in four groups of seven: data, model, infrastructure, monitoring. Each
test scores 0 (missing), 0.5 (done by hand, with its results documented) or 1
(automated and run repeatedly); a group's score is the sum of its tests, and
the final score is the *minimum* over the four groups, so a case is only as
ready as its weakest side.

Here each test reads what the case has actually produced: the stage results in
``<case>/.mlcase`` (checks, bake-off, evaluation, decision, explanations,
monitoring), the registry (the champion, its run's tags, earlier champions),
the release history, the prediction log and the spec itself. A test is
``automated`` when mlcase runs it on every run, request or release of this case,
``manual`` when the evidence exists but nothing reruns or enforces it, and
``missing`` otherwise; every test that is not automated says what would close
it. :func:`readiness` computes it; ``mlcase promote`` refuses below
``releases.min_readiness`` unless forced.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from ..case import Case, as_case

GROUPS = ("data", "model", "infrastructure", "monitoring")
POINTS = {"automated": 1.0, "manual": 0.5, "missing": 0.0}
MAX_SCORE = 7.0   # the score is the minimum over the groups of the sum of their 7 tests' points
# Breck et al., section VI: what a final score means
BANDS = ((0.0, "more of a research project than a productionized system"),
         (1.0, "not totally untested, but it is worth considering the possibility of serious holes in reliability"),
         (2.0, "there has been a first pass at basic productionization, but additional investment may be needed"),
         (3.0, "reasonably tested, but more of those tests and procedures may be automated"),
         (5.0, "strong levels of automated testing and monitoring, appropriate for mission-critical systems"),
         (7.0, "exceptional levels of automated testing and monitoring"))


@dataclass
class TestResult:
    """One of the 28 tests: its status, the evidence found and what would close it."""

    id: str
    group: str
    title: str
    status: str              # automated | manual | missing
    evidence: str
    close: str | None = None  # what would make it automated (None when it is)

    @property
    def points(self) -> float:
        return POINTS[self.status]

    def to_dict(self) -> dict:
        return {"id": self.id, "group": self.group, "title": self.title, "status": self.status,
                "points": self.points, "evidence": self.evidence, "close": self.close}


@dataclass
class Readiness:
    """The ML Test Score of a case: every test, the points per group and the score (their minimum)."""

    case: str
    tests: list[TestResult]
    minimum: float = 0.0
    computed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    champion_version: int | None = None  # the champion its evidence saw (the report says when it has moved since)

    @property
    def groups(self) -> dict[str, float]:
        return {g: sum(t.points for t in self.tests if t.group == g) for g in GROUPS}

    @property
    def score(self) -> float:
        return min(self.groups.values())

    @property
    def total(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def meaning(self) -> str:
        return next(text for limit, text in reversed(BANDS) if self.score >= limit) if self.score > 0 else BANDS[0][1]

    @property
    def passes(self) -> bool:
        return self.score >= self.minimum

    def __repr__(self) -> str:  # the dataclass repr printed all 28 tests with their evidence (6,499 characters)
        return (f"Readiness(case={self.case!r}, score={self.score:g}, minimum={self.minimum:g}, passes={self.passes}, "
                f"groups={self.groups}, tests={len(self.tests)})")

    def next_steps(self, k: int = 3) -> list[str]:
        """What would raise the score most: the open tests of the weakest group first."""
        weakest = sorted(GROUPS, key=lambda g: self.groups[g])
        order = {g: i for i, g in enumerate(weakest)}
        open_tests = sorted((t for t in self.tests if t.close), key=lambda t: (order[t.group], t.points, t.id))
        return [f"{t.id} {t.title}: {t.close}" for t in open_tests[:k]]

    def to_dict(self) -> dict:
        return {"case": self.case, "score": self.score, "groups": self.groups, "total": self.total,
                "max_total": 4 * 7.0, "minimum": self.minimum, "passes": self.passes, "meaning": self.meaning,
                "computed_at": self.computed_at, "champion_version": self.champion_version,
                "next_steps": self.next_steps(),
                "tests": [t.to_dict() for t in self.tests]}

    def print(self, console) -> None:
        from rich.table import Table

        from ..formats import markup_escape

        mark = {"automated": "[green]automated[/green]", "manual": "[yellow]manual[/yellow]",
                "missing": "[red]missing[/red]"}
        table = Table(title=markup_escape(f"ML Test Score of '{self.case}'"), title_justify="left", show_lines=False)
        for col in ("test", "status", "evidence / to close"):
            table.add_column(col, overflow="fold")
        for t in self.tests:
            note = markup_escape(t.evidence) + (f"\n[dim]to close: {markup_escape(t.close)}[/dim]" if t.close else "")
            table.add_row(f"{t.id} {markup_escape(t.title)}", mark[t.status], note)
        console.print(table)
        groups = ", ".join(f"{g} {v:g}" for g, v in self.groups.items())
        verdict = "passes" if self.passes else "is below"
        console.print(f"score [bold]{self.score:g}[/bold] of 7 (the minimum over {groups}); it {verdict} "
                      f"releases.min_readiness {self.minimum:g}: {self.meaning}")
        for step in self.next_steps():
            console.print(f"  next: {markup_escape(step)}")


# --------------------------------------------------------------------------- evidence
class Evidence:
    """What the case has produced, read once and lazily (nothing here writes or creates a store)."""

    def __init__(self, case: Case, log: str | None = None):
        self.case = case
        self.spec = case.spec
        self.log_url = log

    @cached_property
    def results(self) -> dict:
        from .. import results

        return results.load_all(self.case)

    def has(self, stage: str) -> bool:
        return stage in self.results

    @cached_property
    def store(self) -> bool:
        """Whether there is a registry to read (an embedded store is never created just to look)."""
        if self.case.uses_embedded_store:
            return (self.case.root / "mlflow.db").is_file()
        return True

    @cached_property
    def aliases(self) -> dict[str, int]:
        from .. import tracking

        return tracking.aliases(self.case) if self.store else {}

    @cached_property
    def versions(self) -> list[dict]:
        from .. import tracking

        return tracking.versions(self.case) if self.store else []

    @cached_property
    def champion(self) -> dict | None:
        v = self.aliases.get("champion")
        return next((x for x in self.versions if x["version"] == v), None)

    @cached_property
    def champion_fix(self) -> str:
        """What would register a champion: a first run, or, after a run whose decision moved none (NO_GO,
        INCONCLUSIVE), acting on its reasons; "run `mlcase run`" alone read as if the run never happened
        (mi::nlsyV, NO_GO: four tests said so)."""
        verdict = (self.results.get("decision") or {}).get("verdict")
        if not verdict or self.champion:
            return "run `mlcase run` on the case"
        return (f"the last run's decision, {verdict}, registers no champion: act on its reasons and run again "
                "(a GO or USE_BASELINE registers one), or `mlcase promote --version N` to serve one anyway")

    @cached_property
    def champion_run_tags(self) -> dict:
        from .. import tracking

        if not self.champion or not self.champion.get("run_id"):
            return {}
        try:
            return tracking.run_data(self.case, self.champion["run_id"])["tags"]
        except Exception:  # noqa: BLE001 - a deleted run: no tags to read
            return {}

    @cached_property
    def history(self) -> list[dict]:
        from .. import tracking

        return tracking.release_history(self.case) if self.store else []

    @cached_property
    def previous_champion(self) -> int | None:
        from .moves import rollback_target

        if not self.champion:
            return None
        return rollback_target(self.case, self.champion["version"], self.history, self.versions)

    @cached_property
    def log(self) -> dict:
        """The prediction log's rows, labels and whether it records provenance (for replay)."""
        from ..serve.predlog import open_existing

        try:
            backend, _ = open_existing(self.case, self.log_url)
        except Exception:  # noqa: BLE001 - no log yet
            return {}
        try:
            cols = backend.read_frame("SELECT * FROM predictions LIMIT 0").columns
            n = int(backend.read_frame("SELECT count(*) AS n FROM predictions")["n"].iloc[0])
            labels = int(backend.read_frame("SELECT count(*) AS n FROM labels")["n"].iloc[0])
            provenance = 0
            if "model_sha256" in cols:
                provenance = int(backend.read_frame(
                    "SELECT count(*) AS n FROM predictions WHERE model_sha256 IS NOT NULL")["n"].iloc[0])
            return {"rows": n, "labels": labels, "provenance_rows": provenance}
        except Exception:  # noqa: BLE001 - an unreadable log counts as none
            return {}
        finally:
            backend.close()

    @cached_property
    def git(self) -> dict:
        """Whether case.yaml is under version control, and clean."""
        path = self.case.path or (self.case.root / "case.yaml")

        def git(*args):
            try:
                return subprocess.run(["git", "-C", str(Path(path).parent), *args], capture_output=True, text=True,
                                      timeout=5)
            except (OSError, subprocess.SubprocessError):
                return None

        tracked = git("ls-files", "--error-unmatch", Path(path).name)
        if tracked is None or tracked.returncode != 0:
            return {"tracked": False}
        status = git("status", "--porcelain", "--", Path(path).name)
        return {"tracked": True, "clean": status is not None and not status.stdout.strip()}

    @property
    def api_key(self) -> bool:
        return bool(self.spec.serving.api_key_file or os.environ.get("MLCASE_API_KEY"))

    def spec_set(self, section: str, name: str) -> bool:
        """Whether the case.yaml gives ``section.name`` itself (not its default)."""
        return name in getattr(self.spec, section).model_fields_set


Test = Callable[[Evidence], tuple[str, str, str | None]]
REGISTRY: list[tuple[str, str, str, Test]] = []


def rubric(tid: str, group: str, title: str):
    """Register one test of the rubric (a function of the evidence -> status, evidence, what would close it)."""
    def deco(fn: Test) -> Test:
        REGISTRY.append((tid, group, title, fn))
        return fn
    return deco


def readiness(case: Case, log: str | None = None, minimum: float | None = None) -> Readiness:
    """The ML Test Score of ``case`` from its evidence (see the module docstring).

    Parameters
    ----------
    case : Case
    log : str, optional
        The prediction log (default ``serving.log`` or ``<case>/predictions.db``).
    minimum : float, optional
        The score to pass, from 0 to 7 (the score is the lowest group's points, 7 tests a group); default
        ``releases.min_readiness``. Anything else is a :class:`~mlcase.errors.SpecError` (``minimum='high'``
        ended in a bare ValueError; ``minimum=-1`` passed every case and ``minimum=8`` none).
    """
    case = as_case(case)  # a case.yaml path too, as mlcase.run takes it
    if minimum is not None:
        minimum = _minimum(minimum)
    from . import mltest_rubric  # noqa: F401 - registers the 28 tests
    from .rollout import given_log

    given_log(case, log, "readiness")
    ev = Evidence(case, log)
    tests = []
    for tid, group, title, fn in REGISTRY:
        status, evidence, close = fn(ev)
        tests.append(TestResult(tid, group, title, status, evidence, None if status == "automated" else close))
    return Readiness(case.name, tests, case.spec.releases.min_readiness if minimum is None else minimum,
                     champion_version=ev.aliases.get("champion"))


def _minimum(minimum, name: str = "minimum") -> float:
    """``minimum`` as a float when it is a number from 0 to :data:`MAX_SCORE`, else a :class:`SpecError`."""
    import math
    import numbers

    from ..arguments import said
    from ..errors import SpecError

    fix = (f"give a score from 0 to {MAX_SCORE:g} such as 2 (the same scale as releases.min_readiness), or leave "
           "it out for releases.min_readiness")
    if isinstance(minimum, bool) or not isinstance(minimum, numbers.Real):
        raise SpecError(f"{said(name, minimum)} is not a readiness score (got {type(minimum).__name__})", fix,
                        argument=name)
    value = float(minimum)
    if not math.isfinite(value) or not 0 <= value <= MAX_SCORE:
        raise SpecError(f"{said(name, minimum)} is outside the readiness score's range, 0 to {MAX_SCORE:g} "
                        f"(the lowest group's points, {MAX_SCORE:g} tests a group)", fix, argument=name)
    return value


__all__ = ["GROUPS", "Readiness", "TestResult", "readiness"]
