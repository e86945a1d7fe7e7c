"""Monitoring: drift, delayed labels, performance estimated before labels arrive, alerts.

:func:`build_reference` summarises the training data once (stored in
``bundle.reference`` when the bundle is registered); :func:`monitor` reads the
prediction log (or a plain CSV/Parquet of recent records), cuts it into time
windows and compares each window with that reference:

- data drift per feature (:mod:`.drift`): PSI (with a missing-value bin), the
  two-sample KS test (numeric) or chi-square test (categorical), the
  Jensen-Shannon distance, the missing-rate change and categories never seen in
  training; prediction drift: the score distribution, the share of each
  decision and predicted class;
- delayed labels (:mod:`.performance`), joined by request id (duplicates
  reported, the last of each kind wins: outcome, reviewer's verdict): realized metrics and business cost per window,
  the observed label delay, the share still unlabelled, and whether the window
  is old enough (``data.label_delay``) for its labels to count;
- for binary tasks, performance and cost *estimated* from the calibrated
  probabilities before labels arrive (:mod:`.estimate`, the idea behind
  NannyML's CBPE), with a 95% band for sampling error;
- the spec's ``assumptions[].check`` re-run per window (:mod:`.assumptions`);
- the share of answers given by a fallback tier, by tier and reason.

Alerts (:mod:`.alerts`) follow ``monitoring`` in the spec. A feature drifts
when its PSI is at least ``psi_alert`` *and* its test rejects "same
distribution" at level ``alpha`` (PSI alone is noisy on small windows; a test
alone flags trivial shifts on large ones). Windows with fewer than
``min_window_rows`` rows are shown but raise no statistical alert.

Everything is computed from per-window counts: the log is read in chunks
(:mod:`.sources`: SQLite through ``sqlite3``, inputs parsed from JSON by
DuckDB; CSV/Parquet by DuckDB directly) into a temporary DuckDB database
capped at :data:`DUCKDB_MEMORY_LIMIT` (it spills to disk past that); per-window
metrics read one window at a time. Memory grows with the window, not the log.

Examples
--------
>>> from mlcase import monitor                                   # doctest: +SKIP
>>> result = monitor.monitor(case, log="predictions.db")         # doctest: +SKIP
>>> [a["feature"] for a in result.alerts if a["kind"] == "drift"]  # doctest: +SKIP
['balance']
"""

from __future__ import annotations

from .reference import REFERENCE_VERSION, build_reference, feature_kinds
from .result import MonitorResult
from .run import DRIFT_ALPHA, DUCKDB_MEMORY_LIMIT, monitor

__all__ = ["DRIFT_ALPHA", "DUCKDB_MEMORY_LIMIT", "REFERENCE_VERSION", "MonitorResult", "build_reference",
           "feature_kinds", "monitor"]
