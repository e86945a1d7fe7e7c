"""Checks out of core: a Parquet source larger than engine.memory_share is profiled by DuckDB under a memory
limit over every row, and the row-level checks run on a uniform sample (ISLR Default in five partitions)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from mlcase.cli import main


@pytest.fixture()
def partitioned(tmp_path, default_df):
    df = default_df.copy()
    df.loc[df.index % 17 == 0, "income"] = np.nan
    (tmp_path / "data").mkdir()
    for k, idx in enumerate(np.array_split(np.arange(len(df)), 5)):
        df.iloc[idx].to_parquet(tmp_path / "data" / f"part-{k}.parquet", index=False)
    spec = {"name": "default", "decision": "review the loan", "task": "binary",
            "data": {"source": "data/*.parquet", "target": "default", "positive": "Yes", "id": "account_id"},
            "costs": {"false_positive": 50, "false_negative": 400}, "constraints": {"review_capacity": 0.1},
            "engine": {"memory_share": 1e-9}}   # any size counts as larger than memory
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path, df


def test_a_source_larger_than_the_memory_share_is_profiled_out_of_core(partitioned, capsys, monkeypatch):
    from mlcase.checks import profile as P

    root, df = partitioned
    monkeypatch.setattr(P, "SAMPLE_ROWS", 3000)
    rc = main(["check", str(root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc in (0, 1)
    prof = out["profile"]
    assert prof["rows"] == len(df) and prof["memory_limit"] == P.MEMORY_LIMIT
    inc = prof["columns"]["income"]
    assert inc["missing"] == int(df["income"].isna().sum())
    assert inc["min"] == pytest.approx(df["income"].min()) and inc["max"] == pytest.approx(df["income"].max())
    assert inc["mean"] == pytest.approx(df["income"].mean(), rel=1e-9)
    assert inc["std"] == pytest.approx(df["income"].std(), rel=1e-9)
    assert inc["quantiles"]["0.5"] == pytest.approx(df["income"].median(), rel=0.02)
    assert prof["columns"]["student"]["top"][0] == df["student"].value_counts().index[0]
    assert abs(prof["columns"]["account_id"]["distinct"] - len(df)) <= 0.1 * len(df)   # HyperLogLog (approximate)
    assert "profiled out of core" in out["note"] and "sample of 3,000 rows" in out["note"]
    assert out["checks"], "the row-level checks ran on the sample"
