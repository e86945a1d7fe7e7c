"""What the checks share: the case, the data, seeded samples and cached encodings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..case import Case
from ..data import Dataset
from .stats import N_FOLDS, _codes, _numeric


class Skip(Exception):
    """A check that does not apply to this case (the reason is reported)."""


# --------------------------------------------------------------------------- context
class Context:
    """What the checks share: the case, the data, seeded samples and cached encodings."""

    def __init__(self, case: Case, ds: Dataset, sample_rows: int):
        self.case, self.spec, self.ds = case, case.spec, ds
        self.frame = ds.frame
        self.features = list(ds.features)
        self.rng = np.random.default_rng(case.spec.split.seed)
        self.sample_rows = sample_rows
        self.train = np.asarray(ds.split.train)
        self.test = np.asarray(ds.split.test)
        self.train_sample = self._sample(self.train)
        self.test_sample = self._sample(self.test)
        self.all_sample = self._sample(np.arange(len(self.frame)))
        self.fold = self._folds()
        self._codes: dict[str, tuple[np.ndarray | None, np.ndarray]] = {}
        self.stats: dict[str, Any] = {}

    def _folds(self) -> np.ndarray:
        """The fold of each training-sample row for out-of-fold statistics; under a group split, one per group.

        The model is judged on groups it never saw, so a check must not learn a group's target from its other
        rows: HLMdiag::ahd's `baseline` (one value per subject, 5 visits each) "predicted" the randomised
        `treatment` with a one-feature AUC of 0.987 from row folds, and the run was refused as a leak.
        """
        group = self.spec.data.group
        if self.spec.split.method != "group" or not group or group not in self.frame.columns:
            return self.rng.integers(0, N_FOLDS, len(self.train_sample))
        codes, uniq = pd.factorize(self.frame[group].iloc[self.train_sample], use_na_sentinel=False)
        return self.rng.integers(0, N_FOLDS, len(uniq))[codes]

    def _sample(self, idx: np.ndarray) -> np.ndarray:
        if len(idx) <= self.sample_rows:
            return idx
        return np.sort(self.rng.choice(idx, self.sample_rows, replace=False))

    def column(self, name: str, rows: np.ndarray) -> pd.Series:
        return self.frame[name].iloc[rows]

    def encoded(self, name: str) -> tuple[np.ndarray | None, np.ndarray]:
        """(numeric values or None, integer codes) of a column on the training sample."""
        if name not in self._codes:
            s = self.column(name, self.train_sample)
            values = _numeric(s)
            self._codes[name] = (values, _codes(s, values))
        return self._codes[name]

