"""`mlcase analyze`'s text says what its numbers hold (ISLR::Smarket, split by time).

The text read "1 tried on the test rows" where four more slices were tried on their error rate (and counted in
Holm's correction), and said nothing where no feature group was refitted within the analysis' time share (only
``--json`` had them, under ``feature_groups_not_measured``).
"""

from __future__ import annotations

import pytest

from mlcase import results
from mlcase.cli import main

pytestmark = pytest.mark.slow


def test_the_text_counts_the_error_slices_and_names_the_feature_groups_not_measured(runs, tmp_path, capsys):
    run = runs.copy("smarket-time", tmp_path / "smarket")
    capsys.readouterr()
    # a budget whose time share refits few or no feature groups, as a short `analyze` on a busy machine does
    assert main(["analyze", str(run["folder"]), "--budget", "1s"]) == 0
    text = " ".join(capsys.readouterr().err.split())
    an = results.load(run["case"], "analysis")
    money, error = len(an["slices"].get("money") or []), len(an["slices"].get("error") or [])
    if error:
        assert f"{money} tried on the test rows for money, {error} for their error rate;" in text, text
    else:
        assert f"{money} tried on the test rows;" in text, text
    fg = an.get("feature_groups") or {}
    if fg.get("skipped"):
        assert f"feature groups: {fg['skipped']}" in text, text
    elif fg.get("not_measured"):
        assert f"feature groups: {len(fg['not_measured'])} not measured within analysis.time_share" in text, text
        assert all(g in text for g in fg["not_measured"][:8])
    else:   # every group measured: each is printed with its worth
        assert all(f"feature group {g['group']}: worth" in text for g in fg.get("groups") or []
                   if g.get("worth_per_decision"))
    if not (error or fg.get("not_measured") or fg.get("skipped")):
        pytest.skip("this run tried no error slice and measured every feature group: nothing new to read")
