"""No secret in any output: URL redaction through urllib.parse, and the places that show a URI."""

from __future__ import annotations

import io
import json
import logging

import pytest

from mlcase.errors import RedactingStream, redact_deep, redact_text, redact_url


@pytest.mark.parametrize("url, shown", [
    ("postgresql://ana:secret@db.internal/mlcase", "postgresql://***@db.internal/mlcase"),
    # a password holding '@' (and ':'): the userinfo ends at the last '@', as HTTP clients parse it
    ("http://ana:p@ss:w@rd@mlflow.internal:5000", "http://***@mlflow.internal:5000"),
    ("https://ana:p%40ss@h/x?a=1", "https://***@h/x?a=1"),
    ("https://h/api?token=abc&x=1&Password=p&api_key=k&client_secret=s&sig=z",
     "https://h/api?token=***&x=1&Password=***&api_key=***&client_secret=***&sig=***"),
    ("postgresql+psycopg://u:pw@h:5432/db?sslmode=require&password=pw2", "postgresql+psycopg://***@h:5432/db?sslmode=require&password=***"),
    ("sqlite:////abs/path/mlflow.db", "sqlite:////abs/path/mlflow.db"),
    ("sqlite:///rel/mlflow.db?mode=ro", "sqlite:///rel/mlflow.db?mode=ro"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("http://h/#/experiments/1/runs/2", "http://h/#/experiments/1/runs/2"),
    ("file:///tmp/mlartifacts", "file:///tmp/mlartifacts"),
    ("not a url", "not a url"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_finds_every_url_in_a_message():
    msg = ("API request to endpoint /api/2.0/mlflow/runs/get failed: HTTPConnectionPool(host='h') ... "
           "url: http://ana:s3cr@t@h:5000/api/2.0/mlflow/runs/get?run_id=1 ('http://u:pw@x/y')")
    out = redact_text(msg)
    assert "s3cr" not in out and "pw@" not in out and "http://***@h:5000/api/2.0/mlflow/runs/get?run_id=1" in out
    assert redact_deep({"a": [msg, 1, None], "tracking_uri": "http://u:pw@h"}) == {
        "a": [out, 1, None], "tracking_uri": "http://***@h"}


def test_mlflow_view_run_lines_are_off_and_a_stream_redacts_what_is_printed(monkeypatch):
    from mlcase import tracking

    tracking.mlflow()
    import os

    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    buf = io.StringIO()
    stream = RedactingStream(buf)
    stream.write("🏃 View run x at: http://ana:s3cr@t@h:5000/#/experiments/1/runs/2\n")
    assert buf.getvalue() == "🏃 View run x at: http://***@h:5000/#/experiments/1/runs/2\n"
    # a JSON line keeps being valid JSON when a value's URL is redacted
    line = json.dumps({"u": 'http://h/?token=ab\\"cd', "v": "http://a:b@c"})
    buf.truncate(0), buf.seek(0)
    stream.write(line)
    assert json.loads(buf.getvalue()) == {"u": 'http://h/?token=***\\"cd', "v": "http://***@c"}


def test_mlflow_log_records_lose_their_credentials(caplog):
    from mlcase import tracking

    tracking.mlflow()
    log = logging.getLogger("mlflow.tracking.fake")
    handler_out = io.StringIO()
    handler = logging.StreamHandler(handler_out)
    handler.addFilter(tracking._REDACT)
    log.addHandler(handler)
    try:
        log.warning("retrying %s", "http://ana:s3cr@t@h:5000/api")
    finally:
        log.removeHandler(handler)
    assert handler_out.getvalue() == "retrying http://***@h:5000/api\n"


def test_stage_results_and_cli_json_carry_no_credentials(tmp_path, capsys):
    from mlcase import results
    from mlcase.case import case_from_spec
    from mlcase.cli import emit_json

    case = case_from_spec({"name": "r", "decision": "d", "task": "binary",
                           "data": {"source": "d.csv", "target": "y"}}, tmp_path)
    path = results.save(case, "bakeoff", {"tracking_uri": "http://ana:pw@h:5000",
                                          "notes": ["MLflow tracking failed (http://ana:pw@h:5000/api)"]})
    assert "pw" not in path.read_text() and results.load(case, "bakeoff")["tracking_uri"] == "http://***@h:5000"
    emit_json({"error": "cannot reach http://ana:pw@h:5000"})
    assert json.loads(capsys.readouterr().out) == {"error": "cannot reach http://***@h:5000"}


def test_a_card_and_the_models_command_show_the_uri_redacted(tmp_path, monkeypatch):
    from mlcase.cards import card_markdown
    from mlcase.case import case_from_spec

    case = case_from_spec({"name": "r", "decision": "d", "task": "binary", "tracking_uri": "http://ana:pw@h:5000",
                           "data": {"source": "d.csv", "target": "y"}}, tmp_path)
    text = card_markdown(case, {"bakeoff": {"candidate": "logistic", "leaderboard": [{"name": "logistic"}]},
                                "registry": {"candidate_version": 3, "candidate": "logistic"}})
    assert "version 3 in `http://***@h:5000`" in text and "pw" not in text.replace("pwd", "")
