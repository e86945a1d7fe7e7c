"""Assignment: salted SHA-256 buckets, the same in every process; a new salt reshuffles."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlcase.abtest import arm_of, assign, parse_split, read_ids
from mlcase.errors import DataError, MlcaseError

IDS = [f"user-{i}" for i in range(2000)]


def test_bucket_is_the_salted_sha256_of_the_id():
    a = assign(["alice", "bob", 12345], salt="exp-7")
    for uid, bucket in zip(["alice", "bob", "12345"], a.frame["bucket"], strict=True):
        digest = hashlib.sha256(f"exp-7:{uid}".encode()).digest()
        assert bucket == int.from_bytes(digest[:8], "big") * 10_000 // 2**64
    assert list(a.frame["arm"]) == ["control" if b < 5000 else "treatment" for b in a.frame["bucket"]]


def test_same_arm_in_another_process_with_another_hash_seed():
    here = assign(IDS, salt="checkout-2026", split="20/30/50").frame["arm"].tolist()
    code = ("import json, sys; from mlcase.abtest import assign; "
            "ids = [f'user-{i}' for i in range(2000)]; "
            "print(json.dumps(assign(ids, salt='checkout-2026', split='20/30/50').frame['arm'].tolist()))")
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
        assert json.loads(out.stdout) == here


def test_ids_of_different_types_are_one_unit():
    assert arm_of(7, "s") == arm_of("7", "s") == arm_of(7.0, "s") == arm_of(" 7 ", "s")


def test_split_shares_are_honoured():
    ids = np.arange(40_000)
    a = assign(ids, salt="share-test", split="10/90")
    n_control = a.counts()["control"]
    # within a 99.9% binomial band around 10%
    lo, hi = stats.binom.ppf([0.0005, 0.9995], len(ids), 0.10)
    assert lo <= n_control <= hi
    three = assign(ids, salt="share-test", split="34/33/33", arms=["a", "b", "c"]).counts()
    assert set(three) == {"a", "b", "c"}
    for arm, share in zip("abc", (0.34, 0.33, 0.33), strict=True):
        assert stats.binomtest(three[arm], len(ids), share).pvalue > 0.001


def test_changing_the_salt_reshuffles_independently():
    ids = np.arange(20_000)
    a = assign(ids, salt="exp-1").frame["arm"].to_numpy()
    b = assign(ids, salt="exp-2").frame["arm"].to_numpy()
    moved = np.mean(a != b)
    assert 0.48 < moved < 0.52
    # arms of the two experiments are independent: chi-square on the 2x2 table
    table = pd.crosstab(a, b).to_numpy()
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert (assign(ids, salt="exp-1").frame["arm"].to_numpy() == a).all()


def test_assignment_log_records_salt_split_and_time(tmp_path):
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    a = assign(IDS[:50] + IDS[:5], salt="exp-log", split="50/50", now=now)
    assert len(a.frame) == 50  # repeated ids are one unit
    path = a.write(tmp_path / "log.csv")
    log = pd.read_csv(path)
    assert list(log.columns) == ["unit", "arm", "bucket", "salt", "split", "assigned_at", "mlcase_version"]
    assert set(log["salt"]) == {"exp-log"} and set(log["split"]) == {"50/50"}
    assert set(log["assigned_at"]) == {"2026-05-01T12:00:00+00:00"}
    assert log["arm"].tolist() == a.frame["arm"].tolist()


def test_read_ids_from_csv_and_text(tmp_path):
    csv = tmp_path / "users.csv"
    pd.DataFrame({"name": ["a", "b"], "user_id": ["007", "42"]}).to_csv(csv, index=False)
    assert read_ids(csv, "user_id") == ["007", "42"]  # leading zeros kept: ids are text
    txt = tmp_path / "ids.txt"
    txt.write_text("x1\n\nx2\n")
    assert read_ids(txt) == ["x1", "x2"]
    with pytest.raises(DataError, match="--id-col"):
        read_ids(csv, "missing")
    pd.DataFrame({"user_id": ["1", "", "3"]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"empty ids \(lines \[3\]\)"):
        read_ids(csv)


def test_bad_splits_and_arms_are_clear_errors():
    assert parse_split("50/50") == [0.5, 0.5]
    with pytest.raises(MlcaseError, match="add up to 100"):
        parse_split("60/60")
    with pytest.raises(MlcaseError, match="two positive shares"):
        parse_split("100")
    with pytest.raises(MlcaseError, match="one share per arm"):
        assign(IDS, "s", "50/50", arms=["a", "b", "c"])
    with pytest.raises(MlcaseError, match="--salt"):
        assign(IDS, "  ")
