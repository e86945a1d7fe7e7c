"""`mlcase monitor --engine dask` when the workers cannot open the compacted log's partitions: one line, not an
internal error. The log is test_compact's (the workers are in-process, told that the files are missing where they
run)."""

# ruff: noqa: F811  (the tests take test_monitor's `trained` fixture)
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from mlcase import monitor as M
from mlcase.errors import DataError
from mlcase.monitor.compact import compact

from .test_compact import _log
from .test_monitor import START, fresh_case, iso, trained  # noqa: F401


def test_workers_that_cannot_open_the_compacted_partitions_are_one_line(trained, tmp_path, monkeypatch):
    """A `dask worker` without the case folder's mount stopped monitoring with "internal error (IOException: IO
    Error: No files found that match the pattern ...)", exit 70."""
    from distributed import LocalCluster, get_worker

    from mlcase.engine import DaskEngine
    from mlcase.monitor import sources

    case = fresh_case(tmp_path, trained)
    db, _ = _log(tmp_path, trained)
    compact(case, log=db, before=iso(START + pd.Timedelta(days=4)))
    real = sources.type_partitions

    def missing_on_workers(sql, memory_limit):
        try:
            get_worker()
        except ValueError:
            return real(sql, memory_limit)
        path = sql.split("read_parquet([", 1)[1].split("'")[1]
        raise duckdb.IOException(f'IO Error: No files found that match the pattern "{path}"')

    monkeypatch.setattr(sources, "type_partitions", missing_on_workers)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        eng = DaskEngine(cluster.scheduler_address)
        try:
            with pytest.raises(DataError) as err:
                M.monitor(case, log=str(db), bundle=trained["bundle"], compact=False, engine=eng)
        finally:
            eng.close()
    text = str(err.value)
    assert text.startswith("the Dask workers cannot read the compacted log at ") and "\n" not in text
    assert "predictions.compacted" in text and "it is readable here" in text
    assert "every worker mounts at the same path" in err.value.fix


def test_typing_partitions_on_a_worker_warns_nothing(tmp_path):
    """Each worker's DuckDB printed "UserWarning: Arrow output on a DB-API result makes an extra copy of the rows"
    to `mlcase monitor --engine dask`'s stderr (DuckDB 2), once per date partition."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlcase.monitor.sources import type_partitions

    pq.write_table(pa.table({"x": [1.0, 2.0, None]}), tmp_path / "p.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tbl = type_partitions(f"SELECT x * 2 AS y FROM read_parquet('{tmp_path / 'p.parquet'}')", "256MB")
    assert tbl.column("y").to_pylist() == [2.0, 4.0, None]
