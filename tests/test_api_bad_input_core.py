"""Bad input to the Python API (every command is also a function), found by a probe that called the functions as a
notebook user gets them wrong. Each is a one-line error of mlcase's own naming the argument and the fix, and
nothing written before is lost; before, each was a bare TypeError/ValueError from deep inside, or worse, was
accepted: a card written from no results replaced the last run's card, and ``only=['nope']`` ran no check and
returned a clean report. The case is ISLR::Default (10,000 loans; 4,000 here), served by a fitted bundle.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mlcase.errors import MlcaseError, ModelError, NotFoundError, SpecError

from .serving_case import bundle, make_case


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    case, ds = make_case(tmp_path_factory.mktemp("loans"), data="default")
    return case, ds, bundle(ds, "logistic")


def _one_line(exc: MlcaseError) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_a_card_or_report_from_no_results_refuses_and_keeps_the_last_ones(loans, tmp_path):
    """write_model_card and write_report on a case with no .mlcase replaced an existing card and report with
    empty ones ("Not run" in every section); the CLI refused, the functions did not."""
    import shutil

    from mlcase.cards import write_model_card
    from mlcase.report.render import build_report

    case, _, _ = loans
    folder = tmp_path / "copy"
    shutil.copytree(case.root, folder)
    (folder / "model_card.md").write_text("# the card of the last run\n")
    (folder / "report").mkdir()
    (folder / "report" / "index.html").write_text("<html>the report of the last run</html>")
    for fn in (write_model_card, build_report):
        with pytest.raises(NotFoundError) as err:
            fn(folder)
        assert _one_line(err.value).startswith("no stage results in ") and "run `mlcase run " in str(err.value)
    assert (folder / "model_card.md").read_text() == "# the card of the last run\n"
    assert (folder / "report" / "index.html").read_text() == "<html>the report of the last run</html>"


def test_a_check_name_that_matches_none_is_refused_not_a_clean_report(loans):
    from mlcase.checks import run_checks

    case, ds, _ = loans
    with pytest.raises(SpecError) as err:
        run_checks(case, ds, only=["nope", "leakage"])
    assert _one_line(err.value).startswith("only: no data check is named 'nope'; name checks from: ")
    assert "leakage" in str(err.value)
    one = run_checks(case, ds, only="duplicates")   # one name as a str is that check, not its letters
    assert set(one.ran) == {"duplicate_rows", "duplicate_ids", "duplicate_items"}


def test_paths_and_frames_where_the_other_is_expected(loans, tmp_path):
    from mlcase import load_case
    from mlcase.data import prepare
    from mlcase.review import export_queue
    from mlcase.score import score_file
    from mlcase.serve.predlog import label_file

    case, ds, _ = loans
    frame = pd.read_csv(case.root / "data.csv")
    with pytest.raises(SpecError, match=r"^input: got a DataFrame, not a path; pass a path"):
        score_file(str(case.root), frame, tmp_path / "out.csv")   # the case as a path is fine
    with pytest.raises(SpecError, match=r"^labels file: got a DataFrame, not a path"):
        label_file(case, frame[["loan_id"]])
    with pytest.raises(SpecError, match=r"^-o: got a NoneType, not a path"):
        export_queue(case, None)
    with pytest.raises(SpecError, match=r"^case: got a int, not a path; pass a Case"):
        load_case(42)
    with pytest.raises(SpecError, match=r"^prepare: frame is a list, not a DataFrame"):
        prepare(case, frame=frame.to_dict("records"))
    again = prepare(str(case.root))    # a path, as mlcase.run takes one
    assert len(again.frame) == len(ds.frame)


@pytest.mark.parametrize("kw,words", [
    ({"workers": 0}, "ServeSettings.workers=0 is not a number of worker threads: the smallest is 1"),
    ({"warmup": -1}, "ServeSettings.warmup=-1 is not a number of warm-up predictions: the smallest is 0"),
    ({"max_body_bytes": -1}, "ServeSettings.max_body_bytes=-1 is not a request size in bytes"),
    ({"timeout_ms": -5}, "ServeSettings.timeout_ms -5: not a positive number of milliseconds"),
    ({"log_synchronous": "FAST"}, "log_synchronous 'FAST': not a SQLite synchronous level"),
])
def test_server_settings_out_of_range_are_refused(loans, kw, words):
    from mlcase.serve.app import ServeSettings

    case, _, _ = loans
    with pytest.raises(SpecError) as err:
        ServeSettings(case=case, **kw)
    assert _one_line(err.value).startswith(words)


def test_a_settings_dict_with_an_unknown_key_and_a_bad_log_level_change_nothing(loans, tmp_path):
    from mlcase.serve.app import create_app
    from mlcase.serve.predlog import PredictionLog

    case, _, _ = loans
    with pytest.raises(SpecError, match=r"^create_app: no setting is named 'nope'"):
        create_app({"case": case, "nope": 1})
    target = tmp_path / "logs" / "p.db"
    with pytest.raises(SpecError, match="pass one of OFF, NORMAL, FULL, EXTRA"):
        PredictionLog(str(target), synchronous="NORMAL; DROP TABLE predictions")
    assert not target.parent.exists()            # refused before anything was created


def test_explain_takes_one_record_and_refuses_what_the_server_refuses(loans):
    from mlcase.explain import explain_rows

    _, ds, b = loans
    rows = ds.X_test.head(2).reset_index(drop=True)
    as_frame = explain_rows(b, rows.head(1))
    as_dict = explain_rows(b, rows.iloc[0].to_dict())
    assert as_dict[0]["prediction"] == pytest.approx(as_frame[0]["prediction"])
    with pytest.raises(ModelError) as err:
        explain_rows(b, rows.assign(balance=["high", 1200.0]))
    assert _one_line(err.value).startswith("explain: row 0, column 'balance' expected a number, got ")
    for top in (0, -2, 2.5, True):
        with pytest.raises(ModelError, match=r"^explain: top .* is not a whole number of at least 1"):
            explain_rows(b, rows, top=top)


def test_abtest_resamples_and_assignment_arguments():
    import numpy as np

    from mlcase.abtest import stats
    from mlcase.abtest.assign import assign

    rng = np.random.default_rng(0)
    with pytest.raises(SpecError, match=r"^n_boot 0: not a whole number of resamples"):
        stats.bootstrap_diff(rng.normal(size=50), rng.normal(size=50), 0.05, n_boot=0)
    with pytest.raises(MlcaseError, match=r"^assign: unit_ids is one int, not a list of ids"):
        assign(5, "exp-1")
    with pytest.raises(MlcaseError, match=r"^assign: unit_ids is one str"):
        assign("user-7", "exp-1")
    with pytest.raises(MlcaseError, match=r"^--salt is empty"):
        assign(["a", "b"], None)
    assert len(assign(["a", "b"], "exp-1").frame) == 2


def test_run_takes_the_engine_and_leaves_the_callers_case_as_it_was(loans):
    """mlcase.run had no engine or scheduler (pipeline.run has), and refit="all" was written into the caller's
    Case, so a later mlcase.run(case) of the same object refitted too."""
    import mlcase

    case, _, _ = loans
    before = case.spec.refit
    with pytest.raises(MlcaseError, match="gpu"):
        mlcase.run(case, refit="all", engine="gpu", quiet=True)   # refused before anything is written
    assert case.spec.refit == before
    assert not (case.root / ".mlcase").exists()


def test_the_stages_refuse_what_is_no_prepared_dataset(loans):
    from mlcase.bakeoff import run_bakeoff
    from mlcase.checks import run_checks
    from mlcase.evaluate import evaluate

    case, ds, _ = loans
    for call, where in ((lambda: run_checks(case, None), "run_checks"), (lambda: run_bakeoff(case, ds.frame), "run_bakeoff"),
                        (lambda: evaluate(case, None, {}), "evaluate")):
        with pytest.raises(SpecError) as err:
            call()
        assert _one_line(err.value).startswith(f"{where}: dataset is a ") and "mlcase.data.prepare(case)" in str(err.value)
    with pytest.raises(SpecError, match=r"^evaluate: bundles is None"):
        evaluate(case, ds, None)
    with pytest.raises(SpecError, match=r"^max_trials=-1 is not a number of trials"):
        run_bakeoff(case, ds, max_trials=-1)
    assert not (case.root / "mlflow.db").exists()
