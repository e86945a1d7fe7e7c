"""Know why: where the model loses money, whether more labels would pay, and which labels look wrong.

The analysis stage runs after the evaluation (``analysis.enabled``) and again on demand with
``mlcase analyze CASE`` (from what the run stored, without re-running the bake-off):

- :mod:`.slices`: weak-slice discovery with a hybrid "fallback in this slice, candidate
  elsewhere" evaluated on the validation rows and judged on the test rows (Holm-corrected);
- :mod:`.curve`: the learning curve, an inverse power law with a bootstrap band, money at
  2x and 4x the labels, and how many more labels would settle an undecided lift;
- :mod:`.groups`: what each group of columns (``feature_groups``) is worth per decision;
- :mod:`.labels`: label issues (cleanlab) and near-duplicates with conflicting labels,
  exported for a reviewer to ``<case>/label_audit.csv``;
- :mod:`.refits`: the cross-validated refits the curve and the groups share, within
  ``analysis.time_share`` of the run's budget;
- :mod:`.core`: :func:`analyze` and :func:`analyze_case`.
"""

from __future__ import annotations

from .core import (
    OOF_FILE,
    VALID_FILE,
    analyze,
    analyze_case,
    check_spec,
    load_oof,
    not_applicable,
    oof_scores,
    save_valid_scores,
)
from .curve import fit_power_law, learning_curve, power_law, settle
from .labels import AUDIT_FILE, conflicts_said, flagged_said, label_issues, near_duplicates
from .slices import Part, Slice, find_weak_slices, holm

__all__ = ["AUDIT_FILE", "OOF_FILE", "VALID_FILE", "Part", "Slice", "analyze", "analyze_case", "check_spec",
           "conflicts_said", "find_weak_slices", "flagged_said", "fit_power_law", "holm", "label_issues", "learning_curve", "load_oof", "not_applicable",
           "near_duplicates", "oof_scores", "power_law", "save_valid_scores", "settle"]
