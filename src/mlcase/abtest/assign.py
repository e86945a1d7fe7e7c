"""Deterministic assignment: a salted SHA-256 of the unit id picks the arm.

``sha256(f"{salt}:{unit_id}")`` read as a number in [0, 1) is the unit's
position; the split's cumulative shares cut that interval into arms. The same id
and salt give the same arm on any machine, Python version or process (no use of
Python's randomised ``hash``); a new salt reshuffles everyone, so each experiment
gets its own salt and arms are independent across experiments.

Examples
--------
>>> arm_of("user-42", salt="exp-checkout-2026", split=(50, 50))
'treatment'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, MlcaseError

_FLOAT_INTEGER = re.compile(r"[+-]?\d+\.0+")
BUCKETS = 10_000  # resolution of the split: 0.01%
LOG_COLUMNS = ["unit", "arm", "bucket", "salt", "split", "assigned_at", "mlcase_version"]


def parse_split(split: str | Sequence[float]) -> list[float]:
    """``'50/50'`` or ``'10/45/45'`` (or a sequence) -> shares summing to 1.

    Percentages must add up to 100 (or shares to 1) so a typo is not silently rescaled.
    """
    if isinstance(split, str):
        parts = [p for p in split.replace(",", "/").replace(":", "/").split("/") if p.strip()]
        try:
            weights = [float(p.strip().rstrip("%")) for p in parts]
        except ValueError:
            raise MlcaseError(f"--split {split!r}: expected shares like 50/50 or 34/33/33",
                              "pass the percentage of units per arm, control first, separated by '/'") from None
    else:
        weights = [float(w) for w in split]
    if len(weights) < 2 or any(not w > 0 for w in weights):
        raise MlcaseError(f"--split {split!r}: needs at least two positive shares",
                          "pass e.g. --split 50/50 (control/treatment)")
    total = sum(weights)
    if not (abs(total - 100) < 1e-6 or abs(total - 1) < 1e-9):
        raise MlcaseError(f"--split {split!r}: the shares add up to {total:g}, not 100",
                          "make the percentages add up to 100, e.g. 50/50 or 10/90")
    return [w / total for w in weights]


def default_arms(k: int) -> list[str]:
    """``control, treatment`` for two arms; ``control, treatment_1, ...`` for more."""
    return ["control", "treatment"] if k == 2 else ["control"] + [f"treatment_{i}" for i in range(1, k)]


def unit_position(unit_ids: Iterable, salt: str) -> np.ndarray:
    """Each id's position in [0, 1): the first 8 bytes of ``sha256(f"{salt}:{id}")`` over 2**64."""
    out = []
    for uid in unit_ids:
        digest = hashlib.sha256(f"{salt}:{_id_text(uid)}".encode()).digest()
        out.append(int.from_bytes(digest[:8], "big"))
    return np.asarray(out, dtype=np.uint64).astype(np.float64) / 2.0**64


def _id_text(uid) -> str:
    """Canonical text of an id: ``7``, ``7.0`` and ``'7'`` are the same unit."""
    if isinstance(uid, (float, np.floating)) and float(uid).is_integer():
        return str(int(uid))
    if isinstance(uid, (bool, np.bool_)):
        return str(uid)
    return str(uid).strip()


@dataclass
class Assignment:
    """The arms of a batch of units and how they were drawn."""

    frame: pd.DataFrame     # LOG_COLUMNS
    salt: str
    split: list[float]
    arms: list[str]

    def counts(self) -> dict[str, int]:
        c = self.frame["arm"].value_counts()
        return {a: int(c.get(a, 0)) for a in self.arms}

    def to_dict(self) -> dict:
        return {"salt": self.salt, "split": self.split, "arms": self.arms, "n_units": int(len(self.frame)),
                "counts": self.counts()}

    def write(self, path: str | Path) -> Path:
        """Append-free write of the assignment log (CSV, one row per unit)."""
        path = Path(path)
        # --out naming a folder, or a place nothing can be written, was an internal error (IsADirectoryError,
        # FileNotFoundError under /proc); it is one line naming the path
        if path.is_dir():
            raise MlcaseError(f"--out {path} is a folder", "pass a file path for the log, e.g. --out "
                              f"{path / 'assignments.csv'}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.frame.to_csv(path, index=False)
        except OSError as exc:
            raise MlcaseError(f"--out {path}: cannot write the assignment log there "
                              f"({(exc.strerror or type(exc).__name__).lower()})",
                              "pass --out a file in a folder you may write to") from None
        return path


def assign(unit_ids: Iterable, salt: str, split: str | Sequence[float] = "50/50",
           arms: Sequence[str] | None = None, now: datetime | None = None) -> Assignment:
    """Assign units to arms by a salted hash of their id.

    Parameters
    ----------
    unit_ids : iterable
        Unit ids (users, accounts ...); ``7`` and ``"7"`` are the same unit.
    salt : str
        The experiment's salt; a new salt reshuffles every unit.
    split : str or sequence
        Shares per arm, control first (``"50/50"``, ``"10/90"``, ``(34, 33, 33)``).
    arms : sequence of str, optional
        Arm names (default ``control, treatment`` or ``control, treatment_1 ...``).

    Returns
    -------
    Assignment
        ``frame`` is the assignment log: unit, arm, bucket (0..9999), salt, split,
        assigned_at (UTC ISO-8601) and mlcase_version.
    """
    from .. import __version__

    if not isinstance(salt, str) or not salt.strip():
        raise MlcaseError(f"--salt {'is empty' if isinstance(salt, str) or salt is None else f'{salt!r} is no text'}",
                          "pass a salt unique to this experiment, e.g. --salt checkout-2026-05")
    if isinstance(unit_ids, str | bytes) or not isinstance(unit_ids, Iterable):
        raise DataError(f"assign: unit_ids is one {type(unit_ids).__name__}, not a list of ids",
                        "pass the ids as a list or a column, e.g. assign(frame['user_id'], salt)")
    shares = parse_split(split)
    arms = list(arms) if arms else default_arms(len(shares))
    if any(not str(a).strip() for a in arms):
        # --arms 'a,,b' named an arm '' (the log's arm column then read as missing, which analyze leaves out)
        raise MlcaseError(f"--arms {','.join(map(str, arms))!r} has an empty arm name",
                          "name every arm, comma-separated, e.g. --arms control,treatment")
    widths = np.diff(np.concatenate([[0], np.round(np.cumsum(shares) * BUCKETS).astype(int)]))
    narrow = [f"{w * 100:g}%" for w, b in zip(shares, widths, strict=True) if b < 1]
    if narrow:
        # --split 0.001/99.999 assigned no unit to control: a share under the 0.01% resolution rounds to none
        raise MlcaseError(f"--split {split!r}: {', '.join(narrow)} is below the assignment's resolution of "
                          f"{100 / BUCKETS:g}%, so that arm would get no unit", "give every arm at least 0.01%")
    if len(arms) != len(shares):
        raise MlcaseError(f"--arms names {len(arms)} arms ({', '.join(arms)}) but --split has {len(shares)} shares",
                          "give one share per arm, control first")
    if len(set(arms)) != len(arms):
        raise MlcaseError(f"--arms repeats a name: {', '.join(arms)}", "give each arm a distinct name")
    ids = [_id_text(u) for u in unit_ids]
    if not ids:
        raise DataError("assign: no unit ids given", "pass a file with one id per row")
    series = pd.Series(ids)
    dupes = series[series.duplicated()].unique()
    pos = unit_position(ids, salt)
    buckets = np.floor(pos * BUCKETS).astype(int)
    edges = np.round(np.cumsum(shares) * BUCKETS).astype(int)
    arm_idx = np.searchsorted(edges, buckets, side="right")
    frame = pd.DataFrame({
        "unit": ids, "arm": np.asarray(arms, dtype=object)[arm_idx], "bucket": buckets,
        "salt": str(salt), "split": "/".join(f"{s * 100:g}" for s in shares),
        "assigned_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "mlcase_version": __version__,
    })
    if len(dupes):
        frame = frame.drop_duplicates("unit").reset_index(drop=True)
    return Assignment(frame=frame, salt=str(salt), split=shares, arms=arms)


def arm_of(unit_id, salt: str, split: str | Sequence[float] = "50/50", arms: Sequence[str] | None = None) -> str:
    """The arm of one unit (what a server calls per request)."""
    return str(assign([unit_id], salt, split, arms).frame["arm"].iloc[0])


def read_ids(path: str | Path, column: str | None = None) -> list[str]:
    """Unit ids from a CSV/Parquet column (``column``, or the only/first column) or a text file, one per line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file", "pass a file of unit ids (CSV with an id column, or one id per line)")
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            from ..data import csv_sep

            df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=csv_sep(path))
        else:
            lines = [ln.strip() for ln in path.read_text().splitlines()]
            return _integers_as_written([ln for ln in lines if ln])
    except (ValueError, OSError, pd.errors.ParserError) as exc:  # ArrowInvalid and UnicodeDecodeError are ValueErrors
        raise DataError(f"{path.name}: cannot read it ({str(exc).splitlines()[0][:120]})",
                        "pass a valid CSV or Parquet file of unit ids, or a text file with one id per line") from None
    if df.empty:
        raise DataError(f"{path.name}: no ids in the file", "pass a file with one id per row")
    if column is None:
        column = df.columns[0]
    elif column not in df.columns:
        raise DataError(f"{path.name}: no column {column!r}; the columns are {', '.join(map(str, df.columns[:20]))}",
                        "pass --id-col with the column holding the unit ids", column=column)
    ids = df[column]
    blank = ids.astype(str).str.strip().isin(["", "nan", "None"]) | ids.isna()
    if blank.any():
        lines = (np.flatnonzero(blank.to_numpy()) + 2)[:5].tolist()
        raise DataError(f"{path.name}: column {column!r} has {int(blank.sum())} empty ids (lines {lines})",
                        "remove the rows without an id", column=column, rows=lines)
    if path.suffix.lower() == ".csv":
        return _integers_as_written(ids.astype(str).tolist())
    return [_id_text(v) for v in ids.tolist()]


def _integers_as_written(ids: list[str]) -> list[str]:
    """Ids read as text; a column of whole numbers written as floats (``1.0``, ``2.0``) is read as the integers.

    Such a column (pandas' export of an id column that once held a NaN) hashed as the text ``'1.0'``: the
    same units as the Parquet file of the same ids (floats, hashed as ``'1'``) or as integers got other arms
    (50% agreement on openintro::resume), against the promise that ``7``, ``7.0`` and ``'7'`` are one unit.
    """
    text = [_id_text(v) for v in ids]
    if text and all(_FLOAT_INTEGER.fullmatch(t) for t in text):
        return [str(int(t.split(".", 1)[0])) for t in text]
    return text
