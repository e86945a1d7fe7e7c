"""Governance without a server: what the log keeps, erasure (scanned in the files' bytes, and killed mid-way),
retention that keeps past monitoring windows, owners, notify commands and the dead-man's switch."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.governance import deadman, owners
from mlcase.governance.forget import forget, pending, receipts
from mlcase.governance.notify import notify
from mlcase.governance.policy import LogPolicy
from mlcase.governance.retention import apply_retention
from mlcase.serve.predlog import COLUMNS, PredictionLog

MLCASE = str(Path(sys.executable).parent / "mlcase")
DAY = 86400.0
T0 = pd.Timestamp("2026-01-05T00:00:00Z").timestamp()


def iso(t: float) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").isoformat(timespec="microseconds").replace("+00:00", "Z")


def row(rid: str, t: float, unit: str | None, inputs: dict, score=0.2, decision="auto", tier="model") -> tuple:
    values = {"request_id": rid, "ts": iso(t), "model_version": 1, "model_name": "logistic", "tier": tier,
              "fallback": int(tier != "model"), "inputs": json.dumps(inputs), "score": score, "prediction": "No",
              "decision": decision, "latency_ms": 1.0, "arm": "model", "unit_id": unit, "audit": 0,
              "sampling_probability": 1.0 if decision != "auto" else 0.0, "model_decision": decision}
    return tuple(values.get(c) for c in COLUMNS)


def write_spec(root: Path, extra: dict | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    spec = {"name": "gov", "decision": "which loans get a manual review", "task": "binary",
            "owner": "credit team", "owners": {"data": "warehouse team", "serving": "platform team"},
            "data": {"source": "data.csv", "target": "default", "positive": "Yes", "id": "email"}}
    spec.update(extra or {})
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def scan(paths, *needles: str) -> list[tuple[str, str]]:
    """(file, needle) for every needle found in the raw bytes of the files (a database, its WAL, CSVs)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            data = p.read_bytes()
            out += [(p.name, n) for n in needles if n.encode() in data]
    return out


# --------------------------------------------------------------------------- what the log keeps
def test_log_policy_hashes_personal_data_by_default_and_drops_or_keeps_as_told(tmp_path):
    write_spec(tmp_path, {"personal_data": {"email": "to send the outcome"},
                          "serving": {"log_inputs": {"income": "drop", "student": "hashed", "balance": "raw"}}})
    case = load_case(tmp_path)
    p = LogPolicy.from_spec(case.spec)
    kept = p.inputs({"balance": 1200.5, "income": 41234.5, "student": "Yes"})
    assert kept["balance"] == 1200.5 and "income" not in kept
    assert kept["student"].startswith("hmac:") and len(kept["student"]) == 37
    unit = p.unit("ana@example.com")
    assert unit.startswith("hmac:") and unit == p.unit(" ana@example.com ") and unit != p.unit("ben@example.com")
    assert p.limits(["balance", "income", "student"]).keys() == {"income", "student"}
    os.environ["MLCASE_LOG_KEY"] = "another-machine-key-0123456789"
    try:  # the key lives outside the log: another key, another hash
        assert LogPolicy.from_spec(case.spec).unit("ana@example.com") != unit
    finally:
        del os.environ["MLCASE_LOG_KEY"]


# --------------------------------------------------------------------------- erasure
@pytest.fixture
def stores(tmp_path):
    """A log (SQLite, WAL) with 3 subjects, labels, a review queue and a labels file that hold their rows."""
    root = tmp_path / "case"
    write_spec(root)
    case = load_case(root)
    log = PredictionLog(str(root / "predictions.db"))
    subjects = ["ana@example.com", "ben@example.com", "chloe@example.com"]
    rows, labels = [], []
    for k in range(60):
        unit = subjects[k % 3]
        rows.append(row(f"r{k:03d}", T0 + 600 * k, unit, {"balance": 100.0 + k, "student": "No"},
                        decision="flag" if k % 4 == 0 else "auto"))
        labels.append({"request_id": f"r{k:03d}", "label": "Yes" if k % 5 == 0 else "No"})
    log.write(rows)
    log.add_labels(labels)
    log.flush()  # the server is still "running": the WAL holds the rows
    from mlcase.review import export_queue

    export_queue(case, root / "queue.csv", reasons=0)
    pd.DataFrame({"request_id": [f"r{k:03d}" for k in range(0, 60, 4)], "label": "No"}).to_csv(
        root / "late_labels.csv", index=False)
    from mlcase.serve.predlog import label_file

    label_file(case, root / "late_labels.csv")
    yield {"root": root, "case": case, "log": log, "subjects": subjects}
    if log._thread.is_alive():  # the kill tests close it first
        log.close()


def files_of(root: Path) -> list[Path]:
    return [root / "predictions.db", root / "predictions.db-wal", root / "queue.csv", root / "late_labels.csv"]


def test_forget_removes_every_row_of_a_subject_from_every_store_by_the_bytes(stores):
    root, case = stores["root"], stores["case"]
    ana_ids = [f"r{k:03d}" for k in range(0, 60, 3)]
    assert scan(files_of(root), "ana@example.com")  # before: in the log, its WAL and the queue
    receipt = forget(case, "ana@example.com")
    assert scan(files_of(root), "ana@example.com", *[f'"{i}"' for i in ana_ids]) == []
    assert [b for b in scan(files_of(root), *ana_ids)] == []  # not a request id of hers, in any byte
    con = sqlite3.connect(root / "predictions.db")
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 40
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 40 + 10  # the others' labels stay
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert scan(files_of(root), "ben@example.com")  # the others stay
    by = {s["store"]: s["rows"] for s in receipt["stores"]}
    assert by == {"review queue": 5, "labels file": 5, "prediction log": 20 + 20 + 5}
    text = Path(receipt["path"]).read_text()
    assert "ana" not in text and "hmac:" not in text and "r000" not in text  # the receipt holds no identifier
    assert receipts(case)[-1]["rows"] == receipt["rows"] == 55 and pending(case) == 0
    again = forget(case, "ana@example.com")  # nothing left: a second erasure finds nothing
    assert again["rows"] == 0


def test_a_hashed_unit_is_found_from_the_identifier(tmp_path):
    root = tmp_path / "case"
    write_spec(root, {"personal_data": {"email": "to send the outcome"}})
    case = load_case(root)
    policy = LogPolicy.from_spec(case.spec)
    log = PredictionLog(str(root / "predictions.db"))
    log.write([row(f"r{k}", T0 + k, policy.unit(u), {"balance": 1.0})
               for k, u in enumerate(["ana@example.com", "ben@example.com"] * 5)])
    log.close()
    hashed = policy.unit("ana@example.com")
    assert scan([root / "predictions.db"], "ana@example.com") == [] and scan([root / "predictions.db"], hashed)
    assert forget(case, "ana@example.com")["rows"] == 5
    assert scan([root / "predictions.db", root / "predictions.db-wal"], hashed) == []


def test_a_unit_follows_its_own_columns_policy():
    """``data.id`` by default; a ranking list's unit is its group column, hashed or dropped as that column is."""
    from mlcase.governance.policy import DROP, HASHED

    policy = LogPolicy({"user": HASHED, "session": DROP, "email": HASHED}, "email", "c")
    assert policy.unit("ana@example.com").startswith("hmac:")
    assert policy.unit("u1", column="user") == policy.inputs({"user": "u1"})["user"] != "u1"
    assert policy.unit("s1", column="session") is None and "session" not in policy.inputs({"session": "s1"})
    assert policy.unit("q7", column="query") == "q7"   # a raw column stays raw


def run_until_failpoint(argv: list[str], point: str, tmp: Path, cwd: Path | None = None,
                        env: dict | None = None) -> None:
    """Start ``mlcase argv`` (in ``cwd``, with ``env`` added to the environment) stopping at failpoint ``point``,
    wait for it to get there, and SIGKILL it.

    A process that ends before the point fails the test with its stderr; one that never gets there is a hang,
    which the callers' ``pytest.mark.timeout`` stops (no assertion on how long it took)."""
    marker = tmp / f"at-{point.replace(':', '_')}"
    marker.unlink(missing_ok=True)
    env = {**os.environ, **(env or {}), "MLCASE_FAILPOINT": point, "MLCASE_FAILPOINT_FILE": str(marker)}
    proc = subprocess.Popen([MLCASE, *argv], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.timeout(300)  # a hang guard for the failpoint wait, not a timing assertion
def test_forget_killed_mid_transaction_leaves_stores_consistent_and_a_rerun_finishes(stores, tmp_path):
    root, case = stores["root"], stores["case"]
    stores["log"].close()
    run_until_failpoint(["forget", str(root), "--subject", "ben@example.com"], "forget:log-before-commit", tmp_path)
    con = sqlite3.connect(root / "predictions.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the log's transaction was rolled back whole: every row of ben's is still there, with its labels
    assert con.execute("SELECT count(*) FROM predictions WHERE unit_id = 'ben@example.com'").fetchone()[0] == 20
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 60 + 15
    con.close()
    # the files were erased before the log, each atomically: readable, and already without ben's rows
    queue = pd.read_csv(root / "queue.csv")
    assert len(queue) > 0 and "ben@example.com" not in set(queue["unit_id"])
    assert pending(case) == 1
    assert subprocess.run([MLCASE, "forget", str(root), "--subject", "ben@example.com", "--json"],
                          capture_output=True, text=True).returncode == 0
    receipt = receipts(case)[-1]
    assert receipt["runs"] == 2 and pending(case) == 0
    assert {s["store"]: s["rows"] for s in receipt["stores"]} == {"review queue": 5, "labels file": 5,
                                                                  "prediction log": 45}
    assert scan(files_of(root), "ben@example.com") == []


@pytest.mark.timeout(300)  # a hang guard for the failpoint wait, not a timing assertion
def test_forget_killed_between_two_stores_finishes_on_rerun(stores, tmp_path):
    root = stores["root"]
    stores["log"].close()
    run_until_failpoint(["forget", str(root), "--subject", "chloe@example.com"], "forget:between-stores", tmp_path)
    assert "chloe@example.com" not in set(pd.read_csv(root / "queue.csv")["unit_id"])  # the first store is done
    assert scan([root / "predictions.db"], "chloe@example.com")  # the log is not yet
    out = subprocess.run([MLCASE, "forget", str(root), "--subject", "chloe@example.com", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows"] == 55 and scan(files_of(root), "chloe@example.com") == []


def test_forget_without_data_id_is_bad_input(tmp_path, capsys):
    from mlcase.cli import main

    root = tmp_path / "noid"
    write_spec(root)
    spec = yaml.safe_load((root / "case.yaml").read_text())
    del spec["data"]["id"]
    (root / "case.yaml").write_text(yaml.safe_dump(spec))
    assert main(["forget", str(root), "--subject", "x"]) == 2
    assert "names no data.id" in capsys.readouterr().err


# --------------------------------------------------------------------------- retention
@pytest.fixture(scope="module")
def served_days(tmp_path_factory):
    """A registered model and ten days of logged answers (120 a day), with labels."""
    from mlcase.monitor import build_reference
    from tests.serving_case import bundle, make_case, records, register

    root = tmp_path_factory.mktemp("retention") / "default"
    case, ds = make_case(root, data="default", n=3000,
                         extra={"serving": {"retention": "5d"}, "monitoring": {"window": "1d", "min_window_rows": 50}})
    b = bundle(ds, family="logistic", threshold=0.3)
    b.reference = build_reference(ds, b)
    register(case, b, aliases=["champion"])
    recs = records(ds, "test", 600) + records(ds, "train", 600)
    scores = b.scores(pd.DataFrame(recs)[b.features])
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for k, (rec, s) in enumerate(zip(recs, scores, strict=True)):
        day = k // 120
        if day >= 7:  # the last days drift: balance doubled
            rec = {**rec, "balance": rec["balance"] * 2}
        rows.append(row(f"q{k:04d}", T0 + day * DAY + rng.uniform(0, DAY - 1), f"loan-{k}", rec, score=float(s),
                        decision="flag" if s >= 0.3 else "auto"))
        labels.append({"request_id": f"q{k:04d}", "label": "Yes" if rng.random() < s else "No"})
    return {"root": root, "case": case, "rows": rows, "labels": labels}


def fresh_log(d, tmp_path) -> Path:
    path = tmp_path / "predictions.db"
    log = PredictionLog(str(path))
    log.write(d["rows"])
    log.add_labels(d["labels"])
    log.close()
    return path


KEPT = ("n", "decisions", "fallback", "realized", "estimated", "labels")


def test_retention_keeps_the_monitoring_report_of_a_pruned_window(served_days, tmp_path):
    from mlcase.monitor import monitor

    case, log = served_days["case"], fresh_log(served_days, tmp_path)
    before = monitor(case, log=str(log))
    assert len(before.windows) == 10
    out = apply_retention(case, log=str(log), now="2026-01-15T06:00:00Z")
    assert out["before"] == "2026-01-10T00:00:00.000000Z" and len(out["archived_windows"]) == 5
    assert out["stores"][-1]["rows"] == 5 * 120 * 2  # predictions and their labels
    con = sqlite3.connect(log)
    assert con.execute("SELECT min(ts) FROM predictions").fetchone()[0] >= "2026-01-10"
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 600
    con.close()
    after = monitor(case, log=str(log))
    assert len(after.windows) == 10
    for old, new in zip(before.windows[:5], after.windows[:5], strict=True):
        assert new["archived"] is True and new["window"] == old["window"]
        for key in KEPT:
            assert json.dumps(new[key], sort_keys=True, default=str) == json.dumps(old[key], sort_keys=True,
                                                                                   default=str), key
        assert {f: s["psi"] for f, s in new["drift"].items()} == pytest.approx(
            {f: s["psi"] for f, s in old["drift"].items()})
    for old, new in zip(before.windows[5:], after.windows[5:], strict=True):  # the live windows are as they were
        assert "archived" not in new and new["n"] == old["n"]
    assert [a["window"] for a in after.alerts] == [a["window"] for a in before.alerts]


@pytest.mark.timeout(300)  # a hang guard for the failpoint wait, not a timing assertion
def test_retention_killed_mid_way_keeps_every_row_and_a_rerun_finishes(served_days, tmp_path):
    case, log = served_days["case"], fresh_log(served_days, tmp_path)
    argv = ["retention", str(case.root), "--log", str(log), "--now", "2026-01-15T06:00:00Z"]
    run_until_failpoint(argv, "retention:log-before-commit", tmp_path)
    con = sqlite3.connect(log)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 1200  # nothing went
    assert not con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'monitor_archive'").fetchone()[0]
    con.close()
    done = subprocess.run([MLCASE, *argv, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 1200
    con = sqlite3.connect(log)
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 600
    assert con.execute("SELECT count(*) FROM monitor_archive").fetchone()[0] == 5
    con.close()


def test_dead_man_gap_inside_the_log_and_owners_on_every_alert(served_days, tmp_path):
    from mlcase.monitor import monitor

    case = served_days["case"]
    rows = [r for r in served_days["rows"] if not r[1].startswith(("2026-01-08", "2026-01-09", "2026-01-10"))]
    path = tmp_path / "gap.db"
    log = PredictionLog(str(path))
    log.write(rows)
    log.close()
    case.spec.monitoring.dead_man_windows = 3
    try:
        result = monitor(case, log=str(path))
    finally:
        case.spec.monitoring.dead_man_windows = None
    gaps = [a for a in result.alerts if a["kind"] == "no_traffic"]
    assert [(a["window"], a["value"]) for a in gaps] == [("2026-01-08T00:00:00Z", 3)]
    assert gaps[0]["owner"] == "unassigned"  # this case names no owner: said so, not dropped
    assert all(a.get("owner") for a in result.alerts)
    drift = [a for a in result.alerts if a["kind"] == "drift"]
    assert drift and result.to_dict()["alerts_by_owner"]


# --------------------------------------------------------------------------- owners, notify, dead man
def test_every_alert_kind_maps_to_an_owner():
    from mlcase.spec import parse_spec

    spec = parse_spec("""name: o
decision: d
task: binary
owner: credit team
owners: {data: warehouse team, serving: platform team, finance: cfo office}
monitoring: {alert_owners: {realized_cost: finance, review_backlog: ops desk}}
data: {source: d.csv, target: y}
""")
    got = {r["alert"]: r["owner"] for r in owners.routing_table(spec)}
    assert got["drift"] == got["stale_features"] == "warehouse team"
    assert got["fallback"] == got["no_traffic"] == got["monitoring_gap"] == "platform team"
    assert got["realized_cost"] == "cfo office" and got["review_backlog"] == "ops desk"
    assert got["estimated_cost"] == got["assumption"] == got["guardrail"] == "credit team"  # no model owner: owner
    assert set(got) == set(owners.ALERT_ROLES)


HOOK = """import json, os, sys
doc = json.load(sys.stdin)
with open(os.path.join(sys.argv[1], os.environ["MLCASE_OWNER"].replace(" ", "_") + ".json"), "w") as fh:
    json.dump({"env_case": os.environ["MLCASE_CASE"], **doc}, fh)
"""


def test_an_alert_runs_its_owners_notify_command_with_the_right_json(tmp_path):
    out = tmp_path / "sent"
    out.mkdir()
    (tmp_path / "hook.py").write_text(HOOK)
    write_spec(tmp_path, {"monitoring": {"notify": [[sys.executable, "hook.py", str(out)],
                                                    {"command": f"{sys.executable} -c 'import sys; sys.exit(3)'",
                                                     "owners": ["serving"]},
                                                    "no-such-program-here"],
                                         "notify_timeout": "20s"}})
    case = load_case(tmp_path)
    alerts = owners.assign([
        {"kind": "drift", "feature": "balance", "window": "2026-01-05T00:00:00Z", "value": 0.4, "threshold": 0.25,
         "message": "balance: PSI 0.400"},
        {"kind": "fallback", "feature": None, "window": "2026-01-05T00:00:00Z", "value": 0.2, "threshold": 0.05,
         "message": "20% fallback"},
        {"kind": "stale_features", "feature": "balance", "window": "2026-01-06T00:00:00Z", "value": 0.5,
         "threshold": 0.05, "message": "balance stale"}], case.spec)
    results = notify(case, alerts)
    sent = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(sent) == {"warehouse_team", "platform_team"}
    data = sent["warehouse_team"]
    assert data["owner"] == "warehouse team" and data["case"] == data["env_case"] == "gov"
    assert [a["kind"] for a in data["alerts"]] == ["drift", "stale_features"] and data["n_alerts"] == 2
    assert data["alerts"][0]["value"] == 0.4 and all(a["owner"] == "warehouse team" for a in data["alerts"])
    assert [a["kind"] for a in sent["platform_team"]["alerts"]] == ["fallback"]
    by = {(r["owner"], r["command"]): r for r in results}
    assert by[("platform team", Path(sys.executable).name)]["ok"] in (True, False)
    failed = [r for r in results if not r["ok"]]
    assert {r["error"].split(" ")[0] for r in failed} == {"exited", "no"}  # exit 3 (platform only), missing program
    assert len(results) == 2 + 1 + 2


def test_a_notify_command_past_its_time_limit_is_stopped(tmp_path):
    write_spec(tmp_path, {"monitoring": {"notify": [[sys.executable, "-c", "import time; time.sleep(60)"]],
                                         "notify_timeout": "1s"}})
    case = load_case(tmp_path)
    res = notify(case, owners.assign([{"kind": "drift", "message": "x"}], case.spec))
    assert not res[0]["ok"] and "notify_timeout" in res[0]["error"]   # stopped, not waited for (a 60 s sleep)


def test_the_dead_mans_switch_fires_after_n_empty_windows(tmp_path):
    write_spec(tmp_path, {"monitoring": {"window": "1d", "dead_man_windows": 3}})
    case = load_case(tmp_path)
    log = PredictionLog(str(tmp_path / "predictions.db"))
    log.write([row(f"r{k}", T0 + k * 3600, f"u{k}", {"balance": 1.0}) for k in range(30)])  # until 01-06 05:00
    log.close()
    deadman.record_heartbeat(case, now="2026-01-06T06:00:00Z")

    def kinds(now):
        return {a["kind"]: a["value"] for a in deadman.silence_alerts(case, now=now)}

    assert kinds("2026-01-09T23:59:00Z") == {}  # two empty days are over (7th, 8th), the 9th is not
    assert kinds("2026-01-10T00:00:01Z") == {"no_traffic": 3, "monitoring_gap": 3}  # the 9th is over: three
    deadman.record_heartbeat(case, now="2026-01-10T01:00:00Z")
    assert kinds("2026-01-10T02:00:00Z") == {"no_traffic": 3}
    doc = deadman.check(case, now="2026-01-11T00:00:00Z")
    assert doc["status"] == "alert" and doc["alerts"][0]["owner"] == "platform team"
    assert doc["last_prediction"] == "2026-01-06T05:00:00Z"


def test_deadman_command_exits_1_and_notifies(tmp_path, capsys):
    from mlcase.cli import main

    out = tmp_path / "sent"
    out.mkdir()
    (tmp_path / "hook.py").write_text(HOOK)
    write_spec(tmp_path, {"monitoring": {"window": "1h", "dead_man_windows": 2,
                                         "notify": [[sys.executable, "hook.py", str(out)]]}})
    log = PredictionLog(str(tmp_path / "predictions.db"))
    log.write([row("r1", T0, "u1", {"balance": 1.0})])
    log.close()
    assert main(["deadman", str(tmp_path), "--now", "2026-01-05T03:30:00Z"]) == 1
    err = capsys.readouterr().err
    assert "platform team: 2 alert(s)" in err and "no prediction arrived for 2 window(s) of 1h" in err
    sent = json.loads((out / "platform_team.json").read_text())
    assert sent["source"] == "deadman" and {a["kind"] for a in sent["alerts"]} == {"no_traffic", "monitoring_gap"}
    assert main(["deadman", str(tmp_path), "--now", "2026-01-05T02:30:00Z", "--no-notify"]) == 0


def test_the_sqlalchemy_log_and_a_compacted_parquet_store_are_erased_and_pruned_alike(tmp_path):
    """The same interface on a SQLAlchemy URL and on a folder of Parquet files (how a compacted log plugs in)."""
    from mlcase.governance import stores as S

    root = tmp_path / "case"
    write_spec(root, {"serving": {"retention": "2d"}})
    case = load_case(root)
    url = f"sqlite:///{root / 'shared.db'}?timeout=30"  # a URL with a query: the SQLAlchemy backend
    log = PredictionLog(url)
    log.write([row(f"r{k}", T0 + k * 3600, ["ana@example.com", "ben@example.com"][k % 2], {"balance": 1.0})
               for k in range(96)])  # four days, hourly
    log.add_labels([{"request_id": f"r{k}", "label": "No"} for k in range(96)])
    log.close()
    compacted = root / "compacted"
    (compacted / "date=2026-01-05").mkdir(parents=True)
    (compacted / "date=2026-01-08").mkdir(parents=True)
    frame = pd.DataFrame({"request_id": [f"p{k}" for k in range(10)], "ts": [iso(T0 + k * 3600) for k in range(10)],
                          "unit_id": ["ana@example.com", "ben@example.com"] * 5, "score": 0.1})
    frame.to_parquet(compacted / "date=2026-01-05" / "part-0.parquet", index=False)
    frame.assign(ts=[iso(T0 + 3 * DAY + k) for k in range(10)]).to_parquet(
        compacted / "date=2026-01-08" / "part-0.parquet", index=False)

    def factory(case, target):
        return [S.ParquetLogStore(compacted)]

    S.register_store(factory)
    try:
        receipt = forget(case, "ana@example.com", log=url)
        by = {s["store"]: s["rows"] for s in receipt["stores"]}
        assert by == {"compacted log": 10, "prediction log": 48 + 48}
        assert scan(list(compacted.rglob("*.parquet")), "ana@example.com") == []
        out = apply_retention(case, log=url, now="2026-01-08T12:00:00Z", dry_run=True)
        assert out["before"] == "2026-01-06T00:00:00.000000Z"
        assert {s["store"]: s["rows"] for s in out["stores"]} == {"compacted log": 5, "prediction log": 12 + 12}
        window = {"window": "2026-01-05T00:00:00Z", "start": "2026-01-05T00:00:00Z", "n": 12}
        assert S.PredictionLogStore(url).prune(out["before"], archive=[window], window_s=DAY) == 24
        assert S.ParquetLogStore(compacted).prune(out["before"]) == 5
        assert not (compacted / "date=2026-01-05" / "part-0.parquet").exists()  # emptied: removed
        con = sqlite3.connect(root / "shared.db")
        assert con.execute("SELECT count(*), min(ts) >= '2026-01-06' FROM predictions").fetchone() == (36, 1)
        assert json.loads(con.execute("SELECT data FROM monitor_archive").fetchone()[0])["n"] == 12
        con.close()
    finally:
        S.STORE_FACTORIES.remove(factory)


def test_the_card_and_the_report_show_personal_data_retention_freshness_and_owners(tmp_path):
    from mlcase import cards
    from mlcase.report.sections import governance as section
    from mlcase.spec import dump_spec

    write_spec(tmp_path, {"personal_data": {"email": "to send the holder the outcome"},
                          "data": {"source": "data.csv", "target": "default", "positive": "Yes", "id": "email",
                                   "freshness": {"balance": "1d"}},
                          "serving": {"retention": "180d", "on_stale": "fallback", "log_inputs": {"income": "drop"}},
                          "monitoring": {"notify": ["./page.sh"], "dead_man_windows": 3}})
    case = load_case(tmp_path)
    card = "\n".join(cards._governance(case, case.spec, {}))
    for text in ("| `email` | – | to send the holder the outcome | hashed |", "`income` not kept", "**Retention:** 180d",
                 "`balance` at most 1d old; a stale feature sends the record to the next fallback tier",
                 "| drift | warehouse team | owners.data |", "| fallback | platform team | owners.serving |",
                 "| realized cost | credit team | owner |", "`./page.sh`", "after 3 empty window(s) of 1d"):
        assert text in card, text
    monitoring = {"alerts_by_owner": {"warehouse team": {"n": 2, "kinds": ["stale_features", "drift"]}},
                  "notifications": [{"owner": "warehouse team", "ok": True, "error": None}],
                  "windows": [{"window": "2026-01-05T00:00:00Z", "freshness": {"balance": {
                      "stale_share": 0.5, "unknown_share": 0.25, "age_p50_s": 90000.0}}}]}
    spec = yaml.safe_load(dump_spec(case.spec))
    html = section.build({"case": {"spec": spec}, "monitoring": monitoring})[0].html
    for text in ("to send the holder the outcome", "income not kept", "rows are kept 180d", "warehouse team",
                 "stale features, drift", "sent", "Stale features per window"):
        assert text in html, text


KILLED_WITH_A_COPY = textwrap.dedent("""
    import os, shutil, signal, sys
    from mlcase.case import load_case
    from mlcase.scratch import scratch
    case = load_case(sys.argv[1])
    with scratch(case, "monitor-") as tmp:          # what monitoring's spill holds: the log's rows
        shutil.copy(case.root / "predictions.db", tmp / "spill.db")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_forget_deletes_the_copy_a_killed_command_left_in_the_case_and_names_a_running_ones(stores):
    """A command killed while it held a copy of the log (monitoring's DuckDB spill, in ``.mlcase/scratch`` since
    its copies left the system's temporary folder) cannot delete it: erasure does, and says so; a copy that a
    running command holds is named, not pulled from under it."""
    from mlcase.scratch import scratch, scratch_root

    root, case = stores["root"], stores["case"]
    stores["log"].close()
    with scratch(case, "running-") as mine:                    # held by this process all along
        proc = subprocess.run([sys.executable, "-c", KILLED_WITH_A_COPY, str(root)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        left = [p for p in scratch_root(case).rglob("*") if p.is_file()]
        assert scan(left, "ana@example.com")                   # the killed command's copy holds her rows
        receipt = forget(case, "ana@example.com")
        notes = " ".join(receipt["notes"])
        assert "1 scratch folder(s) that killed commands left in .mlcase/scratch" in notes, notes
        assert "1 command(s) still running hold a scratch copy" in notes, notes
        assert mine.is_dir()
    everything = [p for p in root.rglob("*") if p.is_file()]
    assert scan(everything, "ana@example.com") == []            # no byte of hers anywhere in the case
    assert not scratch_root(case).exists()
    assert "scratch" not in " ".join(forget(case, "ben@example.com")["notes"])   # nothing left to say
