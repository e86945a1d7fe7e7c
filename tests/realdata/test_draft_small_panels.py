"""Tables of a few entities measured many times.

nlme::Glucose2 (7 subjects, 28 glucose readings each) and nlme::Cefamandole (6 subjects) have too few entities
for a group split (10 at least), so `mlcase init` drafts a random split; the sweep's Glucose2 run went GO with
the subject a feature, on test rows of the same 7 people, and nothing in the draft said its GO was about them.
The draft now says so on the `group: null` line. datasets::Theoph's 12 subjects get a group split, as before.
"""

from __future__ import annotations

from .tables import drafted


def test_too_few_entities_for_a_group_split_are_said_in_the_draft(tmp_path):
    spec = drafted(tmp_path / "glucose", "nlme", "Glucose2", "glucose")
    assert spec["data"]["group"] is None and spec["split"]["method"] == "random"
    line = next(x for x in (tmp_path / "glucose" / "case.yaml").read_text().splitlines() if x.startswith("  group:"))
    assert "'Subject' names only 7 entities with several rows each" in line and "not about new ones" in line
    drafted(tmp_path / "cef", "nlme", "Cefamandole", "conc")
    assert "'Subject' names only 6 entities" in (tmp_path / "cef" / "case.yaml").read_text()
    spec = drafted(tmp_path / "theoph", "datasets", "Theoph", "conc")
    assert spec["data"]["group"] == "Subject" and spec["split"]["method"] == "group"
    assert "names only" not in (tmp_path / "theoph" / "case.yaml").read_text()


def test_a_target_named_like_an_identifier_is_said_in_the_draft(tmp_path):
    """mlmRev::Gcsemv's ``student`` (numbered within each school) and stevedata::anes_vote84's ``uid`` (a
    respondent's number) as targets: the sweep's runs went GO and USE_BASELINE on predicting a code. The draft says
    the target is named like an identifier; an outcome with an identifier-free name (ISLR::College's ``Accept``) is
    left alone."""
    drafted(tmp_path / "gcse", "mlmRev", "Gcsemv", "student")
    assert "# note: the target 'student' is named like an identifier (649 different numbers)" in (
        tmp_path / "gcse" / "case.yaml").read_text()
    drafted(tmp_path / "anes", "stevedata", "anes_vote84", "uid")
    assert "the target 'uid' is named like an identifier" in (tmp_path / "anes" / "case.yaml").read_text()
    drafted(tmp_path / "college", "ISLR", "College", "Accept")
    assert "named like an identifier" not in (tmp_path / "college" / "case.yaml").read_text()
