"""Every command is also a Python API: what a data scientist meets calling mlcase from one long notebook process.

Real tables: datasets::mtcars (the serving table, run twice as two cases in one process), fpp2::h02 (a forecast
served from its data and monitored against its real actuals).
Found by probing the API as a notebook uses it:

- after ``mlcase.run(case)`` MLflow's process-wide tracking URI, registry URI and active experiment (and the
  ``MLFLOW_EXPERIMENT_ID`` MLflow writes into ``os.environ``) pointed at the case's ``mlflow.db``: the notebook's
  own ``mlflow.start_run()`` logged into the last case's store instead of the user's;
- SHAP, imported lazily inside the first run, keeps the ImportError of its missing GPU extension with its
  traceback: every frame of that run (its Dataset, its bundles, a Dask run's client and cluster) stayed alive;
- ``repr(result)`` and ``repr(case)`` printed the whole case spec (6,141 characters on one line for credit_data);
- ``mlcase.run(DataFrame)`` ended in pandas' "truth value of a DataFrame is ambiguous", ``run(case,
  scheduler=5)`` in distributed's bare TypeError, ``score_file(..., chunk_rows="x")`` in "'<' not supported".
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

import mlcase
from mlcase.errors import MlcaseError

from .tables import BY_ID
from .test_cli_probe_rank_forecast import h02  # noqa: F401 - fpp2::h02 with one logged forecast, a fixture


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.endswith(".lock"))


def _fluent() -> tuple:
    """MLflow's process-wide fluent state, as a notebook's next ``mlflow.start_run()`` uses it."""
    import mlflow
    from mlflow.tracking import fluent

    return (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), fluent._active_experiment_id,
            os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("MLFLOW_EXPERIMENT_ID"))


def _alive() -> dict[str, set]:
    """The ids of the runs' big objects alive now (after a collection): datasets and model bundles."""
    import gc

    from mlcase.bundle import ModelBundle
    from mlcase.data import Dataset

    gc.collect()
    objects = gc.get_objects()
    return {c.__name__: {id(o) for o in objects if isinstance(o, c)} for c in (Dataset, ModelBundle)}


@pytest.fixture(scope="module")
def notebook(tmp_path_factory, empty_store):
    """Two mtcars cases run one after the other from a notebook that uses MLflow on its own store first."""
    import logging

    import mlflow

    root = tmp_path_factory.mktemp("notebook")
    mine = f"sqlite:///{root / 'mine.db'}"
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")}
    mlflow.set_tracking_uri(mine)
    mlflow.set_experiment("my-notebook")
    before = _fluent()
    kept_before = _alive()
    cases, results, counts = [], [], []
    try:
        for name in ("cars-a", "cars-b"):
            folder = BY_ID["mtcars-tiny"].write(root / name, name=name)
            shutil.copy(empty_store, folder / "mlflow.db")
            cases.append(folder)
            results.append(mlcase.run(folder, budget="6s", quiet=True, force=True))
            counts.append({"fluent": _fluent(), "threads": threading.active_count(),
                           "handlers": sum(len(lg.handlers) for lg in logging.Logger.manager.loggerDict.values()
                                           if isinstance(lg, logging.Logger))})
        with mlflow.start_run(run_name="my own analysis") as mine_run:
            mlflow.log_metric("my_metric", 1.0)
        kept = {k: v - kept_before[k] for k, v in _alive().items()}
        yield {"before": before, "after": counts, "results": results, "cases": cases, "mine": mine,
               "mine_run": mine_run, "kept": kept}
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        from mlflow.tracking import fluent

        fluent._active_experiment_id = None
        for k, v in saved_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_run_gives_the_notebook_its_mlflow_tracking_back(notebook):
    """Both runs decided and registered into their own case's store; after each, MLflow's URI, registry and
    experiment are the notebook's again, and the notebook's own run lands in its own store and experiment."""
    from mlflow import MlflowClient

    for result, folder in zip(notebook["results"], notebook["cases"], strict=True):
        assert result.decision in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
        assert result.versions, result.summary()  # registered in the case's store
        store = f"sqlite:///{folder / 'mlflow.db'}"
        models = MlflowClient(tracking_uri=store, registry_uri=store).search_registered_models()
        assert [m.name for m in models] == [folder.name]
    for after in notebook["after"]:
        assert after["fluent"] == notebook["before"]
    assert notebook["before"][0] == notebook["mine"]
    mine = MlflowClient(tracking_uri=notebook["mine"], registry_uri=notebook["mine"])
    run = mine.get_run(notebook["mine_run"].info.run_id)  # in the notebook's store, not in cars-b/mlflow.db
    assert mine.get_experiment(run.info.experiment_id).name == "my-notebook"
    assert run.data.metrics == {"my_metric": 1.0}
    # SHAP, first imported inside the first run, kept its missing GPU extension's ImportError with a traceback
    # holding that run's frames: its dataset and 5 bundles (mtcars) stayed in memory for the life of the process
    assert notebook["kept"] == {"Dataset": set(), "ModelBundle": set()}
    # nothing piles up run after run: the second case left as many threads and log handlers as the first
    first, second = notebook["after"]
    assert (second["threads"], second["handlers"]) == (first["threads"], first["handlers"])


def test_results_and_cases_have_a_short_readable_repr(notebook):
    result = notebook["results"][0]
    text = repr(result)
    assert len(text) < 300, text
    assert text.startswith("RunResult(case='cars-a', decision=") and repr(result.decision) in text
    assert repr(result.case) == f"Case(name='cars-a', task='regression', root={str(notebook['cases'][0])!r})"
    json.dumps(result.summary())  # the --json of `mlcase run`, JSON as it is
    assert result.summary()["decision"] == result.decision


def test_wrong_arguments_are_one_line_mlcase_errors_naming_them(notebook, tmp_path):
    """A DataFrame where a case goes, a scheduler that is not text, a chunk size that is not a number: one
    :class:`MlcaseError` line naming the argument, and the case folder as it was."""
    folder = notebook["cases"][0]
    frame = pd.read_csv(folder / "data.csv")
    before = _files(folder)
    with pytest.raises(MlcaseError, match=r"^case: got a DataFrame, not a path; pass a Case"):
        mlcase.run(frame, quiet=True)
    with pytest.raises(MlcaseError, match=r"^case: got a DataFrame") as exc:
        mlcase.load_case(frame)
    assert isinstance(exc.value, ValueError)
    with pytest.raises(MlcaseError, match=r"^--scheduler: expected the address of a Dask scheduler, got a int; "
                                          r"pass it as text, e\.g\. scheduler='tcp://"):
        mlcase.run(folder, budget="6s", quiet=True, scheduler=5)
    from mlcase.score import score_file

    frame.drop(columns=["mpg"]).to_csv(tmp_path / "cars.csv", index=False)
    with pytest.raises(MlcaseError, match=r"^chunk_rows='x' is not a number of rows \(got str\); pass e\.g\. "
                                          r"chunk_rows=50000"):
        score_file(folder, tmp_path / "cars.csv", tmp_path / "scored.csv", chunk_rows="x", progress=False)
    assert _files(folder) == before
    assert not (tmp_path / "scored.csv").exists()
    # a whole float is a number of rows; the answers are the same as with the int
    out = score_file(folder, tmp_path / "cars.csv", tmp_path / "scored.csv", chunk_rows=10.0, progress=False)
    assert (out.rows, out.scored) == (32, 32)


def test_forecast_monitoring_from_python_is_the_commands(h02, tmp_path):  # noqa: F811 - the fixture
    """fpp2::h02 with one logged forecast of 12 months: ``mlcase.monitor.monitor`` (the function behind `mlcase
    monitor`) answered a forecast case with "the model's monitoring reference has version None ... re-run `mlcase
    run`" and, given the actuals, "lacks the column(s) request_id, label": wrong advice both. It now names the
    function the command calls; that function takes the case's path and a DataFrame of actuals (Arrow-backed, as
    pandas 3 reads them), and its numbers are the command's ``--json`` ones."""
    import contextlib
    import io

    from mlcase.cli import main
    from mlcase.forecast.monitor import monitor_forecasts
    from mlcase.monitor import monitor

    folder, year = h02
    with pytest.raises(MlcaseError, match=r"^case 'h02' is a forecast case: .*; call mlcase\.forecast\.monitor\."
                                          r"monitor_forecasts\(case, log=\.\.\., labels=ACTUALS\)"):
        monitor(folder, labels=year)
    year.to_csv(tmp_path / "actuals.csv", index=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["monitor", str(folder), "--labels", str(tmp_path / "actuals.csv"), "--json", "--no-notify"]) == 0
    command = json.loads(out.getvalue())
    api = monitor_forecasts(str(folder), labels=year.convert_dtypes(dtype_backend="pyarrow"))
    assert (api["requests"], api["points"]) == (command["requests"], command["points"]) == (1, 12)
    assert api["by_step"] == command["by_step"] and len(api["by_step"]) == 12
    assert api["model_mase"] == pytest.approx(command["model_mase"], rel=1e-12)
    assert [a["kind"] for a in api["alerts"]] == [a["kind"] for a in command["alerts"]]
    with pytest.raises(MlcaseError, match=r"^labels: got a int, not a path; pass the actuals as a CSV/Parquet path or "
                                          r"a DataFrame"):
        monitor_forecasts(folder, labels=12)


def test_release_and_analysis_functions_take_the_case_path_as_run_does(notebook):
    """``mlcase.run``, ``monitor``, ``score_file`` and ``build_report`` take a case's path; the functions behind
    `mlcase releases`, `readiness`, `rollout status` and `analyze` ended in "'str' object has no attribute 'spec'"
    (or 'name', 'work_dir'). They now load it, and answer as for the loaded case."""
    from mlcase import tracking
    from mlcase.analysis.core import analyze_case
    from mlcase.releases import history, readiness, rollout_status
    from mlcase.releases.rollout import NoCanary

    folder = notebook["cases"][0]
    case = mlcase.load_case(folder)
    assert history(str(folder))["aliases"] == tracking.aliases(case) == history(case)["aliases"]
    assert readiness(str(folder)).score == readiness(case).score
    with pytest.raises(NoCanary, match="holds no canary|no prediction log"):
        rollout_status(str(folder))
    with pytest.raises(MlcaseError, match=r"^budget: expected a positive duration, got -1"):
        analyze_case(str(folder), budget=-1)


def test_a_move_with_a_wrong_why_or_force_is_refused_before_the_champion_moves(notebook, tmp_path):
    """``promote(case, 1, why=5)`` moved ``champion`` to version 1, then failed on ``reason[:4000]`` before the
    move was recorded: a champion the release history does not explain. ``force="no"`` (true to Python) forced
    a promote past its gates, and ``mlcase.run(case, force="yes")`` past error-level checks. Each is now refused
    before anything moves; so is ``export_queue(reasons="x")`` (a TypeError after reading the log)."""
    from mlcase import tracking
    from mlcase.releases import history, promote, rollback
    from mlcase.review import export_queue

    folder = notebook["cases"][1]
    case = mlcase.load_case(folder)
    aliases, events = tracking.aliases(case), history(case)["events"]
    version = notebook["results"][1].versions["baseline_version"]
    assert aliases.get("champion") != version
    with pytest.raises(MlcaseError, match=r"^why: expected text \(the reason recorded with the move\), got a int"):
        promote(folder, version, why=5)
    with pytest.raises(MlcaseError, match=r"^force='no' is not True or False \(got str\); pass force=True"):
        promote(folder, version, force="no")
    with pytest.raises(MlcaseError, match=r"^why: expected text .*got a list"):
        rollback(folder, why=["canary"])
    with pytest.raises(MlcaseError, match=r"^force='yes' is not True or False"):
        mlcase.run(folder, force="yes")
    with pytest.raises(MlcaseError, match=r"^console: expected a rich Console, got a str"):
        mlcase.run(folder, console="stderr")
    with pytest.raises(MlcaseError, match=r"^reasons='x' is not a number of reasons per row \(got str\)"):
        export_queue(folder, tmp_path / "queue.csv", reasons="x")
    with pytest.raises(MlcaseError, match=r"^reasons=-1 is not a number of reasons per row: the smallest is 0"):
        export_queue(folder, tmp_path / "queue.csv", reasons=-1)
    assert tracking.aliases(case) == aliases and history(case)["events"] == events
    assert not (tmp_path / "queue.csv").exists()


def test_monitor_reads_an_arrow_backed_frame_as_its_csv_and_results_print_short(notebook, tmp_path):
    """``monitor(case, log=DataFrame)`` is documented: the mtcars records with a time-zone-aware ``ts`` and pandas
    3's Arrow-backed dtypes give the numbers the same records give from a CSV. ``repr(MonitorResult)`` printed
    every window's drift tables (86,555 characters for 300 rows of MASS::Boston in daily windows) and
    ``repr(Readiness)`` all 28 tests with their evidence (6,499): each is one short line now."""
    from mlcase.monitor import monitor
    from mlcase.releases import readiness

    folder = notebook["cases"][0]
    frame = pd.read_csv(folder / "data.csv")
    frame["ts"] = pd.date_range("2026-03-01", periods=len(frame), freq="6h", tz="UTC")
    frame["request_id"] = [f"car-{i}" for i in range(len(frame))]
    frame.to_csv(tmp_path / "log.csv", index=False)
    from_file = monitor(folder, log=tmp_path / "log.csv", window="30d")
    typed = frame.convert_dtypes(dtype_backend="pyarrow").astype({"request_id": "string[pyarrow]"})
    from_frame = monitor(folder, log=typed, window="30d")
    a, b = from_file.to_dict(), from_frame.to_dict()
    assert a.pop("source") != b.pop("source")
    assert a == b
    assert a["n_rows"] == 32 and len(a["windows"]) == len(from_file.windows) >= 1
    text = repr(from_file)
    assert len(text) < 300, text
    assert text.startswith("MonitorResult(case='cars-a', ") and f"windows={len(from_file.windows)}" in text
    ready = readiness(folder)
    assert len(repr(ready)) < 300 and f"score={ready.score:g}" in repr(ready) and "tests=28" in repr(ready)
