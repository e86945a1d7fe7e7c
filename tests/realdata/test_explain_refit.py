"""``refit: all``: the model card's SHAP table says which version it explains, and the refit explains itself.

With ``refit: all`` the champion is the evaluated model refitted on every labelled row, a version of its own.
The card named that version ("Registered: version 3") above a SHAP table computed on the evaluated version 1,
with nothing to say so: on MASS::Boston's refitted ensemble lstat's mean |SHAP| is 3.30 and rm's 2.03 against
the table's 2.93 and 2.48. The card now says whose values they are and how to explain the served version.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from mlcase import results, tracking
from mlcase.case import load_case
from mlcase.cli import main
from mlcase.data import load_frame
from mlcase.explain import typical_rows, unwrap

from .tables import BY_ID, run_case


@pytest.fixture(scope="module")
def refitted(tmp_path_factory, empty_store):
    folder = tmp_path_factory.mktemp("refit") / "boston"
    BY_ID["boston-random"].write(folder, candidates=["ridge"], refit="all", bakeoff={"ensemble": False, "bag": False},
                                 analysis={"enabled": False}, evaluation={"bootstrap": 200})
    run_case(folder, empty_store)
    return folder


def test_the_card_says_its_shap_values_are_the_evaluated_version(refitted):
    case = load_case(refitted)
    refit = results.load(case, "registry")["refit"]
    assert refit["rows_seen"] == 506 and refit["evaluated_rows_seen"] < 506
    card = " ".join((refitted / "model_card.md").read_text().split())
    assert f"version {refit['refit_version']} in" in card   # the card describes the refit
    assert (f"These are the SHAP values of version {refit['evaluated_version']}, the model evaluated on the test rows "
            f"({refit['evaluated_rows_seen']} training rows); version {refit['refit_version']} is it refitted on all "
            f"506 labelled rows") in card
    assert f"`mlcase explain --version {refit['refit_version']}`" in card


def test_the_refit_version_is_explained_as_shap_explains_it(refitted):
    import shap

    case = load_case(refitted)
    version = results.load(case, "registry")["refit"]["refit_version"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["explain", str(refitted), "--row", "7", "--version", str(version), "--top", "20", "--json"])
    assert code == 0
    doc = json.loads(out.getvalue())
    assert doc["version"] == version
    row = doc["rows"][0]
    bundle = tracking.load_bundle(case, version=version)
    X = load_frame(case)[bundle.features].iloc[[7]].reset_index(drop=True)
    model, _ = unwrap(bundle.model)
    pre, est = model[:-1], model[-1]
    sv = shap.LinearExplainer(est, shap.maskers.Independent(pre.transform(typical_rows(bundle, X)), max_samples=1))(
        pre.transform(X))
    want: dict[str, float] = {}
    for name, v in zip(pre.get_feature_names_out(), sv.values[0], strict=True):
        col = str(name).removeprefix("missingindicator_").split("_sp_")[0]
        want[col] = want.get(col, 0.0) + float(v)
    got = {c["feature"]: c["contribution"] for c in row["contributions"]}
    assert got == pytest.approx({f: want.get(f, 0.0) for f in bundle.features}, abs=1e-9)
    assert row["output"] == pytest.approx(float(np.asarray(bundle.scores(X))[0]), abs=1e-9)
    assert row["sum_check"]["abs_error"] < 1e-9
