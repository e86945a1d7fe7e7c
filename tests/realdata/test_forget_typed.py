"""`mlcase forget` finds every row of a person whatever spelling of their ``data.id`` reached the log: mlmRev's
Contraception women (``data.id: woman``) served with real rows, and one person's id sent in the spellings real
systems give it (Unicode NFC and NFD, a UUID upper case and without hyphens, an e-mail in mixed case, a whole
number as 123.0), logged raw and hashed, with labels, a review queue and a labels file beside the log; and rows an
older version logged (the text as the client sent it, hashed) found too."""

from __future__ import annotations

import sqlite3
import unicodedata

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcase.case import load_case
from mlcase.governance.forget import forget
from mlcase.governance.pseudonym import Pseudonymizer

NFC, NFD = "Jos\u00e9 Garc\u00eda", "Jose\u0301 Garci\u0301a"
UUIDS = ["3f2504e0-4f89-11d3-9a0c-0305e82c3301", "3F2504E0-4F89-11D3-9A0C-0305E82C3301",
         "3f2504e04f8911d39a0c0305e82c3301"]
MAILS = ["Ana.Ruiz@Example.COM", "ana.ruiz@example.com"]
#: (the spelling a user types to forget, the spellings the person reached the server in)
PEOPLE = [(NFC, [NFC, NFD]), (UUIDS[0].upper().replace("-", ""), UUIDS), (MAILS[1], MAILS), ("123.0", [123.0, "123"])]


def _serve(folder, frame: pd.DataFrame, target: str, ids: list) -> list[str]:
    """POST one real row per id to /predict (the row's own features, ``woman`` replaced), then /labels for each."""
    from fastapi.testclient import TestClient

    from mlcase.serve.app import ServeSettings, create_app

    rows = frame.drop(columns=[target]).iloc[:len(ids)]
    recs = [{**{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}, "woman": i}
            for r, i in zip(rows.to_dict("records"), ids, strict=True)]
    with TestClient(create_app(ServeSettings(case=load_case(folder), warmup=0))) as client:
        r = client.post("/predict", json=recs)
        assert r.status_code == 200, r.text
        rids = [p["request_id"] for p in r.json()["predictions"]]
        r = client.post("/labels", json=[{"request_id": q, "label": "Y"} for q in rids])
        assert r.status_code == 200, r.text
    return rids


def _spelled(spellings) -> set:
    """Each spelling, its NFC form and its lower case (what either version may have hashed)."""
    out = set()
    for v in spellings:
        out |= {v} if not isinstance(v, str) else {v, unicodedata.normalize("NFC", v), v.lower()}
    return out


def _bytes(paths, needles) -> list[str]:
    out = []
    for p in paths:
        data = p.read_bytes() if p.is_file() else b""
        out += [n for n in needles if n.encode() in data]
    return out


@pytest.mark.parametrize("how", ["raw", "hashed"])
def test_forget_finds_a_person_in_every_spelling_the_server_took(runs, tmp_path, how, monkeypatch):
    """Old: the server logged each spelling as given, and forget looked for the typed one only: forgetting 'José
    García' (NFC) left its NFD row, the UUID without hyphens left all 3 rows, 'ana.ruiz@example.com' left the
    'Ana.Ruiz@Example.COM' row, and '123.0' (as pandas writes an id) erased 0 of the 2 rows of woman 123. Now the
    log keeps one form (NFC, UUID and e-mail in lower case) and forget looks for it and the older spellings."""
    monkeypatch.setenv("MLCASE_LOG_KEY", "forget-typed-key-0123456789abcdef")
    run = runs.copy("contraception-group", tmp_path / "case")
    assert run["code"] == 0, run["summary"]
    folder, table = run["folder"], run["table"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["serving"] = {**spec.get("serving", {}), "log_inputs": {"woman": how}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(folder)
    frame = table.frame()
    others = [int(v) for v in frame["woman"].iloc[:40] if int(v) != 123]
    sent = [i for _, spellings in PEOPLE for i in spellings]
    _serve(folder, frame, table.target, others + sent)
    db = folder / "predictions.db"
    # rows an older version logged: the text as the client sent it (hashed under that text when hashed)
    pseudo = Pseudonymizer(case.name)
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(predictions)")]
    tmpl = dict(zip(cols, con.execute("SELECT * FROM predictions LIMIT 1").fetchone(), strict=True))
    legacy = [NFD, UUIDS[1], MAILS[0]]
    for k, u in enumerate(legacy):
        tmpl.update(request_id=f"legacy-{k}", unit_id=pseudo("woman", u) if how == "hashed" else u)
        con.execute(f"INSERT INTO predictions ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                    list(tmpl.values()))
    con.commit()
    con.close()
    from mlcase.review import export_queue

    export_queue(case, tmp_path / "queue.csv", include_reviewed=True)
    labels = tmp_path / "labels.csv"
    rids = pd.read_sql("SELECT request_id FROM predictions", sqlite3.connect(db))["request_id"]
    pd.DataFrame({"request_id": rids[~rids.str.startswith("legacy")], "label": "N"}).to_csv(labels, index=False)
    from mlcase.serve.predlog import label_file

    label_file(case, labels)

    def counts():
        c = sqlite3.connect(db)
        try:
            return (c.execute("SELECT count(*) FROM predictions").fetchone()[0],
                    c.execute("SELECT count(*) FROM labels").fetchone()[0])
        finally:
            c.close()

    n_pred, n_lab = counts()
    assert n_pred == len(others) + len(sent) + len(legacy)
    files = [db, db.with_name("predictions.db-wal"), tmp_path / "queue.csv", labels]
    for typed, spellings in PEOPLE:
        # a hash an older version made of another letter case cannot be found from this spelling (see below)
        unfindable = [u for u in legacy if u in spellings and how == "hashed" and u.lower() == typed != u]
        n_rows = len(spellings) + sum(1 for u in legacy if u in spellings) - len(unfindable)
        lab_rows = 2 * len(spellings)   # /labels and the labels file, per served row
        before = pd.read_sql("SELECT request_id, unit_id FROM predictions", sqlite3.connect(db))
        receipt = forget(case, typed)
        by = {s["store"]: s["rows"] for s in receipt["stores"]}
        assert by["prediction log"] == n_rows + lab_rows, (typed, by)
        assert by["labels file"] == len(spellings), (typed, by)
        p, lab = counts()
        assert (n_pred - p, n_lab - lab) == (n_rows, lab_rows), typed
        if unfindable:   # the note says so; forgetting that spelling finds the old row
            assert any("cannot be found: run forget with that spelling" in n for n in receipt["notes"])
            for u in unfindable:
                assert {s["store"]: s["rows"] for s in forget(case, u)["stores"]}["prediction log"] == 1
            p -= len(unfindable)
            assert counts() == (p, lab)
        n_pred, n_lab = p, lab
        after = pd.read_sql("SELECT request_id FROM predictions", sqlite3.connect(db))["request_id"]
        gone = set(before["request_id"]) - set(after)
        texts = [s for s in spellings if isinstance(s, str) and not s.isdigit()]
        needles = sorted({*texts, *(pseudo("woman", f) for f in _spelled(spellings)), *gone})
        assert _bytes(files, needles) == [], typed
    assert n_pred == len(others)                      # every other woman's row is still there
    kept = pd.read_sql("SELECT unit_id FROM predictions", sqlite3.connect(db))["unit_id"]
    assert len(kept) == len(others) and kept.notna().all()


def test_forget_by_a_number_reaches_a_records_file_pandas_wrote_and_the_compacted_log(runs, tmp_path, monkeypatch):
    """A records file of Contraception's own rows as pandas writes it when the id column has a gap (woman 123 is
    '123.0'), beside a hashed log whose older rows `mlcase log compact` moved to Parquet. Old: forget 123 left the
    records file's row (read as the text '123.0', not the unit 123). Now that row goes too, and no byte of the
    unit's hash or its request ids is left in any file of the case."""
    import datetime as dt

    from mlcase.cli import main

    monkeypatch.setenv("MLCASE_LOG_KEY", "forget-typed-key-0123456789abcdef")
    run = runs.copy("contraception-group", tmp_path / "case")
    assert run["code"] == 0, run["summary"]
    folder, table = run["folder"], run["table"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["serving"] = {**spec.get("serving", {}), "log_inputs": {"woman": "hashed"}}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    case = load_case(folder)
    frame = table.frame()
    ids = [int(v) for v in frame["woman"].iloc[:40]]
    ids[0:40:10] = [123, 123.0, "123", " 123 "]           # one woman, as four clients send her id
    rids = _serve(folder, frame, table.target, ids)
    db = folder / "predictions.db"
    con = sqlite3.connect(db)
    t0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    for k, q in enumerate(rids):   # two days of traffic, so the first day can be compacted
        ts = (t0 + dt.timedelta(hours=k * 48 / len(rids))).isoformat(timespec="microseconds").replace("+00:00", "Z")
        con.execute("UPDATE predictions SET ts = ? WHERE request_id = ?", (ts, q))
    con.commit()
    con.close()
    assert main(["log", "compact", str(folder), "--before", "2026-11-21", "--quiet"]) == 0
    parts = list((folder / "predictions.compacted").rglob("*.parquet"))
    assert parts
    records = frame.iloc[:30].copy()
    records["woman"] = records["woman"].astype(float)
    records.loc[records.index[0], "woman"] = 123.0
    records.loc[records.index[5], "woman"] = np.nan          # the gap that makes pandas write 123.0
    records.to_csv(tmp_path / "records.csv", index=False)
    assert "\n123.0," in (tmp_path / "records.csv").read_text()
    hashed = Pseudonymizer(case.name)("woman", "123")
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert _bytes(files, [hashed]) == [hashed]

    receipt = forget(case, 123, files=[tmp_path / "records.csv"])
    by = {s["store"]: s["rows"] for s in receipt["stores"]}
    assert by["records file"] == 1
    assert by["compacted log"] + by["prediction log"] >= 4 + 4      # 4 predictions and their 4 labels
    left = pd.read_csv(tmp_path / "records.csv")
    assert len(left) == 29 and 123.0 not in set(left["woman"])
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 36
    live = con.execute("SELECT request_id FROM predictions").fetchall()
    con.close()
    compacted = pd.concat([pd.read_parquet(p) for p in (folder / "predictions.compacted").rglob("*.parquet")])
    assert set(compacted["request_id"]) | {r[0] for r in live} == set(rids) - set(rids[0:40:10])
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert _bytes(files, [hashed, *rids[0:40:10]]) == []


def test_an_erasure_an_older_version_left_unfinished_is_finished_under_the_new_form(tmp_path, monkeypatch):
    """The journal of an interrupted erasure is named by a keyed hash of the subject: an older version named it by
    the text as given ('Jose\u0301', NFD), this one by the NFC form. The rerun finds the old journal, finishes it
    and leaves none pending (old name only: pending() stayed 1 for ever)."""
    import json

    from mlcase.governance.forget import pending
    from mlcase.governance.stores import Subject, governance_dir

    from ..test_governance import write_spec

    monkeypatch.setenv("MLCASE_LOG_KEY", "forget-typed-key-0123456789abcdef")
    write_spec(tmp_path)
    case = load_case(tmp_path)
    subj = Subject(case, NFD)
    old = governance_dir(case) / f"pending-{subj.journal_key(case, NFD)}.json"
    assert subj.journal_key(case) != subj.journal_key(case, NFD)
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"erasure_id": "e" * 32, "started_at": "2026-01-01T00:00:00Z", "runs": 1,
                               "stores": {}}))
    receipt = forget(case, NFD)
    assert receipt["erasure_id"] == "e" * 32 and receipt["runs"] == 2 and pending(case) == 0


def test_forget_says_how_many_raw_rows_differ_only_in_letter_case(tmp_path, monkeypatch):
    """A raw text id that is not an e-mail or a UUID keeps its letter case (many ids are case-sensitive): forget
    of 'AB-12x' erases it, not 'ab-12X' or 'Ab-12X', and its notes count those 2 rows (without naming them)."""
    from mlcase.serve.predlog import PredictionLog

    from ..test_governance import T0, row, write_spec

    monkeypatch.setenv("MLCASE_LOG_KEY", "forget-typed-key-0123456789abcdef")
    write_spec(tmp_path)
    case = load_case(tmp_path)
    log = PredictionLog(str(tmp_path / "predictions.db"))
    log.write([row(f"r{k}", T0 + k, u, {"balance": 1.0}) for k, u in enumerate(["AB-12x", "ab-12X", "Ab-12X", "cd"])])
    log.close()
    receipt = forget(case, "AB-12x")
    assert receipt["rows"] == 1
    assert any(n.startswith("2 row(s) left in the prediction log have a data.id that differs from the subject only "
                            "in letter case") for n in receipt["notes"])
    assert not any("letter case:" in n for n in forget(case, "cd")["notes"])


def test_a_float_id_past_2_53_is_no_unit_so_forget_never_takes_another_persons_rows(runs, tmp_path, monkeypatch):
    """Two Contraception rows served for two people: 9007199254740992 (a JSON integer) and 9007199254740993.0 (a
    JSON number with a point, which parses as the float 9007199254740992.0). Old: both were logged as unit
    '9007199254740992', so forgetting the first person erased the second's row too (2 predictions, not 1), and
    forgetting 9007199254740993 found nothing. Now the float is no unit (the request id draws its arm), forget
    erases the one row of 9007199254740992, and a float subject past 2**53 is refused."""
    from fastapi.testclient import TestClient

    from mlcase.errors import SpecError
    from mlcase.serve.app import ServeSettings, create_app

    monkeypatch.setenv("MLCASE_LOG_KEY", "forget-typed-key-0123456789abcdef")
    run = runs.copy("contraception-group", tmp_path / "case")
    assert run["code"] == 0, run["summary"]
    folder, table = run["folder"], run["table"]
    row = table.frame().drop(columns=[table.target, "woman"]).iloc[0]
    body = ", ".join(f'"{k}": {v if isinstance(v, (int, float, np.number)) else chr(34) + str(v) + chr(34)}'
                     for k, v in row.items())
    with TestClient(create_app(ServeSettings(case=load_case(folder), warmup=0))) as client:
        for woman in ("9007199254740992", "9007199254740993.0", "17"):
            r = client.post("/predict", content="{" + body + f', "woman": {woman}' + "}",
                            headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
    con = sqlite3.connect(folder / "predictions.db")
    units = [u for (u,) in con.execute("SELECT unit_id FROM predictions ORDER BY ts")]
    con.close()
    assert units == ["9007199254740992", None, "17"]
    case = load_case(folder)
    assert forget(case, "9007199254740992")["rows"] == 1
    assert forget(case, 9007199254740993)["rows"] == 0
    with pytest.raises(SpecError, match="past 2\\*\\*53"):
        forget(case, 9007199254740993.0)
    con = sqlite3.connect(folder / "predictions.db")
    assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 2
    con.close()
