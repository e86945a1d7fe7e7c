# ruff: noqa: F811  (the tests take test_governance's `served_days` fixture)
"""Bad input to the Python API of governance and monitoring (forget, apply_retention, deadman, compact, monitor):
each is refused with mlcase's own error, naming the argument and the fix, and nothing in the case's stores changes;
what users mean (epoch seconds for ``now``, one path for ``files``, a DataFrame of labels, a case's path) works.

The case is real: ISLR ``Default`` with a registered champion and ten days of served answers with labels."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from mlcase.errors import DataError, NotFoundError, SpecError
from mlcase.governance import deadman
from mlcase.governance.forget import forget
from mlcase.governance.retention import apply_retention
from mlcase.monitor import monitor
from mlcase.monitor.compact import compact, compacted_folder

from .test_governance import fresh_log, served_days  # noqa: F401

NOW_ISO = "2026-01-15T06:00:00Z"
NOW_EPOCH = pd.Timestamp(NOW_ISO).timestamp()  # 1768456800.0


def stores_state(case, log: Path) -> dict:
    """What a refusal must leave as it was: the log's rows, its compacted part, the governance files."""
    con = sqlite3.connect(log)
    rows = {t: con.execute(f"SELECT count(*), group_concat(request_id) FROM {t}").fetchone()
            for t in ("predictions", "labels")}
    con.close()
    folder = compacted_folder(log)
    gov = case.work_dir / "governance"
    return {"rows": rows,
            "compacted": sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else None,
            "governance": {str(p.relative_to(gov)): hashlib.sha256(p.read_bytes()).hexdigest()
                           for p in sorted(gov.rglob("*")) if p.is_file()} if gov.exists() else {}}


def refused(error, call, *needles: str):
    """``call()`` raises ``error`` (an MlcaseError) whose one-line message holds every needle and a fix."""
    with pytest.raises(error) as info:
        call()
    text = str(info.value)
    assert info.value.fix and "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


@pytest.fixture
def served(served_days, tmp_path):
    case, log = served_days["case"], fresh_log(served_days, tmp_path)
    return case, log


# --------------------------------------------------------------------------- 1. `now`
def test_now_in_epoch_seconds_is_the_same_time_as_its_iso_text_everywhere(served, tmp_path):
    case, log = served
    before = stores_state(case, log)
    by_epoch = apply_retention(case, log=str(log), now=NOW_EPOCH, dry_run=True)
    by_iso = apply_retention(case, log=str(log), now=NOW_ISO, dry_run=True)
    assert by_epoch["before"] == by_iso["before"] == "2026-01-10T00:00:00.000000Z"   # not 1969
    assert by_epoch["stores"] == by_iso["stores"] and by_epoch["rows"] == 5 * 120 * 2

    m_epoch, m_iso = monitor(case, log=str(log), now=NOW_EPOCH), monitor(case, log=str(log), now=NOW_ISO)
    assert m_epoch.as_of == m_iso.as_of == NOW_ISO                                   # not 1970-01-01T00:00:01Z
    assert [w["mature"] for w in m_epoch.windows] == [w["mature"] for w in m_iso.windows]

    d_epoch = deadman.check(case, now=NOW_EPOCH, log=str(log), windows=2)
    d_iso = deadman.check(case, now=NOW_ISO, log=str(log), windows=2)
    assert d_epoch["checked_at"] == d_iso["checked_at"] == NOW_ISO
    assert [a["kind"] for a in d_epoch["alerts"]] == [a["kind"] for a in d_iso["alerts"]]
    assert stores_state(case, log) == before

    # compact took epoch seconds only: ISO text and a datetime now give the same cut
    copy = tmp_path / "copy.db"
    copy.write_bytes(log.read_bytes())
    assert compact(case, log=str(copy), now=NOW_ISO).cut == compact(case, log=str(log), now=NOW_EPOCH).cut \
        == "2026-01-15T00:00:00"


@pytest.mark.parametrize("bad", ["yesterday", "", [2026, 1, 15], True, float("nan"), NOW_EPOCH * 1000])
def test_a_now_that_is_no_time_is_refused_everywhere_and_changes_nothing(served, bad):
    case, log = served
    before = stores_state(case, log)
    for call in (lambda: monitor(case, log=str(log), now=bad),
                 lambda: apply_retention(case, log=str(log), now=bad),
                 lambda: apply_retention(case, log=str(log), now=bad, dry_run=True),
                 lambda: deadman.check(case, now=bad, log=str(log), windows=2),
                 lambda: deadman.record_heartbeat(case, now=bad),
                 lambda: compact(case, log=str(log), now=bad)):
        refused(SpecError, call, "now", "ISO-8601", "epoch seconds")
    assert stores_state(case, log) == before


# --------------------------------------------------------------------------- 2-3. forget's arguments
@pytest.mark.parametrize("subject", [["loan-7"], ("loan-7",), {"loan-7"}, None, True, "loan-7\nloan-8"])
def test_forget_refuses_a_subject_that_is_not_one_value_and_writes_no_receipt(served, subject):
    case, log = served
    before = stores_state(case, log)
    refused(SpecError, lambda: forget(case, subject, log=str(log)), "subject", "one subject per call")
    assert stores_state(case, log) == before      # no pending journal, no receipt, every row kept
    receipt = forget(case, "loan-7", log=str(log))  # the same subject as one value: its prediction and its label
    assert receipt["rows"] == 2


@pytest.mark.parametrize("log_arg", [pd.DataFrame({"request_id": ["q0001"]}), 42, ["predictions.db"]])
def test_forget_refuses_a_log_that_is_no_path_before_any_journal_is_written(served, log_arg):
    case, log = served
    before = stores_state(case, log)
    refused(SpecError, lambda: forget(case, "loan-7", log=log_arg), "log", "path")
    assert stores_state(case, log) == before
    assert not list((case.work_dir / "governance").glob("pending-*.json"))


def test_forget_refuses_a_log_path_with_no_file(served, tmp_path):
    case, log = served
    before = stores_state(case, log)
    refused(DataError, lambda: forget(case, "loan-7", log=str(tmp_path / "typo.db")), "log", "typo.db")
    refused(DataError, lambda: apply_retention(case, log=str(tmp_path / "typo.db"), now=NOW_ISO), "log")
    assert stores_state(case, log) == before


def test_forget_takes_one_records_file_as_a_list_of_one(served, tmp_path):
    case, log = served
    records = tmp_path / "labels.csv"
    pd.DataFrame({"unit_id": ["loan-7", "loan-8", "loan-7"], "label": ["No", "Yes", "No"]}).to_csv(records, index=False)
    receipt = forget(case, "loan-7", log=str(log), files=str(records))   # a str, not iterated letter by letter
    by_store = {s["location"]: s["rows"] for s in receipt["stores"]}
    assert by_store[str(records.resolve())] == 2
    assert pd.read_csv(records)["unit_id"].tolist() == ["loan-8"]
    before = stores_state(case, log)
    refused(SpecError, lambda: forget(case, "loan-8", log=str(log), files=[records, 3]), "files", "paths")
    refused(SpecError, lambda: forget(case, "loan-8", log=str(log), files=3), "files", "paths")
    assert stores_state(case, log) == before and pd.read_csv(records)["unit_id"].tolist() == ["loan-8"]


# --------------------------------------------------------------------------- 4. compact's window
@pytest.mark.parametrize("window", [-5, 0, "soon", True, float("inf")])
def test_compact_refuses_a_window_that_is_no_positive_duration(served, window):
    case, log = served
    before = stores_state(case, log)
    refused(SpecError, lambda: compact(case, log=str(log), window=window), "window", "positive duration")
    assert stores_state(case, log) == before
    assert not compacted_folder(log).exists()


def test_compact_takes_a_window_as_a_duration(served):
    case, log = served
    assert compact(case, log=str(log), window="1d", now=NOW_EPOCH).cut == \
        compact(case, log=str(log), window=86400, now=NOW_EPOCH).cut == "2026-01-15T00:00:00"


# --------------------------------------------------------------------------- 5-7. monitor's arguments
@pytest.mark.parametrize("alpha", [2, -0.1, 0, 1, float("nan"), "0.05"])
def test_monitor_refuses_an_alpha_outside_0_1(served, alpha):
    case, log = served
    before = stores_state(case, log)
    refused(SpecError, lambda: monitor(case, log=str(log), alpha=alpha), "alpha", "between 0 and 1", "0.05")
    assert stores_state(case, log) == before


def test_monitor_refuses_an_alias_that_is_not_registered_and_names_those_that_are(served):
    case, log = served
    before = stores_state(case, log)
    text = refused(NotFoundError, lambda: monitor(case, log=str(log), alias="nope"), "'nope'", "champion (version 1)")
    assert "baseline" not in text.split(";")[0]
    refused(NotFoundError, lambda: monitor(case, log=str(log), alias="baseline"), "'baseline'", "champion")
    refused(SpecError, lambda: monitor(case, log=str(log), alias=""), "alias", "champion")
    assert stores_state(case, log) == before
    # the default still is the champion, and naming it gives the same
    assert monitor(case, log=str(log)).model["alias"] == monitor(case, log=str(log), alias="champion").model["alias"] \
        == "champion"


def test_monitor_refuses_an_empty_frame_log_in_one_line(served_days):
    case = served_days["case"]
    refused(DataError, lambda: monitor(case, log=pd.DataFrame()), "log", "no columns")
    features = ["student", "balance", "income"]
    refused(DataError, lambda: monitor(case, log=pd.DataFrame(columns=features)), "log", "no rows")
    refused(DataError, lambda: monitor(case, log=pd.DataFrame({"balance": [1.0]})), "log", "income")
    refused(DataError, lambda: monitor(case, log=3.5), "log", "DataFrame")


def test_monitor_reads_labels_from_a_frame_as_from_a_file(served, tmp_path):
    case, log = served
    con = sqlite3.connect(log)
    ids = [r[0] for r in con.execute("SELECT request_id FROM predictions ORDER BY request_id LIMIT 300")]
    con.close()
    late = pd.DataFrame({"request_id": ids, "label": ["Yes"] * len(ids)})   # later labels that win
    late.to_csv(tmp_path / "late.csv", index=False)
    before = stores_state(case, log)
    by_frame = monitor(case, log=str(log), labels=late).to_dict()
    by_file = monitor(case, log=str(log), labels=tmp_path / "late.csv").to_dict()
    plain = monitor(case, log=str(log)).to_dict()
    assert by_frame["windows"] == by_file["windows"] and by_frame["labels"] == by_file["labels"]
    assert by_frame["windows"][0]["realized"] != plain["windows"][0]["realized"]
    refused(DataError, lambda: monitor(case, log=str(log), labels=late[["request_id"]]), "labels", "label")
    refused(DataError, lambda: monitor(case, log=str(log), labels=late.iloc[:0]), "labels", "no rows")
    refused(DataError, lambda: monitor(case, log=str(log), labels=42), "labels", "DataFrame")
    assert stores_state(case, log) == before


# --------------------------------------------------------------------------- 8. a case given by its path
def test_a_case_path_is_loaded_by_every_function_that_takes_a_case(served, tmp_path):
    case, log = served
    for root in (str(case.root), case.root, str(case.root / "case.yaml")):
        assert monitor(root, log=str(log), now=NOW_ISO).to_dict()["windows"] == \
            monitor(case, log=str(log), now=NOW_ISO).to_dict()["windows"]
    assert apply_retention(str(case.root), log=str(log), now=NOW_ISO, dry_run=True)["rows"] == 5 * 120 * 2
    assert deadman.check(str(case.root), now=NOW_ISO, log=str(log))["checked_at"] == NOW_ISO
    assert forget(str(case.root), "loan-9", log=str(log))["rows"] == 2
    copy = tmp_path / "copy.db"
    copy.write_bytes(log.read_bytes())
    assert compact(str(case.root), log=str(copy), now=NOW_ISO).rows > 0
    before = stores_state(case, log)
    for call in (lambda: monitor(42, log=str(log)), lambda: forget(42, "loan-7", log=str(log)),
                 lambda: apply_retention(42, log=str(log)), lambda: deadman.check(42, log=str(log)),
                 lambda: compact(42, log=str(log))):
        refused(SpecError, call, "case", "load_case")
    refused(SpecError, lambda: monitor(str(tmp_path / "nowhere"), log=str(log)), "no case spec")
    assert stores_state(case, log) == before
