"""One outcome, whichever path brings it: `mlcase label`, POST /labels and `mlcase review import`, on
mlmRev::Contraception (use: N/Y, positive Y), with the arguments in either order and files of blanks and repeats."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlcase.data import prepare
from mlcase.serve.app import create_app

from .tables import cli


@pytest.fixture(scope="module")
def served(runs, tmp_path_factory):
    """The contraception case after 40 test rows went through /predict: its folder and their request ids."""
    run = runs.copy("contraception-group", tmp_path_factory.mktemp("labels") / "case")
    folder = run["folder"]
    rows = prepare(run["case"]).rows("test").drop(columns=["use"]).head(40)
    with TestClient(create_app({"case": str(folder), "warmup": 0})) as client:
        answer = client.post("/predict", json=json.loads(rows.to_json(orient="records")))
        assert answer.status_code == 200, answer.text
    body = answer.json()
    ids = [a["request_id"] for a in (body["predictions"] if isinstance(body, dict) else body)]
    return folder, ids


def _stored(folder, ids) -> dict:
    con = sqlite3.connect(folder / "predictions.db")
    try:
        marks = ",".join("?" * len(ids))
        return {r: lab for r, lab in con.execute(f"SELECT request_id, label FROM labels WHERE request_id IN ({marks}) "
                                                 "ORDER BY rowid", ids)}
    finally:
        con.close()


def test_swapped_arguments_name_the_order_and_the_command_to_run(served, tmp_path):
    folder, ids = served
    pd.DataFrame({"request_id": ids[:2], "label": ["Y", "N"]}).to_csv(tmp_path / "labels.csv", index=False)
    for command in (["label"], ["review", "import"]):
        code, _, err = cli(*command, folder, tmp_path / "labels.csv")
        line = err.strip()
        assert code == 2 and "\n" not in line, err
        # it read the labels file as the case spec: "labels.csv: expected a YAML mapping at the top level"
        assert f"mlcase {' '.join(command)} takes the file first, then the case" in line, line
        assert f"run `mlcase {' '.join(command)} {tmp_path / 'labels.csv'} {folder}`" in line, line
    assert _stored(folder, ids[:2]) == {}   # nothing was attached


def test_blank_and_repeated_labels_are_counted_as_what_they_are(served, tmp_path):
    folder, ids = served
    pd.DataFrame({"request_id": [ids[2], ids[3], ids[3], ids[4]], "label": ["Y", "N", "N", None]}).to_csv(
        tmp_path / "some.csv", index=False)
    code, _, err = cli("label", tmp_path / "some.csv", folder)
    said = " ".join(err.split())
    # it said "attached 4 label(s)": one of them blank, one a repeat stored twice
    assert code == 0 and "attached 2 label(s)" in said and "1 blank label(s) stored as no outcome yet" in said, said
    assert "1 row(s) repeating a label of the same request skipped" in said, said
    con = sqlite3.connect(folder / "predictions.db")
    try:
        n = con.execute("SELECT COUNT(*) FROM labels WHERE request_id = ?", (ids[3],)).fetchone()[0]
    finally:
        con.close()
    assert n == 1
    code, out, _ = cli("label", tmp_path / "some.csv", folder, "--json")
    doc = json.loads(out)
    assert (doc["attached"], doc["blank"], doc["repeated"]) == (3, 1, 1)


def test_the_api_takes_a_class_as_the_file_does_and_stores_the_class(served, tmp_path):
    folder, ids = served
    sent = {ids[5]: "y", ids[6]: 1, ids[7]: True, ids[8]: "no", ids[9]: 0, ids[10]: "Y"}
    with TestClient(create_app({"case": str(folder), "warmup": 0})) as client:
        answer = client.post("/labels", json=[{"request_id": r, "label": v} for r, v in sent.items()])
        # 1, true and 'y' for 'Y' were refused here and accepted by `mlcase label`
        assert answer.status_code == 200, answer.text
        assert answer.json()["attached"] == 6 and answer.json()["blank"] == 0
        bad = client.post("/labels", json=[{"request_id": ids[11], "label": "maybe"}])
        assert bad.status_code == 422 and "one of the classes of 'use'" in bad.json()["message"], bad.json()
    assert _stored(folder, list(sent)) == {ids[5]: "Y", ids[6]: "Y", ids[7]: "Y", ids[8]: "N", ids[9]: "N",
                                          ids[10]: "Y"}
    # the file path stores the same spelling of the same outcomes
    pd.DataFrame({"request_id": [ids[12], ids[13]], "label": ["yes", "0"]}).to_csv(tmp_path / "f.csv", index=False)
    assert cli("label", tmp_path / "f.csv", folder)[0] == 0
    assert _stored(folder, [ids[12], ids[13]]) == {ids[12]: "Y", ids[13]: "N"}


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_review_file_says_it_is_empty(served, tmp_path, content):
    folder, _ = served
    (tmp_path / "queue.csv").write_bytes(content)
    code, _, err = cli("review", "import", tmp_path / "queue.csv", folder)
    line = err.strip()
    # it read "cannot read it (EmptyDataError: No columns to parse from file)"
    assert code == 2 and "\n" not in line and "review file queue.csv is empty" in line, line
    assert "EmptyDataError" not in line and "mlcase review export" in line
