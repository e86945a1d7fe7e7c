"""Governance against the real server (`mlcase serve` on 127.0.0.1): the log keeps only what it may, a
stale feature goes to the next fallback tier, monitoring reports the stale share and notifies its owner,
and `mlcase forget` erases a subject while the server keeps serving.

The case: ISLR ``Default`` (3,000 accounts) with a made-up e-mail per account as ``data.id``, declared
personal data (so the log keeps it hashed); ``income`` is logged hashed too; ``balance`` may be at most a
day old and a stale one sends the record past every tier that reads it (the model), to the rule
``student = 'Yes'``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.test_server import mlcase_serve
from tests.serving_case import bundle, default_frame, register

pytestmark = pytest.mark.slow
MLCASE = str(Path(sys.executable).parent / "mlcase")
N = 300
HOOK = """import json, os, sys
with open(os.path.join(sys.argv[1], os.environ["MLCASE_OWNER"].replace(" ", "_") + ".json"), "w") as fh:
    fh.write(sys.stdin.read())
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from mlcase.case import load_case
    from mlcase.data import prepare
    from mlcase.monitor import build_reference

    root = tmp_path_factory.mktemp("gov") / "default"
    root.mkdir()
    df = default_frame(3000).drop(columns=["loan_id"])
    df.insert(0, "email", [f"holder.{k:05d}@example.org" for k in range(len(df))])
    df.to_csv(root / "data.csv", index=False)
    sent = root / "sent"
    sent.mkdir()
    (root / "hook.py").write_text(HOOK)
    spec = {"name": "gov-default", "decision": "which accounts go to manual review", "task": "binary",
            "owner": "credit team", "owners": {"data": "warehouse team", "serving": "platform team"},
            "data": {"source": "data.csv", "target": "default", "positive": "Yes", "id": "email",
                     "freshness": {"balance": "1d"}},
            "personal_data": {"email": "to tell the holder the outcome of the review"},
            "baselines": ["majority", {"rule": "student = 'Yes'"}],
            "serving": {"fallback": ["rule", "constant"], "log_inputs": {"income": "hashed"}, "on_stale": "fallback"},
            "monitoring": {"min_window_rows": 20, "notify": [[sys.executable, "hook.py", str(sent)]]}}
    (root / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(root)
    ds = prepare(case)
    b = bundle(ds, family="logistic", threshold=0.2)
    b.reference = build_reference(ds, b)
    register(case, b, aliases=["champion"])
    with mlcase_serve(root) as (url, proc, ready):
        client = httpx.Client(base_url=url, timeout=60)
        now = datetime.now(UTC)
        test = ds.frame.iloc[ds.split.test[:N]]
        items = []
        for k, (_, r) in enumerate(test.iterrows()):
            rec = {"email": r["email"], "balance": float(r["balance"]), "income": float(r["income"]),
                   "student": r["student"]}
            if k % 2 == 0:
                rec["_as_of"] = {"balance": (now - timedelta(days=3)).isoformat()}  # stale
            elif k % 4 == 1:
                rec["_as_of"] = (now - timedelta(hours=1)).isoformat()  # fresh
            items.append(rec)
        answers = []
        for k in range(0, N, 100):
            r = client.post("/predict", json=items[k:k + 100])
            assert r.status_code == 200, r.text
            answers += r.json()["predictions"]
        yield {"root": root, "case": case, "client": client, "items": items, "answers": answers, "ready": ready,
               "sent": sent, "proc": proc}
        client.close()


def log_files(root: Path) -> list[Path]:
    return [root / "predictions.db", root / "predictions.db-wal"]


def raw_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in log_files(root) if p.exists())


def test_a_stale_feature_goes_to_the_next_fallback_tier(served):
    items, answers = served["items"], served["answers"]
    stale = [a for it, a in zip(items, answers, strict=True) if isinstance(it.get("_as_of"), dict)]
    fresh = [a for it, a in zip(items, answers, strict=True) if isinstance(it.get("_as_of"), str)]
    unknown = [a for it, a in zip(items, answers, strict=True) if "_as_of" not in it]
    assert len(stale) == 150 and len(fresh) == 75 and len(unknown) == 75
    for a in stale:  # the model reads balance: it steps aside; the rule (student only) answers
        assert a["flags"]["stale"] == ["balance"] and a["tier"] == "rule" and a["fallback"] is True
        assert "model: stale: balance is 3d old (data.freshness allows 1d)" in a["reason"]
    for it, a in zip(items, answers, strict=True):
        if isinstance(it.get("_as_of"), dict):
            assert a["decision"] == ("flag" if it["student"] == "Yes" else "auto")  # what the rule says
    assert all(a["flags"]["stale"] == [] and a["tier"] == "model" for a in fresh + unknown)


@pytest.mark.parametrize("as_of, field", [({"balance": "yesterday"}, "_as_of.balance"),
                                          ({"income": "2026-01-01T00:00:00Z"}, "_as_of.income"),
                                          ("2999-01-01T00:00:00Z", "_as_of.balance")])
def test_a_bad_as_of_time_is_a_422_naming_the_field(served, as_of, field):
    rec = {**{k: v for k, v in served["items"][1].items() if k != "_as_of"}, "_as_of": as_of}
    r = served["client"].post("/predict", json=rec)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text


def test_the_openapi_record_documents_as_of(served):
    doc = served["client"].get("/openapi.json").json()
    assert "_as_of" in doc["components"]["schemas"]["Record"]["properties"]


def test_a_hashed_column_never_appears_raw_in_the_log_files_bytes(served):
    import sqlite3

    root, items = served["root"], served["items"]
    data = raw_bytes(root)
    assert len(data) > 100_000 and (root / "predictions.db-wal").exists()  # the server holds the WAL open
    assert b"@example.org" not in data and b"holder." not in data
    incomes = [json.dumps(it["income"]).encode() for it in items]
    assert [i for i in incomes if i in data] == []
    balances = [json.dumps(it["balance"]).encode() for it in items]
    assert sum(b in data for b in balances) > 250  # kept raw, as told (zero balances aside)
    con = sqlite3.connect(f"file:{root / 'predictions.db'}?mode=ro", uri=True)
    units = [r[0] for r in con.execute("SELECT unit_id FROM predictions")]
    inputs = [json.loads(r[0]) for r in con.execute("SELECT inputs FROM predictions")]
    fresh = [json.loads(r[0]) for r in con.execute("SELECT freshness FROM predictions")]
    con.close()
    assert len(units) >= N and all(u.startswith("hmac:") for u in units) and len(set(units)) == len(units)
    assert all(i["income"].startswith("hmac:") and isinstance(i["balance"], float) for i in inputs)
    assert sum(f["stale"] == ["balance"] for f in fresh) == 150


def test_monitoring_reports_the_stale_share_and_notifies_its_owner(served, capsys):
    from mlcase.cli import main

    root = served["root"]
    assert main(["monitor", str(root), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    w = data["windows"][-1]
    assert w["freshness"]["balance"]["stale"] == 150 and w["freshness"]["balance"]["stale_share"] == pytest.approx(
        150 / w["n"])
    assert w["freshness"]["balance"]["unknown_share"] == pytest.approx(75 / w["n"])
    assert "income" not in w["drift"] and "balance" in w["drift"]  # a hashed column's drift is not guessed
    assert any(x["kind"] == "not_logged" and x["feature"] == "income" for x in data["warnings"])
    stale = [a for a in data["alerts"] if a["kind"] == "stale_features"]
    assert len(stale) == 1 and stale[0]["owner"] == "warehouse team"
    assert data["alerts_by_owner"]["warehouse team"]["kinds"][0] in ("stale_features", "drift")
    sent = json.loads((served["sent"] / "warehouse_team.json").read_text())
    assert sent["owner"] == "warehouse team" and sent["case"] == "gov-default" and sent["source"] == "monitor"
    assert [a for a in sent["alerts"] if a["kind"] == "stale_features"][0]["value"] == stale[0]["value"]
    assert {a["owner"] for a in sent["alerts"]} == {"warehouse team"}
    assert [n for n in data["notifications"] if n["owner"] == "warehouse team"][0]["ok"]


def test_review_export_says_what_it_cannot_do_for_a_hashed_feature(served):
    from mlcase.review import export_queue

    out = export_queue(served["case"], served["root"] / "queue.csv", reasons=3)
    assert out["rows"] > 0 and any("no SHAP reasons" in w and "income is hashed" in w for w in out["warnings"])
    assert b"@example.org" not in (served["root"] / "queue.csv").read_bytes()


def test_replay_names_the_hashed_input_it_cannot_read_back(served):
    """The log holds income's hash, not the value the model read: replay refuses that row in words, not with a
    schema error about a string where a number was expected."""
    from mlcase.releases import replay_many

    answered = [a for a in served["answers"] if a["tier"] == "model"][:5]
    replays = replay_many(served["case"], [a["request_id"] for a in answered])
    assert len(replays) == 5 and not any(r.reproduced for r in replays)
    for r in replays:
        (d,) = r.differences
        assert d["what"] == "inputs" and "'income' is hashed in the prediction log" in d["now"]


def test_forget_erases_a_subject_while_the_server_serves(served):
    from mlcase.governance.policy import LogPolicy

    root, case, items = served["root"], served["case"], served["items"]
    who = items[3]["email"]
    hashed = LogPolicy.from_spec(case.spec).unit(who).encode()
    assert hashed in raw_bytes(root)
    done = subprocess.run([MLCASE, "forget", str(root), "--subject", who, "--json"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["rows"] >= 1 and who not in done.stdout and hashed.decode() not in done.stdout
    assert hashed not in raw_bytes(root)  # neither in the database nor in its WAL
    assert b"@example.org" not in (root / "queue.csv").read_bytes()
    again = served["client"].post("/predict", json={k: v for k, v in items[5].items() if k != "_as_of"})
    assert again.status_code == 200 and served["proc"].poll() is None
