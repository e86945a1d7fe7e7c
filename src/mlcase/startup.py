"""Process start-up: the cyclic garbage collector while the heavy libraries load."""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

LOADING_GC_THRESHOLD = 50_000   # young-generation threshold while a model loads (CPython's default: 700)
_gc_lock = threading.Lock()
_gc_state = {"depth": 0, "saved": None}


@contextmanager
def fewer_gc_passes(young: int = LOADING_GC_THRESHOLD):
    """Run the cyclic garbage collector less often inside the block; the thresholds as they were after it.

    Loading the served model imports MLflow, skops and scikit-learn (thousands of modules,
    millions of objects), and CPython's default thresholds collect the old generation over
    all of them again and again: 0.5-0.6 s of `mlcase score`'s 2.3 s start-up on 2 cores
    (benchmarks/score_speed.py). A young generation of ``young`` objects instead of 700 keeps
    the garbage a collection may wait for small (a few MB), and the old generations' own
    thresholds are kept. Thread-safe and re-entrant: the first block in saves the thresholds,
    the last one out restores them.
    """
    with _gc_lock:
        if _gc_state["depth"] == 0:
            saved = gc.get_threshold()
            _gc_state["saved"] = saved
            if saved[0]:  # 0: automatic collection is off, and stays off
                gc.set_threshold(max(young, saved[0]), *saved[1:])
        _gc_state["depth"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["depth"] -= 1
            if _gc_state["depth"] == 0:
                gc.set_threshold(*_gc_state["saved"])
