"""A policy that flags more test rows than reviewers can take is judged as they can serve it.

mlmRev::Contraception (1,934 women in 60 districts, a group split by district, review capacity 40%) with its target
shuffled: nothing can be learned. The linear baseline's threshold, cut at 37% of the validation rows, flagged 49.4%
of the test rows, and flagging more than random-at-the-capacity may flag is what it "saved" over it ($0.69, 95% CI
$0.16 to $1.23): the case read USE_BASELINE on noise. Now a policy clearly over the capacity on the test rows is
counted with its top 40% by score flagged."""

from __future__ import annotations

import numpy as np
import pytest

from mlcase import results
from mlcase.case import load_case

from .tables import BY_ID, run_case


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory, empty_store):
    table = BY_ID["contraception-group"]
    df = table.frame().reset_index(drop=True)
    rng = np.random.default_rng(11)
    df["agent"] = rng.choice(list("ABCD"), len(df))       # the draws of the run that read USE_BASELINE
    df[table.target] = rng.permutation(df[table.target].to_numpy())
    excl = (table.spec.get("data", {}).get("features", {}) or {}).get("exclude", [])
    folder = table.write(tmp_path_factory.mktemp("shuffled") / "contraception", df,
                         data={**table.spec.get("data", {}), "features": {"exclude": [*excl, "agent"]}},
                         slices=[*table.spec.get("slices", []), "agent"])
    return folder, run_case(folder, empty_store, "--budget", "8s", codes=(0,))


def test_a_baseline_over_the_capacity_on_noise_is_not_used(shuffled):
    folder, summary = shuffled
    assert summary["decision"] in ("NO_GO", "INCONCLUSIVE"), summary["reasons"]
    ev = results.load(load_case(folder), "evaluation")
    held = ev["capacity_check"]["held_to_capacity"]
    assert "linear" in held and held["linear"]["test_flag_rate"] > 0.45 and held["linear"]["over_capacity_p"] < 0.05
    # held to 40%: its top 40% by score flagged (159 of 397 test rows), and that is the lift the decision reads
    assert held["linear"]["flag_rate"] == pytest.approx(0.4, abs=0.005)
    over = ev["lift_over_model_free"]["linear"]
    assert over["held_to_capacity"] and over["estimate"] == held["linear"]["over_floor"]["estimate"]
    assert over["ci_low"] <= 0
    assert any(r.startswith("linear flagged 49.4% of the test rows, clearly above the review capacity 40%")
               for r in summary["reasons"])
    # a candidate held to the capacity is said once, in the same words, not also as "the threshold chosen on validation"
    said = [r for r in summary["reasons"] if r.startswith(f"{ev['champion_candidate']} flagged")
            or r.startswith("the threshold chosen on validation flags")]
    assert len(said) == (1 if ev["champion_candidate"] in held or ev["capacity_check"]["test_over_capacity"] else 0)
