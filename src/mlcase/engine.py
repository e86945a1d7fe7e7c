"""Where the heavy work runs: in this process (``local``) or on a Dask cluster (``dask``).

One object, :class:`Engine`, is what the bake-off (trial folds), batch scoring (partitions) and
monitoring (windows) hand their work to. The local engine runs each task at once in this
process; the Dask engine submits it to a ``distributed`` cluster: the one at ``scheduler``
(``tcp://host:8786``), or a :class:`distributed.LocalCluster` it starts, sized to this machine's
cores (one single-threaded worker process per core, the machine's memory shared between them),
and closes again when the block ends. mlcase writes no scheduler of its own: placement, data
transfer, worker restarts and the dashboard are Dask's.

An address that does not answer is a one-line :class:`EngineError` naming it, raised before
anything is written. A worker that dies while it runs a task makes that task fail with
:class:`distributed.KilledWorker` on a cluster this module started (it sets the scheduler's
``allowed-failures`` to 0 there, so a task that killed its worker is not run again on the next
one); its caller decides what is lost (the bake-off: that trial only).

Examples
--------
>>> with open_engine("local") as eng:
...     eng.submit(sum, [1, 2, 3]).result()
6
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from .errors import MlcaseError

KINDS = ("local", "dask")
CONNECT_TIMEOUT_S = 10.0       # how long an unreachable scheduler is waited for (MLCASE_SCHEDULER_TIMEOUT)
MEMORY_SHARE = 0.5             # default share of the machine's memory a data set may take before it counts as large


class EngineError(MlcaseError, ConnectionError):
    """The engine cannot start: an unknown kind, or a scheduler that does not answer."""


@dataclass
class EngineInfo:
    """What the engine is, for the progress display, results and the benchmark."""

    kind: str
    address: str | None = None
    workers: int = 1
    threads: int = 1
    memory_limit_bytes: int | None = None
    dashboard: str | None = None
    started_cluster: bool = False

    def to_dict(self) -> dict:
        from .errors import redact_url

        return {"kind": self.kind, "address": redact_url(self.address) if self.address else None,
                "workers": self.workers, "threads": self.threads, "memory_limit_bytes": self.memory_limit_bytes,
                "dashboard": self.dashboard, "started_cluster": self.started_cluster}


class Engine:
    """The local engine: every task runs at once, in this process (also the interface of :class:`DaskEngine`)."""

    kind = "local"

    def __init__(self):
        self.info = EngineInfo("local")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        """Release what the engine started (nothing for the local engine)."""

    # ------------------------------------------------------------------ work
    @property
    def slots(self) -> int:
        """Tasks that can run at the same time."""
        return 1

    @property
    def parallel(self) -> bool:
        return False

    def scatter(self, obj: Any) -> Any:
        """A handle to ``obj`` that tasks take as an argument (the local engine: ``obj`` itself)."""
        return obj

    def submit(self, fn, *args, key: str | None = None, **kwargs) -> cf.Future:
        """Run ``fn(*args, **kwargs)``; a finished future (the local engine runs it now)."""
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(exc, KeyboardInterrupt):
                raise
            fut.set_exception(exc)
        return fut

    def wait_any(self, futures: list, timeout: float | None = None) -> list:
        """The futures of ``futures`` that are done (waits until at least one is, or ``timeout``)."""
        done = [f for f in futures if f.done()]
        if done or not futures:
            return done
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def map(self, fn, items: list, *args, **kwargs) -> list:
        """``[fn(item, *args, **kwargs) for item in items]``, run by the engine, in order."""
        futures = [self.submit(fn, item, *args, **kwargs) for item in items]
        return [f.result() for f in futures]

    def cancel(self, futures: list) -> None:
        """Cancel tasks not yet finished (their results are not wanted any more)."""

    def warm(self, modules: list[str]) -> None:
        """Import ``modules`` where the tasks will run, ahead of the first task (nothing to do locally)."""

    def busy(self) -> int:
        """Tasks running now."""
        return 0

    def describe(self) -> str:
        return "local engine (this process)"


class DaskEngine(Engine):
    """Tasks on a Dask cluster: the scheduler at ``address``, or a LocalCluster sized to this machine.

    Parameters
    ----------
    address : str, optional
        A running scheduler (``tcp://10.0.0.5:8786``). Without it a :class:`distributed.LocalCluster`
        is started (``workers`` processes of one thread each, default one per core) and closed by
        :meth:`close`.
    workers : int, optional
        Workers of the LocalCluster (ignored with ``address``).
    memory_limit : str or int, optional
        Memory of each LocalCluster worker (``"2GB"``); default the machine's memory shared
        between the workers.
    """

    kind = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None, memory_limit: str | int | None = None,
                 timeout_s: float | None = None, local_directory: str | None = None):
        import dask
        from distributed import Client

        self.cluster = None
        self.client = None
        self._address = address
        if address:
            timeout_s = timeout_s or float(os.environ.get("MLCASE_SCHEDULER_TIMEOUT") or CONNECT_TIMEOUT_S)
            try:
                self.client = Client(address, timeout=f"{timeout_s}s", set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise EngineError(f"cannot reach the Dask scheduler at {_redact(address)} ({first})",
                                  "start it (`dask scheduler`, then `dask worker ADDRESS` on each machine), check the "
                                  "address and port, or drop --scheduler to start a local cluster") from None
        else:
            from distributed import LocalCluster

            n = int(workers or os.cpu_count() or 1)
            if n < 1:
                raise EngineError(f"engine.workers: expected at least 1 worker, got {n}", "set engine.workers >= 1")
            # a task that killed its worker is not run again on the next one: its caller records the loss
            # and a single-threaded worker holds one task at a time (Dask's default saturation of 1.1 queues a second
            # there): a worker killed mid-trial failed the trial queued behind it too (lightgbm beside the random
            # forest it ran, in a fresh-clone CI run of test_a_worker_killed_mid_trial_loses_only_that_trial)
            with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                  "distributed.scheduler.worker-saturation": 1.0,
                                  "distributed.worker.daemon": False,
                                  "distributed.admin.system-monitor.gil.enabled": False}):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            memory_limit=memory_limit if memory_limit is not None else "auto",
                                            dashboard_address=":0", silence_logs=40,
                                            local_directory=local_directory)
                self.client = Client(self.cluster, set_as_default=False)
        self.info = self._info()

    def _info(self) -> EngineInfo:
        sched = self.client.scheduler_info(n_workers=-1) if _takes_n_workers(self.client) else \
            self.client.scheduler_info()
        ws = sched.get("workers", {})
        threads = sum(int(w.get("nthreads", 1)) for w in ws.values()) or 1
        mem = [w.get("memory_limit") for w in ws.values() if w.get("memory_limit")]
        return EngineInfo("dask", address=self.client.scheduler.address, workers=len(ws), threads=threads,
                          memory_limit_bytes=int(min(mem)) if mem else None, dashboard=self.dashboard_link(),
                          started_cluster=self.cluster is not None)

    def dashboard_link(self) -> str | None:
        """The dashboard's address, when the scheduler serves one (it needs ``bokeh``)."""
        try:
            import bokeh  # noqa: F401
        except ImportError:
            return None
        try:
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001 - no dashboard is not an error
            return None

    def close(self) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        with contextlib.suppress(Exception):
            if client is not None:
                client.close(timeout=10)
        with contextlib.suppress(Exception):
            if cluster is not None:
                cluster.close(timeout=20)

    @property
    def slots(self) -> int:
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a scheduler that went away: one slot, tasks will fail and say why
            return max(1, self.info.threads)

    @property
    def parallel(self) -> bool:
        return True

    def scatter(self, obj: Any) -> Any:
        return self.client.scatter(obj, broadcast=True, hash=False)

    def submit(self, fn, *args, key: str | None = None, **kwargs):
        opts = {"pure": False}
        if key:
            opts["key"] = f"{key}-{time.monotonic_ns()}"
        return self.client.submit(fn, *args, **opts, **kwargs)

    def wait_any(self, futures: list, timeout: float | None = None) -> list:
        from distributed import wait

        done = [f for f in futures if f.done()]
        if done or not futures:
            return done
        try:
            with self.client.as_current():
                res = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        except cf.CancelledError:  # a cancelled future is done: its caller reads why from its result
            return [f for f in futures if f.done()]
        return list(res.done)

    def map(self, fn, items: list, *args, **kwargs) -> list:
        futures = [self.client.submit(fn, item, *args, pure=False, **kwargs) for item in items]
        try:
            return self.client.gather(futures)
        finally:
            self.client.cancel(futures)

    def cancel(self, futures: list) -> None:
        if futures:
            with contextlib.suppress(Exception):
                self.client.cancel(futures)

    def warm(self, modules: list[str]) -> None:
        with contextlib.suppress(Exception):  # one task per worker, not waited for
            self._warming = [self.client.submit(_import_all, list(modules), workers=[w], allow_other_workers=False,
                                                pure=False) for w in self.client.nthreads()]

    def busy(self) -> int:
        try:
            return sum(len(v) for v in self.client.processing().values())
        except Exception:  # noqa: BLE001
            return 0

    def describe(self) -> str:
        i = self.info
        where = "a local cluster" if i.started_cluster else f"the scheduler at {_redact(i.address or '')}"
        return f"Dask engine: {i.workers} worker(s), {i.threads} thread(s) on {where}"


def _import_all(modules: list[str]) -> None:
    import importlib

    for m in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(m)


def _takes_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def _redact(address: str) -> str:
    from .errors import redact_url

    return redact_url(address)


LOST_INPUT = ("lost dependencies", "already forgotten")


def is_lost_input(exc: BaseException) -> bool:
    """True when the scheduler cancelled a task because data it needed (scattered, so not recomputable)
    was lost with a worker that died: the task did not fail, and it can run again on the data sent again.

    Dask says so in one of two ways: a task submitted after the data was lost is cancelled for "lost
    dependencies"; one that was waiting for it is forgotten with it ("already forgotten").
    """
    return type(exc).__name__ == "FutureCancelledError" and str(getattr(exc, "reason", "")) in LOST_INPUT


def is_killed_worker(exc: BaseException) -> bool:
    """True when ``exc`` says the worker running the task died (not that the task itself failed)."""
    try:
        from distributed import KilledWorker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return False
    from concurrent.futures import CancelledError

    return isinstance(exc, (KilledWorker, CancelledError)) or type(exc).__name__ in (
        "KilledWorker", "FutureCancelledError", "CommClosedError")


# --------------------------------------------------------------------------- choosing one
def resolve(case=None, engine: str | None = None, scheduler: str | None = None,
            workers: int | None = None) -> dict:
    """The engine settings in force: the command line's over the spec's ``engine:`` section.

    Returns ``{"kind", "scheduler", "workers", "memory_limit"}``; a ``--scheduler`` alone implies Dask.
    """
    spec = getattr(getattr(case, "spec", None), "engine", None)
    if scheduler is not None and not isinstance(scheduler, str):  # distributed's bare TypeError, deep in the run
        raise EngineError(f"--scheduler: expected the address of a Dask scheduler, got a {type(scheduler).__name__}",
                          "pass it as text, e.g. scheduler='tcp://10.0.0.5:8786', or leave it out")
    kind = engine or ("dask" if scheduler else None) or (spec.kind if spec is not None else None) or "local"
    if kind not in KINDS:
        raise EngineError(f"--engine {kind!r} is not known", "use --engine local or --engine dask")
    address = scheduler or (spec.scheduler if spec is not None else None)
    if kind == "local" and scheduler:
        raise EngineError(f"--scheduler {_redact(scheduler)} needs --engine dask", "add --engine dask")
    return {"kind": kind, "scheduler": address if kind == "dask" else None,
            "workers": workers or (spec.workers if spec is not None else None),
            "memory_limit": spec.memory_limit if spec is not None else None}


@contextlib.contextmanager
def open_engine(kind: str = "local", scheduler: str | None = None, workers: int | None = None,
                memory_limit: str | int | None = None, console=None, local_directory: str | None = None):
    """An :class:`Engine` for the block: connected (or its LocalCluster started) on entry, closed on exit.

    With a ``console``, the Dask engine says where it runs and prints its dashboard link. ``local_directory``
    is where a LocalCluster's workers spill (default Dask's, in the system's temporary folder).
    """
    if kind not in KINDS:
        raise EngineError(f"engine {kind!r} is not known", "use 'local' or 'dask'")
    eng: Engine = Engine() if kind == "local" else DaskEngine(scheduler, workers, memory_limit,
                                                              local_directory=local_directory)
    try:
        if console is not None and eng.parallel:
            console.print(eng.describe(), markup=False)  # a scheduler's address is text
            if eng.info.dashboard:
                console.print(f"Dask dashboard: {eng.info.dashboard}", markup=False)
        yield eng
    finally:
        eng.close()


@contextlib.contextmanager
def engine_for(case=None, engine: str | None = None, scheduler: str | None = None, workers: int | None = None,
               console=None):
    """:func:`open_engine` with the settings :func:`resolve` reads from the command line and the spec.

    A LocalCluster started for a case spills in the case's scratch area (:mod:`mlcase.scratch`): its workers hold
    the case's rows, and a killed run's spill is then deleted by the next command and by ``mlcase forget``,
    where one in the system's temporary folder stayed out of their reach.
    """
    s = resolve(case, engine, scheduler, workers)
    with contextlib.ExitStack() as stack:
        local = None
        if case is not None and s["kind"] == "dask" and not s["scheduler"]:
            from .scratch import scratch

            local = str(stack.enter_context(scratch(case, "dask-")))
        yield stack.enter_context(open_engine(s["kind"], s["scheduler"], s["workers"], s["memory_limit"],
                                              console=console, local_directory=local))


def memory_bytes() -> int:
    """This machine's physical memory."""
    import psutil

    return int(psutil.virtual_memory().total)


def larger_than_memory(nbytes: int, share: float = MEMORY_SHARE, total: int | None = None) -> bool:
    """True when ``nbytes`` of data take more than ``share`` of the memory (``total``, default this machine's)."""
    return nbytes > share * (total if total is not None else memory_bytes())


__all__ = ["Engine", "DaskEngine", "EngineError", "EngineInfo", "open_engine", "engine_for", "resolve",
           "is_killed_worker", "larger_than_memory", "memory_bytes", "KINDS"]
