"""A time column missing for part of the rows: vcdExtra::Donner (90 members of the Donner party); a forecast
row without a time (HistData::Snow.dates, at the end).

Its `death` is the date of death, known only for those who died: the outcome itself. The draft took it
as the time to split by (its 42 dates pass the split on their own), and the run refused the split with
a message pointing at random splits; following it, with `death` kept as data.time, the label-maturity
check read the survivors' missing times as ages and stopped with an internal error (OverflowError).
Now the draft keeps a date column missing in some rows out of data.time (a row without a time has no
side of a time split), so `death` is a feature and the leak check names it; a data.time with missing
values set by hand is read without them.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml

from mlcase import results
from mlcase.case import load_case
from mlcase.cli import main

from .tables import drafted

pytestmark = pytest.mark.slow


def test_a_date_missing_for_some_rows_is_not_the_time_and_its_leak_is_named(tmp_path, empty_store, capsys):
    folder = tmp_path / "donner"
    spec = drafted(folder, "vcdExtra", "Donner", "survived", store=empty_store)
    assert spec["data"]["time"] is None and spec["split"]["method"] == "stratified"
    assert "'death' is missing in 48 of 90 rows" in (folder / "case.yaml").read_text()
    capsys.readouterr()
    assert main(["run", str(folder), "--budget", "6s", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "target_leakage [death]" in err and "one-feature AUC 1.000" in err


def test_a_time_column_with_missing_values_set_by_hand_is_checked_without_them(tmp_path, empty_store):
    folder = tmp_path / "donner-time"
    # the first draft's choice, with the random split its refusal suggested
    drafted(folder, "vcdExtra", "Donner", "survived", store=empty_store, data={"time": "death"},
            split={"method": "stratified"})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--budget", "6s", "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    assert json.loads(out.getvalue())["decision"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
    checks = results.load(load_case(folder), "checks")
    assert "label_maturity" not in {c["id"] for c in checks["checks"] if c["severity"] == "error"}


def test_a_forecast_row_without_a_time_is_a_one_line_error_and_its_fix_runs(tmp_path, empty_store, capsys):
    """HistData::Snow.dates (John Snow's 1854 cholera outbreak, 43 days) ends with a row of deaths of no known
    day; the forecast run stopped with an internal error (pandas: "Neither `start` nor `end` can be NaT")."""
    folder = tmp_path / "snow"
    drafted(folder, "HistData", "Snow.dates", "deaths", "--task", "forecast", "--time", "date", store=empty_store)
    capsys.readouterr()
    assert main(["run", str(folder), "--budget", "20s", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.time 'date': 1 row(s) have no time (e.g. row 44 of the data" in err[0]
    assert not (folder / ".mlcase").exists() or not any((folder / ".mlcase").iterdir())
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["data"]["source"] = "SELECT * FROM 'data.csv' WHERE \"date\" IS NOT NULL"  # the fix the error gives
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", str(folder), "--budget", "20s", "--json", "--quiet"])
    assert code in (0, 3), out.getvalue()
    assert json.loads(out.getvalue())["decision"] in ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
