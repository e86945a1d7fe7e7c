"""Hashed units under several log keys: one check for every reader of a prediction log that counts units.

A unit is logged as the HMAC of its id under ``MLCASE_LOG_KEY`` (``hmac:...``), or, on a server started without
it, under its machine's key file; each hashed row carries the key's id (``log_key_id``). Servers with different
keys log the same person under unrelated hashes: a reader counting units then counts her once per key, and an
interval clustered by unit treats her rows as independent. Nothing can match them afterwards.

:func:`key_counts` gives the rows and units each key covers; :func:`log_keys_warning` turns them into the
warning every reader gives (``mlcase rollout status``; ``mlcase.monitor.sources.warn_log_keys`` builds the same rows
in SQL over its window). It lives in governance, below both, as the key it is about does.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def hashed(units: pd.Series, keys: pd.Series) -> pd.Series:
    """Which rows hold a hashed unit with the id of its key (a row without ``log_key_id``, older mlcase: none)."""
    return (units.astype("string").str.startswith("hmac:").fillna(False).astype(bool)
            & keys.notna()).astype(bool)


def key_counts(units: pd.Series, keys: pd.Series) -> list[tuple[str, int, int]]:
    """``(key id, rows, distinct units)`` of the hashed rows per log key, most rows first (then by key id)."""
    mask = hashed(units, keys).to_numpy()
    if not mask.any():
        return []
    frame = pd.DataFrame({"key": keys[mask].astype(str).to_numpy(), "unit": units[mask].astype(str).to_numpy()})
    g = frame.groupby("key")["unit"].agg(["size", "nunique"]).reset_index()
    rows = [(str(k), int(n), int(u)) for k, n, u in g.itertuples(index=False)]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def log_keys_warning(rows: Iterable[tuple]) -> dict | None:
    """The ``log_keys`` warning for ``(key id, rows, units)`` per key, or None where the hashed units come from at
    most one key."""
    from ..keys import config_dir
    from .pseudonym import LOG_KEY_FILE

    rows = [(str(k), int(n), int(u)) for k, n, u in rows]
    if len(rows) < 2:
        return None
    per_key = "; ".join(f"key {k}: {n:,} row(s), {u:,} unit(s)" for k, n, u in rows)
    return {
        "kind": "log_keys", "keys": {k: n for k, n, _ in rows},
        "message": f"the hashed units in this log were hashed under {len(rows)} different log keys ({per_key}): a "
                   "unit hashed under one key cannot be matched with its rows under another, so a unit served under "
                   "several keys counts as several units and its rows as independent; keep one MLCASE_LOG_KEY for "
                   "every server of the case (set it from a secret store; a server started without it hashes with "
                   f"its machine's key file, here {config_dir() / LOG_KEY_FILE})"}


def sure_units(units: pd.Series, keys: pd.Series) -> int:
    """The distinct units the rows hold for certain: those not hashed under a key, plus the most any one key's
    hashed rows hold (a person may stand under every key, so the keys' counts cannot be added)."""
    mask = hashed(units, keys)
    per_key = key_counts(units, keys)
    return int(units[~mask].nunique()) + max((u for _, _, u in per_key), default=0)


__all__ = ["hashed", "key_counts", "log_keys_warning", "sure_units"]
