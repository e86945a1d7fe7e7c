"""``mlcase explain`` and ``mlcase card`` against a real registered model (MLflow in a temp folder)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mlcase.cli import main

from ..test_cards import build_trust_case


@pytest.fixture(scope="module")
def registered(tmp_path_factory, churn_df):
    case, ds, bundles = build_trust_case(tmp_path_factory.mktemp("trust_cli"), churn_df, register=True)
    return case, ds, bundles


def _run(argv, capsys, monkeypatch, stdin: str | None = None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_explain_row_by_id_json(registered, capsys, monkeypatch):
    case, ds, bundles = registered
    rows = ds.rows("test")
    rid = str(rows["customer_id"].iloc[3])
    code, out, err = _run(["explain", str(case.root), "--row", rid, "--top", "4", "--json"], capsys, monkeypatch)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == "logistic" and doc["version"] == 1
    r = doc["rows"][0]
    assert r["row"] == rid
    # the prediction is the registered model's score of that row, and the contributions add up to its log-odds
    p = float(bundles["logistic"].scores(rows.iloc[[3]][ds.features])[0])
    assert r["prediction"] == pytest.approx(p, abs=1e-9)
    assert 1 / (1 + np.exp(-r["output"])) == pytest.approx(p, abs=1e-9)
    assert r["sum_check"]["abs_error"] < 1e-9
    assert len(r["contributions"]) == 4 and r["output_space"] == "log_odds"
    assert all(c["feature"] in ds.features for c in r["contributions"])
    sizes = [abs(c["contribution"]) for c in r["contributions"]]
    assert sizes == sorted(sizes, reverse=True)  # the top 4, largest first
    # the conformal set rebuilt from the registered bundle's stored calibration: the one the bundle gives here
    from mlcase.conformal import predict_sets

    assert r["conformal"]["alpha"] == 0.1
    assert r["conformal"]["set"] == predict_sets(bundles["logistic"], rows.iloc[[3]][ds.features])[0]


def test_explain_json_record_on_stdin(registered, capsys, monkeypatch):
    case, ds, _ = registered
    record = ds.rows("test").iloc[0][ds.features].to_dict()
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    code, out, err = _run(["explain", str(case.root)], capsys, monkeypatch, stdin=json.dumps([record, record]))
    assert code == 0, err
    assert err.count("P(Yes) = ") == 2
    assert err.count(", decision flag (threshold") + err.count(", decision auto (threshold") == 2  # not "decision 0"
    assert "base value" in err and "all other columns" in err and "linear explainer" in err


@pytest.mark.parametrize("argv, stdin, words", [
    (["--row", "no-such-customer"], None, ["--row 'no-such-customer'", "data.id column 'customer_id'",
                                             "JSON record on stdin"]),
    ([], "{not json", ["stdin is not valid JSON", "pipe one JSON object"]),
    ([], '{"tenure": 3}', ["lacks the model's feature columns", "female"]),
    # bounded: 100,000 levels deep is refused before the parser recurses; more than max_body_bytes is not read
    ([], "[" * 100_000 + "]" * 100_000, ["stdin is nested more than 32 levels deep", "pipe one JSON object"]),
    ([], '[{"tenure": 3}' + ', {"tenure": 3}' * 80_000 + "]", ["stdin has 1,000,001 bytes, more than the limit "
                                                              "of 1,000,000", "send fewer records"]),
])
def test_explain_bad_input_is_one_line_exit_2(registered, capsys, monkeypatch, argv, stdin, words):
    case, _, _ = registered
    code, out, err = _run(["explain", str(case.root), *argv], capsys, monkeypatch, stdin=stdin)
    assert code == 2, err
    assert err.startswith("mlcase: error: ") and err.count("\n") == 1
    for w in words:
        assert w in err


def test_explain_numeric_column_given_text(registered, capsys, monkeypatch):
    case, ds, _ = registered
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in ds.rows("test").iloc[0][ds.features].items()}
    record["tenure"] = "long"
    code, _, err = _run(["explain", str(case.root)], capsys, monkeypatch, stdin=json.dumps(record))
    assert code == 2 and "column 'tenure' expected a number, got 'long'" in err


def test_card_command_writes_and_logs_to_the_registered_version(registered, capsys, monkeypatch):
    from mlcase import results, tracking

    case, _, _ = registered
    code, out, err = _run(["card", str(case.root), "--json"], capsys, monkeypatch)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["markdown"].endswith("model_card.md") and doc["html"].endswith("model_card.html")
    logged = doc["logged"]
    assert logged["version"] == 1
    cov = results.load(case, "conformal")["coverage"]
    assert f"{100 * cov:.1f}%" in (case.root / "model_card.md").read_text()
    # the card is an artifact of the version's run, and the version points at it
    version = next(v for v in tracking.versions(case) if v["version"] == 1)
    assert version["tags"]["mlcase.model_card"] == logged["artifact_uri"]
    listed = {f.path for f in tracking.client(case).list_artifacts(logged["run_id"], "model_card")}
    assert listed == {"model_card/model_card.md", "model_card/model_card.html"}
    # the report links the card from its trust section
    from mlcase.report.render import build_report

    page = build_report(case).read_text()
    assert 'href="../model_card.html"' in page and 'id="trust-conformal"' in page
