"""mlcase.engine: the local engine, a LocalCluster started and shut down cleanly, an unreachable scheduler."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from mlcase.cli import main
from mlcase.engine import EngineError, open_engine, resolve


def _square(x):
    return x * x


def test_the_local_engine_runs_tasks_in_this_process():
    with open_engine("local") as eng:
        assert eng.map(_square, [1, 2, 3]) == [1, 4, 9]
        fut = eng.submit(int, "x")
        with pytest.raises(ValueError):
            fut.result()
        assert not eng.parallel and eng.slots == 1


def test_a_local_cluster_starts_sized_as_asked_and_shuts_down_cleanly():
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    with open_engine("dask", workers=1) as eng:
        assert eng.info.started_cluster and eng.info.workers == 1 and eng.slots == 1
        assert eng.map(_square, [2, 3]) == [4, 9]
        assert eng.info.dashboard and eng.info.dashboard.startswith("http")
        started = {p.pid for p in me.children(recursive=True)
                   if "resource_tracker" not in " ".join(p.cmdline())} - before  # Python's own, shared helper
        assert started  # the worker's nanny and process
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in started if psutil.pid_exists(p)], timeout=20)
    assert not alive, f"worker processes left running: {[p.pid for p in alive]}"


def _worker_folder(dask_worker) -> str:
    return dask_worker.local_directory


def test_a_local_cluster_started_for_a_case_spills_inside_the_case_not_in_the_system_temporary_folder(tmp_path):
    """A LocalCluster's workers hold the case's rows and spill them to disk past their memory target. They spilled
    into the system's temporary folder (``dask-scratch-space``), where a killed run left them out of reach of the next
    command and of `mlcase forget`; for a case they now spill in its scratch area, gone when the engine closes."""
    from mlcase.case import case_from_spec
    from mlcase.engine import engine_for
    from mlcase.scratch import scratch_root

    case = case_from_spec({"name": "e", "decision": "d", "task": "binary", "engine": "dask",
                           "data": {"source": "x.csv", "target": "y"}}, tmp_path)
    with engine_for(case, workers=1) as eng:
        assert eng.map(_square, [3]) == [9]
        folders = list(eng.client.run(_worker_folder).values())
        assert len(folders) == 1 and Path(folders[0]).is_relative_to(scratch_root(case)), folders
        assert Path(folders[0]).is_dir()
    assert not scratch_root(case).exists() and not (tmp_path / ".mlcase").exists()   # the case as it was
    with engine_for(None, "dask", workers=1) as eng:   # no case: Dask's own folder, as before
        assert not Path(next(iter(eng.client.run(_worker_folder).values()))).is_relative_to(tmp_path)


def test_engine_settings_come_from_the_command_line_over_the_spec(tmp_path):
    from mlcase.case import case_from_spec

    case = case_from_spec({"name": "e", "decision": "d", "task": "binary", "engine": "dask",
                           "data": {"source": "x.csv", "target": "y"}}, tmp_path)
    assert resolve(case)["kind"] == "dask"
    assert resolve(case, engine="local")["kind"] == "local"
    assert resolve(None, scheduler="tcp://h:8786") == {"kind": "dask", "scheduler": "tcp://h:8786", "workers": None,
                                                       "memory_limit": None}
    with pytest.raises(EngineError, match="--engine 'spark' is not known"):
        resolve(case, engine="spark")


def test_an_unreachable_scheduler_is_one_line_naming_it_and_nothing_is_written(tmp_path, monkeypatch, capsys,
                                                                                  default_df):
    from tests.conftest import write_case

    write_case(tmp_path, "name: e\ndecision: d\ntask: binary\ndata: {source: data.csv, target: default}\n",
               default_df.head(200))
    before = sorted(p.name for p in tmp_path.iterdir())
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLCASE_SCHEDULER_TIMEOUT", "1")
    address = f"tcp://127.0.0.1:{port}"
    rc = main(["run", str(tmp_path), "--engine", "dask", "--scheduler", address, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and f"cannot reach the Dask scheduler at {address}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
