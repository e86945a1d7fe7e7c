"""Bad arguments to the Python API on a real case (modeldata::wa_churn, two registered versions, a release
history and a prediction log): each is one SpecError naming the argument and the fix, and nothing in the
case folder changes.

Before, ``promote(case, True)`` promoted version 1 and ``promote(case, 1.5)`` too, ``rollback(to=2.9)``
moved the champion to version 2, ``history(limit=-1)`` listed no event of six, ``replay_many(case, [])``
ended in pandas' "No objects to concatenate", ``readiness(minimum=-1)`` passed every case, and
``load_bundle(version='abc')`` (behind ``score_file``, ``ServeSettings``...) was a bare "invalid literal
for int()".
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from mlcase.errors import SpecError
from tests.serving_case import bundle, make_case, records, register


def _snapshot(case) -> dict:
    """Every file of the case folder by its sha256, and the registry's aliases and release events."""
    from mlcase import tracking

    files = {p.relative_to(case.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(case.root.rglob("*")) if p.is_file()}
    return {"files": files, "aliases": tracking.aliases(case),
            "events": [e["run_id"] for e in tracking.release_history(case, limit=1000)]}


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    from fastapi.testclient import TestClient

    from mlcase.releases import promote, rollback
    from mlcase.serve.app import create_app

    root = tmp_path_factory.mktemp("api_bad_input") / "churn"
    case, ds = make_case(root, n=800)
    v1 = register(case, bundle(ds, family="logistic"), aliases=["champion"])
    v2 = register(case, bundle(ds, family="logistic", threshold=0.4))
    promote(case, v2, why="fixture")
    rollback(case, to=v1, why="fixture")
    promote(case, v2, why="fixture again")   # champion: v2; three release events
    recs = records(ds, n=6)
    with TestClient(create_app({"case": str(root), "warmup": 0})) as client:
        answer = client.post("/predict", json=recs)
        assert answer.status_code == 200, answer.text
    ids = [p["request_id"] for p in answer.json()["predictions"]]
    ds.frame.drop(columns=["churn"]).head(20).to_csv(root / "in.csv", index=False)
    return {"case": case, "versions": (v1, v2), "ids": ids}


def _refused(fn, *fragments: str) -> str:
    with pytest.raises(SpecError) as err:
        fn()
    text = str(err.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


BAD_VERSIONS = [True, False, 1.5, 2.9, "abc", "1.5", "", 0, -2, "-1", None, [1], math.nan]


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_promote_refuses_what_is_not_a_registry_version_and_moves_nothing(churn, version):
    from mlcase.releases import promote

    case = churn["case"]
    before = _snapshot(case)
    _refused(lambda: promote(case, version), "version=", "is not a registry version number", "whole number",
             "mlcase models")
    assert _snapshot(case) == before


@pytest.mark.parametrize("to", [True, 2.9, 1.5, "abc", 0, -1, [1]], ids=repr)
def test_rollback_refuses_what_is_not_a_registry_version_and_moves_nothing(churn, to):
    from mlcase.releases import rollback

    case = churn["case"]
    before = _snapshot(case)
    _refused(lambda: rollback(case, to=to), "to=", "is not a registry version number", "mlcase models")
    assert _snapshot(case) == before


@pytest.mark.parametrize("version", ["abc", 1.5, True, 0, [2]], ids=repr)
def test_load_bundle_refuses_a_bad_version_for_every_caller(churn, version):
    from mlcase import tracking

    case = churn["case"]
    before = _snapshot(case)
    _refused(lambda: tracking.load_bundle(case, alias=None, version=version), "version=", "mlcase models")
    _refused(lambda: tracking.load_bundle(case, version=version), "version=", "mlcase models")
    assert _snapshot(case) == before


def test_a_digit_string_and_a_whole_float_are_the_version_they_spell(churn):
    from mlcase import tracking
    from mlcase.arguments import registry_version

    v1, v2 = churn["versions"]
    assert tracking.load_bundle(churn["case"], alias=None, version=str(v1)).version == v1
    assert tracking.load_bundle(churn["case"], alias=None, version=float(v2)).version == v2
    assert registry_version(np.int64(3)) == 3 == registry_version(" 3 ")


def test_score_file_and_serve_settings_refuse_a_bad_version_in_one_line(churn):
    from fastapi.testclient import TestClient

    from mlcase.score import score_file
    from mlcase.serve.app import create_app

    case = churn["case"]
    before = _snapshot(case)
    _refused(lambda: score_file(case, case.root / "in.csv", case.root / "out.csv", version="abc"),
             "version='abc'", "mlcase models")
    assert not (case.root / "out.csv").exists()

    def serve():
        with TestClient(create_app({"case": str(case.root), "version": "abc", "warmup": 0})):
            pass

    _refused(serve, "version='abc'", "mlcase models")
    assert _snapshot(case) == before


@pytest.mark.parametrize("limit", [-1, 0, "x", "3", 2.5, True, None], ids=repr)
def test_history_refuses_a_limit_that_is_not_a_count(churn, limit):
    from mlcase.releases import history

    case = churn["case"]
    before = _snapshot(case)
    assert len(before["events"]) == 3   # promote, rollback, promote
    _refused(lambda: history(case, limit=limit), "limit=", "newest events")
    assert _snapshot(case) == before
    assert len(history(case, limit=2)["events"]) == 2   # a count is still taken as it was


@pytest.mark.parametrize("kwargs, fragments", [
    ({"request_ids": []}, ("request_ids is empty", "last=N")),
    ({"request_ids": ()}, ("request_ids is empty",)),
    ({"request_ids": "abc123"}, ("request_ids='abc123' is one string", "['abc123']")),
    ({"request_ids": [None]}, ("request_ids holds None",)),
    ({"request_ids": [""]}, ("request_ids holds ''",)),
    ({"request_ids": 5}, ("request_ids=5 (int) is not a list of request ids",)),
    ({"last": "3"}, ("last='3'", "whole number")),
    ({"last": 2.5}, ("last=2.5", "fractional part")),
    ({"last": True}, ("last=True", "bool")),
    ({"last": 0}, ("--last 0", "at least 1")),
], ids=repr)
def test_replay_many_refuses_what_names_no_logged_decision(churn, kwargs, fragments):
    from mlcase.releases import replay_many

    case = churn["case"]
    before = _snapshot(case)
    _refused(lambda: replay_many(case, **kwargs), *fragments)
    assert _snapshot(case) == before


def test_replay_many_still_replays_ids_and_the_last_n(churn):
    from mlcase.releases import replay_many

    case, ids = churn["case"], churn["ids"]
    assert [r.request_id for r in replay_many(case, ids[:2])] == ids[:2]
    assert [r.request_id for r in replay_many(case, tuple(ids[2:4]))] == ids[2:4]
    assert len(replay_many(case, last=3)) == 3 and len(replay_many(case, last=3.0)) == 3


@pytest.mark.parametrize("minimum", ["high", "3", -1, -0.5, 7.5, 8, math.nan, math.inf, True], ids=repr)
def test_readiness_refuses_a_minimum_outside_the_scores_range(churn, minimum):
    from mlcase.releases import readiness

    case = churn["case"]
    before = _snapshot(case)
    _refused(lambda: readiness(case, minimum=minimum), "minimum=", "from 0 to 7", "releases.min_readiness")
    assert _snapshot(case) == before


def test_readiness_takes_a_minimum_within_the_range(churn):
    from mlcase.releases import readiness

    for minimum in (0, 5, 7.0):
        r = readiness(churn["case"], minimum=minimum)
        assert r.minimum == minimum and r.passes == (r.score >= minimum)


@pytest.mark.parametrize("version", [True, "abc", 0], ids=repr)
def test_rollout_status_refuses_a_bad_canary_version(churn, version):
    from mlcase.releases import rollout_status

    _refused(lambda: rollout_status(churn["case"], version=version), "version=", "mlcase models")
