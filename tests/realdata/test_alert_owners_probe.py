"""Alerts reach their owners, the dead-man's switch and feature freshness, as an on-call team relies on them.

The case: MASS::fgl (214 glass fragments, 6 classes) served through the app with ``data.freshness`` on two
features and ``serving.on_stale: fallback``. The log holds 4 days of 40 answers (days 3 and 4 empty) where a
known share of the records carry a stale ``Na`` (0%, 10%, 50%, 0%); ``Na`` is five times larger on the last
day. Monitoring must report the planted stale shares, route each alert kind to its owner (``owners:`` roles,
``monitoring.alert_owners``, ``owner``), and run the notify command exactly once per owner with the
documented JSON. Then the notify commands an operator really writes: one that leaves a job in the
background, one that hangs with a child, one that fails with a multi-line error, a bare program name, and
what a command may see of mlcase's secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case

from .tables import cli as _cli

PER_DAY = 40
DAYS = (0, 1, 2, 5)  # days 3 and 4 have no prediction: a gap of 2 windows
STALE = {0: 0, 1: 4, 2: 20, 5: 0}  # stale Na answers per day
T0 = pd.Timestamp("2026-03-02", tz="UTC")
HOOK = """import json, os, sys
doc = json.loads(sys.stdin.read())
name = os.environ["MLCASE_OWNER"].replace(" ", "_")
with open(os.path.join(sys.argv[1], f"{name}.{os.getpid()}.json"), "w") as fh:
    json.dump({"env": {k: v for k, v in os.environ.items() if k.startswith("MLCASE_")}, "cwd": os.getcwd(),
               "doc": doc}, fh)
"""


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    root = tmp_path_factory.mktemp("owners")
    folder = runs.copy("fgl-random", root / "fgl")["folder"]
    sent = root / "sent"
    sent.mkdir()
    (root / "hook.py").write_text(HOOK)
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["data"]["freshness"] = {"Na": "2w", "Mg": "90m"}
    spec["owner"] = "glass lab"
    spec["owners"] = {"data": "data team", "serving": "platform team"}
    spec.setdefault("serving", {})["on_stale"] = "fallback"
    spec["monitoring"] = {"window": "1d", "min_window_rows": 10, "dead_man_windows": 2,
                          "alert_owners": {"score_drift": "pager duty", "drift": "serving"},
                          "notify": [[sys.executable, str(root / "hook.py"), str(sent)]]}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(folder)

    frame = pd.read_csv(folder / "data.csv").drop(columns=["type"])
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    items, days = [], []
    for d in DAYS:
        for j, i in enumerate(rng.choice(len(frame), PER_DAY, replace=False)):
            rec = {k: float(v) for k, v in frame.iloc[i].items()}
            if d == 5:
                rec["Na"] *= 5
            rec["_as_of"] = ({"Na": (now - timedelta(days=30)).isoformat()} if j < STALE[d]
                             else (now - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"))
            items.append(rec)
            days.append(d)
    with TestClient(create_app(ServeSettings(case=case, warmup=0))) as client:
        answers = []
        for k in range(0, len(items), 40):
            r = client.post("/predict", json=items[k:k + 40])
            assert r.status_code == 200, r.text
            answers += r.json()["predictions"]
    con = sqlite3.connect(folder / "predictions.db")
    ids = [r[0] for r in con.execute("SELECT request_id FROM predictions ORDER BY rowid")]
    assert len(ids) == len(items)
    for k, (rid, d) in enumerate(zip(ids, days, strict=True)):
        ts = T0 + pd.Timedelta(days=d) + pd.Timedelta(minutes=k % PER_DAY)
        con.execute("UPDATE predictions SET ts = ? WHERE request_id = ?", (ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), rid))
    con.commit()
    con.close()
    code, out, err = _cli("monitor", str(folder), "--json")
    assert code == 1, err
    return {"folder": folder, "root": root, "sent": sent, "items": items, "answers": answers, "days": days,
            "monitor": json.loads(out), "err": err}


def test_the_planted_stale_shares_and_the_stale_tier(served):
    data = served["monitor"]
    got = [(w["window"][:10], w["n"], w["freshness"]["Na"]["stale"], w["freshness"]["Na"]["stale_share"])
           for w in data["windows"]]
    assert got == [("2026-03-02", 40, 0, 0.0), ("2026-03-03", 40, 4, 0.1), ("2026-03-04", 40, 20, 0.5),
                   ("2026-03-07", 40, 0, 0.0)]
    # the stale records named only Na: Mg's age is unknown there, known (5 minutes) everywhere else
    assert [w["freshness"]["Mg"]["unknown_share"] for w in data["windows"]] == pytest.approx([0, 0.1, 0.5, 0])
    stale = [(it, a) for it, a in zip(served["items"], served["answers"], strict=True) if isinstance(it["_as_of"], dict)]
    assert len(stale) == 24
    for _, a in stale:  # the model reads Na: it steps aside, the next tier answers with the reason
        assert a["flags"]["stale"] == ["Na"] and a["tier"] != "model" and a["fallback"] is True
        assert "model: stale: Na is 4.3w old (data.freshness allows 2w)" in a["reason"]
    alerts = [(a["window"][:10], a["value"], a["owner"]) for a in data["alerts"] if a["kind"] == "stale_features"]
    assert alerts == [("2026-03-03", 0.1, "data team"), ("2026-03-04", 0.5, "data team")]


def test_each_owner_gets_its_alerts_once_with_the_documented_json(served):
    data = served["monitor"]
    owner_of = {"stale_features": "data team", "drift": "platform team", "fallback": "platform team",
                "no_traffic": "platform team", "monitoring_gap": "platform team", "score_drift": "pager duty"}
    assert {a["kind"] for a in data["alerts"]} <= set(owner_of) | {"assumption", "estimated_cost"}
    assert all(a["owner"] == owner_of.get(a["kind"], "glass lab") for a in data["alerts"])
    gap = [a for a in data["alerts"] if a["kind"] == "no_traffic" and a["window"].startswith("2026-03-05")]
    assert [a["value"] for a in gap] == [2]  # days 3 and 4 (the 5th and 6th of March)
    files = sorted(served["sent"].glob("*.json"))
    sent = [json.loads(p.read_text()) for p in files]
    assert sorted(s["doc"]["owner"] for s in sent) == sorted(data["alerts_by_owner"])  # once per owner
    for s in sent:
        doc = s["doc"]
        assert set(doc) == {"case", "owner", "source", "sent_at", "n_alerts", "alerts"}
        assert doc["case"] == "fgl-random" and doc["source"] == "monitor" and doc["sent_at"].endswith("Z")
        assert s["env"]["MLCASE_OWNER"] == doc["owner"] and s["env"]["MLCASE_CASE"] == "fgl-random"
        assert doc["n_alerts"] == len(doc["alerts"]) == data["alerts_by_owner"][doc["owner"]]["n"]
        assert [a for a in data["alerts"] if a["owner"] == doc["owner"]] == doc["alerts"]
        assert Path(s["cwd"]).resolve() == served["folder"].resolve()
    assert [n["ok"] for n in data["notifications"]] == [True] * len(sent)


def _with_notify(folder: Path, commands: list, timeout: str = "3s"):
    from mlcase.spec.sections import MonitoringSpec

    case = load_case(folder)
    case.spec.monitoring = MonitoringSpec.model_validate(
        {**case.spec.monitoring.model_dump(), "notify": commands, "notify_timeout": timeout})
    return case


def _script(folder: Path, name: str, body: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return f"./{name}"


def test_a_command_that_leaves_a_background_job_succeeded(served):
    """A webhook script ending in ``curl ... &`` (here ``sleep 20 &``) exited 0 at once; its child held the output
    pipe open, so it was 'ran past monitoring.notify_timeout' after the whole limit, once per owner."""
    from mlcase.governance.notify import notify

    folder = served["folder"]
    cmd = _script(folder, "bg.sh", "cat > /dev/null\nsleep 20 &\necho $! >> bg.pids\nexit 0\n")
    res = notify(_with_notify(folder, [cmd]), served["monitor"]["alerts"])
    assert len(res) == len(served["monitor"]["alerts_by_owner"]) == 3
    assert [(r["ok"], r["returncode"], r["error"]) for r in res] == [(True, 0, None)] * 3
    for pid in (folder / "bg.pids").read_text().split():  # the background jobs were left alone; end them here
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), 9)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_command_past_its_limit_is_stopped_with_its_children(served):
    """``sh`` was killed at the limit but the ``sleep`` it started kept running."""
    from mlcase.governance.notify import notify

    folder = served["folder"]
    cmd = _script(folder, "hang.sh", "sleep 600 &\necho $! > hang.pid\nwait\n")
    case = _with_notify(folder, [{"command": cmd, "owners": ["data"]}], timeout="1s")
    res = notify(case, served["monitor"]["alerts"])
    assert [(r["owner"], r["ok"]) for r in res] == [("data team", False)]
    assert "ran past monitoring.notify_timeout (1s) and was stopped" == res[0]["error"]
    pid = int((folder / "hang.pid").read_text())
    for _ in range(50):  # the kill is sent before notify returns; give the kernel a moment to mark it
        if not _alive(pid):
            break
        time.sleep(0.1)
    left = _alive(pid)
    if left:  # do not leave it behind when this fails
        os.kill(pid, 9)
    assert not left


def test_a_failing_command_is_one_line_and_does_not_stop_the_others(served):
    from mlcase.governance.notify import notify, notify_lines

    folder = served["folder"]
    fail = _script(folder, "fail.sh", "echo 'HTTP 500 from the pager' >&2\necho 'Traceback: line two' >&2\nexit 7\n")
    (folder / "bare.sh").write_text((folder / "fail.sh").read_text())
    (folder / "bare.sh").chmod(0o755)
    case = _with_notify(folder, [fail, "bare.sh", [sys.executable, str(served["root"] / "hook.py"),
                                                   str(served["root"])]])
    res = notify(case, served["monitor"]["alerts"])
    assert len(res) == 9 and [r["ok"] for r in res] == [False, False, True] * 3
    assert {r["error"] for r in res if r["command"] == "fail.sh"} == {
        "exited with 7: HTTP 500 from the pager Traceback: line two"}
    bare = {r["error"] for r in res if r["command"] == "bare.sh"}
    assert bare == {"no program 'bare.sh' on PATH (a bare name is looked up on PATH, not in the case folder); "
                    "write ./bare.sh for the one in the case folder"}
    lines = notify_lines(res)
    assert len(lines) == 10 and all("\n" not in line for line in lines)
    owners = ", ".join(dict.fromkeys(r["owner"] for r in res))
    assert sorted(owners.split(", ")) == ["data team", "pager duty", "platform team"]
    assert lines[-1] == f"6 of 9 notify command(s) failed: {owners} may not have been told"


def test_mlcases_secrets_do_not_reach_a_notify_command(served, monkeypatch, tmp_path):
    from mlcase.governance.notify import notify

    for name in ("MLCASE_LOG_KEY", "MLCASE_SIGNING_KEY", "MLCASE_API_KEY"):
        monkeypatch.setenv(name, f"secret-{name.lower()}-0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("PAGER_TOKEN", "the script's own credential")
    dump = _script(served["folder"], "env.sh", f"cat > /dev/null\nenv > \"{tmp_path}/env.${{MLCASE_OWNER}}.$$.txt\"\n")
    res = notify(_with_notify(served["folder"], [dump]), served["monitor"]["alerts"])
    assert all(r["ok"] for r in res)
    seen = "".join(p.read_text() for p in tmp_path.glob("env.*.txt"))
    assert seen.count("PAGER_TOKEN=the script's own credential") == 3
    assert "secret-" not in seen and seen.count("MLCASE_OWNER=") == 3


# --------------------------------------------------------------------------- the dead-man's switch
def test_deadman_alerts_when_the_serving_log_is_missing(runs, tmp_path):
    """A copy of the case without its log (a server that never wrote one, a log moved or deleted): the switch said
    'no alerts' and exited 0 for ever."""
    folder = runs.copy("fgl-random", tmp_path / "fgl")["folder"]
    for p in folder.glob("predictions.db*"):
        p.unlink()
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["owners"] = {"serving": "platform team"}
    spec["monitoring"] = {"window": "1h", "dead_man_windows": 3}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    code, out, err = _cli("deadman", str(folder), "--now", "2026-03-10T00:00:00Z", "--json")
    assert code == 1, err
    doc = json.loads(out)
    assert doc["status"] == "alert" and [a["kind"] for a in doc["alerts"]] == ["no_traffic"]
    assert doc["alerts"][0]["owner"] == "platform team"
    assert f"there is no prediction log at {(folder / 'predictions.db').resolve()}" in doc["alerts"][0]["message"]
    # a notify command that fails is said on stderr under --json and --quiet too (they print no listing; it was
    # only inside the JSON, and nowhere with --quiet)
    spec["monitoring"]["notify"] = [_script(folder, "page.sh", "echo 'pager: 503' >&2\nexit 4\n")]
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for flag in ("--json", "--quiet"):
        code, out, err = _cli("deadman", str(folder), "--now", "2026-03-10T00:00:00Z", flag)
        assert code == 1 and (flag == "--quiet" or json.loads(out)["notifications"][0]["ok"] is False)
        assert err.splitlines() == ["could not notify platform team with page.sh: exited with 4: pager: 503",
                                    "1 of 1 notify command(s) failed: platform team may not have been told"], err


def test_deadman_on_a_records_file_or_a_file_that_is_not_sqlite_is_one_line(served):
    folder = served["folder"]
    code, out, err = _cli("deadman", str(folder), "--log", str(folder / "data.csv"), "--no-notify")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "data.csv is a file of records, not the serving log" in err
    (folder / "notes.db").write_text("not a database at all, " * 100)
    code, _, err = _cli("deadman", str(folder), "--log", str(folder / "notes.db"), "--no-notify")
    assert code == 2 and "notes.db is not a SQLite prediction log" in err and "internal error" not in err


def test_deadman_counts_the_same_windows_whatever_the_now_zone(served):
    """The last answer is at 2026-03-07 00:39Z: with daily windows and N = 2, the 8th and 9th are empty once the
    10th begins, in UTC whatever zone --now is written in (a DST change in Europe/Berlin on 29 March aside)."""
    folder = served["folder"]
    got = {}
    for now in ("2026-03-09T23:59:00Z", "2026-03-10T00:00:01Z", "2026-03-10T01:00:01+01:00",
                "2026-03-09T18:59:00-05:00", "2026-03-10T00:30:00-00:00"):
        code, out, _ = _cli("deadman", str(folder), "--now", now, "--json", "--no-notify")
        got[now] = [(a["kind"], a["value"]) for a in json.loads(out)["alerts"] if a["kind"] == "no_traffic"]
    assert got == {"2026-03-09T23:59:00Z": [], "2026-03-10T00:00:01Z": [("no_traffic", 2)],
                   "2026-03-10T01:00:01+01:00": [("no_traffic", 2)], "2026-03-09T18:59:00-05:00": [],
                   "2026-03-10T00:30:00-00:00": [("no_traffic", 2)]}


# --------------------------------------------------------------------------- freshness at the door
def test_one_bad_as_of_time_is_one_issue_and_milliseconds_are_named(served, tmp_path):
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    rec = {k: v for k, v in served["items"][0].items() if k != "_as_of"}
    with TestClient(create_app(ServeSettings(case=load_case(served["folder"]), warmup=0,
                                                 log_url=str(tmp_path / "door.db")))) as client:
        r = client.post("/predict", json={**rec, "_as_of": "last tuesday"})
        assert r.status_code == 422
        assert [d["field"] for d in r.json()["detail"]] == ["_as_of"]  # one time, one issue (was once per feature)
        ms = (datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000
        r = client.post("/predict", json={**rec, "_as_of": {"Na": ms}})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "_as_of.Na"
        assert "send seconds, not milliseconds" in r.json()["detail"][0]["message"]
        # a client's optional time as null is not known, as a missing _as_of is (it was a 422 per feature)
        r = client.post("/predict", json={**rec, "_as_of": {"Na": None, "Mg": (datetime.now(UTC) - timedelta(
            hours=2)).isoformat()}})
        assert r.status_code == 200 and r.json()["predictions"][0]["flags"]["stale"] == ["Mg"], r.text
        schema = client.get("/openapi.json").json()["components"]["schemas"]["Record"]["properties"]["_as_of"]
        assert {"type": "null"} in schema["anyOf"][1]["properties"]["Na"]["anyOf"]
        for as_of, stale in [({"Mg": (datetime.now(UTC) - timedelta(minutes=89)).isoformat()}, []),
                             ({"Mg": (datetime.now(UTC) - timedelta(minutes=95)).isoformat()}, ["Mg"]),
                             ((datetime.now(UTC) - timedelta(days=13)).date().isoformat(), ["Mg"]),
                             ((datetime.now(UTC) - timedelta(days=16)).timestamp(), ["Na", "Mg"])]:
            r = client.post("/predict", json={**rec, "_as_of": as_of})
            assert r.status_code == 200 and r.json()["predictions"][0]["flags"]["stale"] == stale, (as_of, r.text)


def test_a_notify_command_scoped_to_nobody_is_a_spec_error(served):
    """``owners: [sevring]`` (a typo of the serving role) ran the command for no owner, and nothing said so."""
    folder = served["folder"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["monitoring"]["notify"] = [{"command": "./page.sh", "owners": ["sevring"]}]
    bad = folder.parent / "typo"
    bad.mkdir()
    (bad / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    code, _, err = _cli("deadman", str(bad), "--no-notify")
    assert code == 2
    assert "monitoring.notify[0].owners: 'sevring' owns no alert, so this command would never run" in err
    assert "name a role of owners (data, serving)" in err
    from mlcase.governance.owners import notify_targets

    # a role, an alert_owners name, names, a default role the case leaves to its owner
    for fine, reaches in ((["serving"], "platform team"), (["pager duty"], "pager duty"),
                          (["glass lab", "data team"], "glass lab"), (["model"], "glass lab")):
        spec["monitoring"]["notify"] = [{"command": "./page.sh", "owners": fine}]
        (bad / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        assert reaches in notify_targets(fine, load_case(bad).spec)


def test_monitor_exits_1_when_only_the_dead_mans_switch_fires(served, runs, tmp_path):
    """Three answers on 2 March, none since: `mlcase monitor` printed and sent 'no_traffic' and 'monitoring_gap'
    and exited 0 (its exit code read the windows' alerts only), so cron saw a healthy run."""
    folder = runs.copy("fgl-random", tmp_path / "fgl")["folder"]
    (folder / "case.yaml").write_text((served["folder"] / "case.yaml").read_text())
    con = sqlite3.connect(served["folder"] / "predictions.db")
    con.execute(f"VACUUM INTO '{folder / 'predictions.db'}'")
    con.close()
    con = sqlite3.connect(folder / "predictions.db")
    con.execute("DELETE FROM predictions WHERE rowid NOT IN (SELECT rowid FROM predictions WHERE "
                "json_array_length(json_extract(freshness, '$.stale')) = 0 ORDER BY ts LIMIT 3)")
    con.commit()
    assert con.execute("SELECT count(*), min(ts) >= '2026-03-02', max(ts) < '2026-03-03' FROM predictions").fetchone() \
        == (3, 1, 1)
    con.close()
    before = sorted(served["sent"].iterdir())
    code, out, err = _cli("monitor", str(folder), "--json", "--no-notify")
    data = json.loads(out)
    assert sorted(a["kind"] for a in data["alerts"]) == ["monitoring_gap", "no_traffic"], data["alerts"]
    assert data["status"] == "alert" and data["notifications"] == []
    assert sorted(served["sent"].iterdir()) == before  # --no-notify ran no command
    assert code == 1


def test_the_switch_in_monitor_reads_the_log_monitor_read(served, runs, tmp_path, monkeypatch):
    """`mlcase monitor CASE --log predictions.db` from another folder reads the case's log (a relative --log is
    found in the case folder), but the dead-man's check looked for it in the working folder, found nothing and
    said nothing: exit 0 on a log silent since March. A TSV of records (which monitor reads) was 'internal error
    (DatabaseError: file is not a database)'."""
    folder = runs.copy("fgl-random", tmp_path / "fgl")["folder"]
    (folder / "case.yaml").write_text((served["folder"] / "case.yaml").read_text())
    con = sqlite3.connect(served["folder"] / "predictions.db")
    con.execute(f"VACUUM INTO '{folder / 'predictions.db'}'")
    con.close()
    elsewhere = tmp_path / "cron"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = _cli("monitor", str(folder), "--log", "predictions.db", "--json", "--no-notify")
    silent = [a for a in json.loads(out)["alerts"] if a["kind"] == "no_traffic" and a["window"] >= "2026-03-08"]
    assert code == 1 and len(silent) == 1 and "(the last at 2026-03-07T00:39:00Z)" in silent[0]["message"], err
    # `mlcase deadman` finds the same relative --log (it was 'no prediction log at predictions.db', exit 2)
    code, out, err = _cli("deadman", str(folder), "--log", "predictions.db", "--json", "--no-notify")
    assert code == 1 and json.loads(out)["last_prediction"] == "2026-03-07T00:39:00Z", err
    records = pd.read_csv(folder / "data.csv").drop(columns=["type"]).head(60)
    records["ts"] = pd.date_range("2026-03-02", periods=60, freq="h", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    records.to_csv(folder / "recent.tsv", sep="\t", index=False)
    code, out, err = _cli("monitor", str(folder), "--log", str(folder / "recent.tsv"), "--json", "--no-notify")
    assert code in (0, 1) and "internal error" not in err, err
    assert not [a for a in json.loads(out)["alerts"] if a["kind"] in ("no_traffic", "monitoring_gap")
                and "last at" in a["message"]]  # records say nothing of the server's silence


def test_as_of_on_a_case_without_freshness_says_what_to_set(served, runs, tmp_path):
    """A client that sends ``_as_of`` before the case sets data.freshness got "'_as_of' is not a column of this
    model", as if the documented field were a typo."""
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    folder = runs.copy("fgl-random", tmp_path / "fgl")["folder"]
    rec = {k: v for k, v in served["items"][0].items() if k != "_as_of"}
    with TestClient(create_app(ServeSettings(case=load_case(folder), warmup=0))) as client:
        r = client.post("/predict", json=[rec, {**rec, "_as_of": "2026-03-01T00:00:00Z"}])
        assert r.status_code == 422
        assert r.json()["detail"] == [{"record": 1, "field": "_as_of", "message": (
            "this case judges no feature's age: data.freshness is not set in case.yaml; set it (e.g. {balance: 1d}) "
            "or leave _as_of out")}]
        assert client.post("/predict", json=rec).status_code == 200


def test_the_age_of_a_feature_with_a_non_ascii_name_is_read(served, runs, tmp_path):
    """The served log with Mg named 'Größe' (as a German table names its columns; the log's JSON is what the server
    writes for that name): the stale share was right but every age was 'unknown' (known 0, unknown_share 1.0,
    age_p50 None), because the JSON path was written with \\u escapes DuckDB does not read."""
    from mlcase.monitor import monitor

    folder = runs.copy("fgl-random", tmp_path / "fgl")["folder"]
    spec = yaml.safe_load((served["folder"] / "case.yaml").read_text())
    spec["data"]["freshness"] = {"Na": "2w", "Größe": "90m"}
    spec["monitoring"].pop("notify")
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    con = sqlite3.connect(served["folder"] / "predictions.db")
    con.execute(f"VACUUM INTO '{folder / 'predictions.db'}'")
    con.close()
    con = sqlite3.connect(folder / "predictions.db")
    rows = con.execute("SELECT request_id, freshness FROM predictions").fetchall()
    for rid, fresh in rows:
        doc = json.loads(fresh)
        doc["age_s"]["Größe"] = doc["age_s"].pop("Mg")
        con.execute("UPDATE predictions SET freshness = ? WHERE request_id = ?", (json.dumps(doc), rid))
    con.commit()
    con.close()
    res = monitor(load_case(folder))
    got = [(w["freshness"]["Größe"]["known"], w["freshness"]["Größe"]["stale"]) for w in res.windows]
    assert got == [(40, 0), (36, 0), (20, 0), (40, 0)]  # the 24 stale-Na records gave no Mg time
    assert all(280 < w["freshness"]["Größe"]["age_p50_s"] < 400 for w in res.windows)  # sent 5 minutes old


def test_an_alert_already_sent_is_not_sent_again_until_notify_repeat(served):
    """`mlcase monitor` reads every window still in the log, so each run from cron sent the same alerts of the
    same windows again (fgl's 3 owners paged on every run for weeks-old windows), and `mlcase deadman`, run every few
    minutes, paged every few minutes. An alert is sent once, then only monitoring.notify_repeat (4h) later while it
    still fires; an alert of a window not seen before is sent at once; notify_repeat 0 sends every run."""
    folder, sent_dir = served["folder"], served["sent"]
    _cli("monitor", str(folder), "--json")    # the alerts the fixture's run sent, and any the clock added since
    before = len(list(sent_dir.glob("*.json")))
    code, out, err = _cli("monitor", str(folder), "--json")
    again = json.loads(out)
    n_alerts = len(again["alerts"])
    assert code == 1 and n_alerts >= 5                            # still firing, still reported and exit 1
    assert again["notifications"] == [] and again["notify_held"] == n_alerts
    assert len(list(sent_dir.glob("*.json"))) == before         # nobody paged twice
    code, _, err = _cli("monitor", str(folder))
    assert f"{n_alerts} alert(s) already sent within monitoring.notify_repeat were not sent again" in err

    # the dead-man's switch from cron a year on (its --now after the clock that stamped monitor's sends), twice
    first = json.loads(_cli("deadman", str(folder), "--now", "2027-03-10T00:00:00Z", "--json")[1])
    second = json.loads(_cli("deadman", str(folder), "--now", "2027-03-10T00:05:00Z", "--json")[1])
    assert first["alerts"] and second["notifications"] == [] and second["notify_held"] == len(second["alerts"])
    # ...and 4 hours later the ones still firing are sent again
    later = json.loads(_cli("deadman", str(folder), "--now", "2027-03-10T04:05:00Z", "--json")[1])
    assert later["notify_held"] == 0 and [n["ok"] for n in later["notifications"]] == [True] * len(
        {a["owner"] for a in later["alerts"]})

    # the record holds owners, kinds, windows and features: no value of any record
    kept = json.loads((folder / ".mlcase" / "governance" / "notified.json").read_text())["sent"]
    assert kept and all(isinstance(t, float) for t in kept.values())
    assert not any(str(it["Na"]) in "".join(kept) for it in served["items"][:20])

    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["monitoring"]["notify_repeat"] = 0
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        code, out, _ = _cli("monitor", str(folder), "--json")
        every = json.loads(out)
        assert every["notify_held"] == 0 and len(every["notifications"]) == len(every["alerts_by_owner"])
    finally:
        del spec["monitoring"]["notify_repeat"]
        (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
