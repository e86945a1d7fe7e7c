"""The time box: one wall-clock budget for the whole bake-off, and the clock every fit checks.

The search may go on while the time left exceeds what the final steps will need (the
``reserve``: refitting the best model found so far and its ensemble members, measuring them,
writing the leaderboard), estimated from the fits already timed. Every trial carries a deadline:
boosting stops at it through a callback and forests grow in chunks that check the clock (see
:func:`mlcase.candidates.fit_with_deadline`). Nothing is fitted past ``budget * HARD_SHARE``;
the bake-off therefore ends within 10% of its budget, as long as the baselines themselves fit
in it: they always run.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass

from ..errors import SpecError
from ..formats import listing

HARD_SHARE = 1.1        # nothing is fitted past budget * HARD_SHARE
MIN_RESERVE_S = 0.3     # the final steps' fixed cost (leaderboard, latency measures)


def unsearched(families: dict) -> list[str]:
    """The candidate families the search never tried: the time box ran out before their defaults."""
    return [f for f, info in families.items() if not (info or {}).get("n_trials")]


def search_starved(phases: dict, budget: float, families: dict, interrupted: bool = False) -> str | None:
    """What to say when the time box ran out before some families were tried: the baselines always run, and the
    first candidate's defaults after them, so a slow baseline or first trial can leave the others untried.

    modeldata::grants_other (8,190 rows x 1,503 columns): the baselines took 22 s of a 20 s budget, 41 s in all.
    openintro::london_boroughs (36,273 rows, 32 boroughs from two coordinates): the baselines took 13.6 s of 20 s,
    logistic's defaults the rest, and no boosted family ran, with no word of why.
    """
    never = unsearched(families)
    if budget <= 0 or not never:
        return None
    if interrupted:
        return f"the search was interrupted before it tried {listing(never)}"
    took = float(phases.get("baselines_s") or 0.0)
    end = max(took, float(phases.get("search_end_s") or 0.0))
    ran = [f for f in families if f not in never]
    raise_ = f"raise --budget well past {end:.0f}s for a search"
    if took >= budget:
        what = f"only {listing(ran)} ran (the first candidate always does)" if ran else "no candidate ran"
        return f"the baselines alone took {took:.1f}s of the {budget:g}s budget, so {what}: {raise_}"
    return (f"{listing(never)} never ran: the baselines took {took:.1f}s of the {budget:g}s budget and "
            f"{listing(ran) or 'the first trials'} the rest: {raise_}")


class CtrlC:
    """Ctrl-C during the search: Python's ``KeyboardInterrupt`` as usual, and a flag the search checks
    before each trial (:meth:`check`).

    A ``KeyboardInterrupt`` that arrives while Python runs a finalizer (``__del__``, a weakref
    callback: a garbage collection can start at any allocation) is printed as "Exception ignored"
    and lost (seen once in CI, in the Ctrl-C test). The flag makes the
    search stop at its next trial all the same, as the user asked. Only Python's own SIGINT handler
    is wrapped, and only in the main thread; any other handler is left alone.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._prev = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._prev = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)
            self._prev = None

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed (again, if the first one was lost)."""
        if self.pressed:
            raise KeyboardInterrupt


def parse_budget(budget) -> float:
    """Seconds from a number or a duration (``"90s"``, ``"2m"``); a bad value is a :class:`SpecError`."""
    from ..spec import parse_duration

    try:
        seconds = parse_duration(budget)
    except ValueError as exc:   # the spec's own message may carry its fix already: said once
        said, _, fix = str(exc).partition("; ")
        raise SpecError(f"budget: {said}", fix or "give a duration such as 90s, 2m or 1h") from None
    if seconds <= 0:
        raise SpecError(f"budget: expected a positive duration, got {budget!r}", "give a duration such as 90s or 2m")
    return seconds


@dataclass
class TimeBox:
    """The bake-off's clock (``time.monotonic`` seconds).

    Examples
    --------
    >>> box = TimeBox(t0=0.0, budget=60.0)
    >>> box.end, box.hard_end
    (60.0, 66.0)
    """

    t0: float
    budget: float
    reserve: float = MIN_RESERVE_S

    @property
    def end(self) -> float:
        return self.t0 + self.budget

    @property
    def hard_end(self) -> float:
        return self.t0 + HARD_SHARE * self.budget

    @property
    def search_end(self) -> float:
        """When the search must stop so that the final steps fit in the budget."""
        return self.end - self.reserve

    def left(self, now: float | None = None) -> float:
        """Seconds of search time left."""
        return self.search_end - (time.monotonic() if now is None else now)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


class PeakMemory:
    """Peak resident memory above the starting point while the block runs (sampled every 5 ms)."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.mb = max(0.0, (self.peak - self.start) / 2**20)
        return False


class Progress:
    """Rich progress: family, trial, best so far, time left. Silent when ``console`` is None."""

    def __init__(self, console, budget: float, t0: float):
        self._p = None
        if console is None:
            return
        from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
        from rich.text import Text

        end = t0 + budget

        class Left(ProgressColumn):
            def render(self, task):
                return Text(f"{max(0.0, end - time.monotonic()):5.1f}s left", style="cyan")

        self._p = Progress(TextColumn("[bold]bake-off[/]"), BarColumn(bar_width=24), Left(),
                           TextColumn("{task.description}"), console=console, transient=False,
                           refresh_per_second=4)
        self._t0, self._budget = t0, budget
        self._task = self._p.add_task("starting", total=budget)
        self._p.start()

    def update(self, text: str) -> None:
        if self._p is not None:
            from ..formats import markup_escape

            self._p.update(self._task, description=markup_escape(text),
                           completed=min(self._budget, time.monotonic() - self._t0))

    def stop(self) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=self._budget)
            self._p.stop()
            self._p = None
