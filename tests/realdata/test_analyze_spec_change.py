"""`mlcase analyze` after case.yaml changed since the run: it reports the case's decision, not the spec's new one."""

from __future__ import annotations


def test_analyze_reports_the_cases_decision_when_the_spec_now_decides_otherwise(runs, tmp_path):
    """modeldata::hpc_data (GO on 866 test jobs, a lift of about $0.13 a job over the linear baseline), then
    constraints.min_lift raised to $5 in case.yaml: `mlcase analyze --json` printed "decision": "USE_BASELINE" with
    the new reasons, while the case's decision, registry and report stayed GO (analyze never changes a verdict). It
    now prints the run's decision and says, in a note, what the spec would decide now and to run again."""
    import contextlib
    import io
    import json

    import yaml

    from mlcase import results
    from mlcase.case import load_case
    from mlcase.cli import main

    folder = runs.copy("hpc-random", tmp_path / "hpc")["folder"]
    ran = results.load(load_case(folder), "decision")
    assert ran["verdict"] in ("GO", "USE_BASELINE"), ran["reasons"]
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec.setdefault("constraints", {})["min_lift"] = 5
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["analyze", str(folder), "--budget", "2s", "--json", "--quiet"])
    assert code == 0, out.getvalue()
    doc = json.loads(out.getvalue())
    assert doc["decision"] == ran["verdict"] and doc["reasons"] == ran["reasons"]
    assert doc["decision_from_spec_now"] not in (None, ran["verdict"])
    assert f"the decision stays {ran['verdict']}" in doc["note"] and "mlcase run" in doc["note"]
    assert results.load(load_case(folder), "decision")["verdict"] == ran["verdict"]
