"""Batch scoring: a CSV/Parquet file in, predictions out, local or on Dask.

The same record rules as the server (:class:`mlcase.serve.schema.RecordSpec`)
decide which rows are valid; invalid rows go to an errors file with their row
number, field and reason, and their count is reported; nothing is dropped
silently. Valid rows are scored through the same fallback chain
(:class:`mlcase.serve.fallback.Predictor`) as the server, without its time
limit. The local engine streams the input in chunks with a progress bar; the
Dask engine scores partition by partition on a cluster (``--scheduler``) or
dask's local threads, and gives the same output row for row.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import numbers
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data import csv_sep, read_names
from .errors import DataError
from .sql import identifier

OUTPUT_COLUMNS = ["prediction", "score", "decision", "conformal", "fallback", "tier", "reason", "model_version"]
ERROR_COLUMNS = ["row", "field", "message"]


@dataclass
class ScoreResult:
    """What a scoring run wrote."""

    output: Path
    errors_path: Path
    rows: int = 0
    scored: int = 0
    invalid_rows: int = 0
    issues: int = 0
    fallbacks: dict = field(default_factory=dict)
    decisions: dict = field(default_factory=dict)
    engine: str = "local"
    seconds: float = 0.0
    startup_s: float = 0.0      # loading the served model (registry, signature check, skops)
    scoring_s: float = 0.0      # from the first chunk read to the last one written
    model_version: int | None = None
    notes: list = field(default_factory=list)
    series: int | None = None   # a forecast: the series forecast (``scored`` is then their points)

    def to_dict(self) -> dict:
        return {"output": str(self.output), "errors": str(self.errors_path), "rows": self.rows,
                "scored": self.scored, "invalid_rows": self.invalid_rows, "issues": self.issues,
                "fallbacks": self.fallbacks, "decisions": self.decisions, "engine": self.engine,
                "seconds": round(self.seconds, 3), "startup_s": round(self.startup_s, 3),
                "scoring_s": round(self.scoring_s, 3),
                "rows_per_s": round(self.rows / self.scoring_s) if self.scoring_s else None,
                "model_version": self.model_version, "notes": self.notes,
                **({"series": self.series} if self.series is not None else {})}

    def print(self, console) -> None:
        if self.series is None:
            rate = self.rows / self.scoring_s if self.scoring_s else 0
            rate_text = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"
            head = (f"scored {self.scored} of {self.rows} rows in {self.seconds:.1f}s (start-up {self.startup_s:.1f}s, "
                    f"then {rate_text} rows/s, engine {self.engine}, model version {self.model_version})")
            bad = f"{self.invalid_rows} invalid row(s) ({self.issues} issue(s)) written to {self.errors_path}"
            clean, by_tier = "no invalid rows", "answered by a fallback tier"
        else:
            # forecast::gas printed "scored 12 of 476 rows ... then 0 rows/s, ... model version None": 476 rows
            # were its history and future, 12 the points forecast, and None meant seasonal naive answered
            model = f"model version {self.model_version}" if self.model_version is not None else "seasonal naive"
            head = (f"forecast {self.scored} point(s) of {self.series} series from {self.rows} input rows in "
                    f"{self.seconds:.1f}s (start-up {self.startup_s:.1f}s, engine {self.engine}, {model})")
            bad = f"{self.invalid_rows} series not forecast, each with its reason in {self.errors_path}"
            clean, by_tier = "every series forecast", "series answered by a fallback tier"
        from .formats import markup_escape

        console.print(f"{markup_escape(head)} -> {markup_escape(str(self.output))}")
        console.print(f"[yellow]{markup_escape(bad)}[/yellow]" if self.invalid_rows else clean)
        if self.fallbacks:
            parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.fallbacks.items()))
            console.print(f"{by_tier}: {markup_escape(parts)}")
        for note in self.notes:
            console.print(f"note: {markup_escape(note)}")


# --------------------------------------------------------------------------- the per-chunk work
class ChunkScorer:
    """Validates and scores one chunk; picklable, so Dask ships it to workers once.

    The common case runs at the model's speed: the rules check the chunk column by column
    (:meth:`RecordSpec.validate_frame`), the served model scores every in-domain row in one
    call, and conformal sets and decisions are computed for the whole chunk at once. Only the
    rows the model cannot answer (outside its training domain, non-finite scores, a model that
    raises) go through the fallback chain (:class:`mlcase.serve.fallback.Predictor`) record by
    record, with the tiers behind the model loaded the first time such a row appears
    (``fallback``: a callable returning the full chain). Both paths give the same answers.
    """

    def __init__(self, chain, fallback=None, echo: tuple[str, ...] = (), comma: str | None = None,
                 optional: tuple[str, ...] = ()):
        self.tiers = chain.tiers
        # model inputs a row may lack: a ranking's group, where the ALS baseline reads it as a feature. Its rule said
        # "required (never missing in training)" and AER::TravelMode's rows without an `individual` went to the
        # errors file, where the README promises them decision 'no_group' (in no list); ALS scores such a row as a
        # group it never saw (its item's popularity), as any other ranker scores it without the group
        for tier in self.tiers:
            for name in optional:
                if tier.spec is not None and name in tier.spec.rules and tier.spec.rules[name].required:
                    tier.spec.rules[name] = dataclasses.replace(tier.spec.rules[name], required=False)
        self.decider = chain.decider
        self._fallback = fallback          # () -> Chain with every tier; None: ``chain`` is complete
        self._predictor = None
        self.loaded_fallbacks = fallback is None
        # columns written to the output even where they are the model's inputs: a ranking's group and item
        # (wooldridge::crime4 ranked by year: the ALS baseline's inputs are the group and item, so neither was
        # written, and the output had no lists)
        self.echo = frozenset(echo)
        # the input file's decimal comma ('decimal': a ';' export, where '39,1' is 39.1), read in the model's numbers
        self.comma = comma

    def __getstate__(self):
        return {"tiers": self.tiers, "decider": self.decider, "_fallback": self._fallback, "_predictor": None,
                "loaded_fallbacks": self.loaded_fallbacks, "echo": self.echo, "comma": self.comma}

    def __setstate__(self, state):
        self.__dict__.update({"comma": None, **state})

    @property
    def predictor(self):
        if self._predictor is None:
            from .serve.fallback import Predictor, pin_threads

            tiers = self.tiers
            if self._fallback is not None:  # the first row the model cannot answer: load the other tiers now
                tiers = self._fallback().tiers
                self.loaded_fallbacks = True
            for t in tiers:
                if t.kind == "model":
                    pin_threads(t.bundle.model)
            self._predictor = Predictor(tiers, self.decider, timeout_s=None, workers=1)
        return self._predictor

    @property
    def spec(self):
        return self.tiers[0].spec

    def __call__(self, chunk: pd.DataFrame, offset: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(output rows, error rows) for ``chunk``, whose first row is input row ``offset``."""
        chunk = chunk.reset_index(drop=True)
        names = read_names(chunk.columns)
        if names != list(chunk.columns):   # 'class' and 'Class': named as the training data was read
            chunk = chunk.set_axis(names, axis=1)
        model_in = _file_commas(chunk, self.spec.rules, self.comma) if self.comma else chunk
        clean, issues, ok = self.spec.validate_frame(model_in, offset=offset)
        errors = pd.DataFrame([i.to_dict() for i in issues], columns=["record", "field", "message"]).rename(
            columns={"record": "row"})
        keep = [c for c in chunk.columns if c not in self.spec.rules or c in self.echo]
        out = chunk.loc[ok, keep].reset_index(drop=True)
        rows = np.flatnonzero(ok) + offset
        out.insert(0, "row", rows)
        cols = self._answer(clean.reset_index(drop=True), rows) if len(clean) else {c: [] for c in OUTPUT_COLUMNS}
        for c in OUTPUT_COLUMNS:
            out[c] = cols[c] if isinstance(cols[c], (np.ndarray, pd.Series, pd.api.extensions.ExtensionArray)) \
                else _typed(c, cols[c])
        return out, errors

    # ------------------------------------------------------------------ answers
    def _answer(self, frame: pd.DataFrame, rows: np.ndarray) -> dict:
        """Output columns for the clean rows (input rows ``rows``): the model's vectorised answers, the chain for
        the rest."""
        tier = self.tiers[0]
        n = len(frame)
        model_ok = np.zeros(n, dtype=bool)
        scores = None
        if tier.kind == "model":
            inside = ~tier.spec.domain_mask(frame) if tier.check_domain else np.ones(n, dtype=bool)
            if inside.any():
                try:
                    s = np.asarray(tier.bundle.scores(frame.loc[inside].reset_index(drop=True)), dtype="float64")
                except Exception:  # noqa: BLE001 - the chain finds which records fail and answers them
                    s = None
                if s is not None and s.shape[0] == int(inside.sum()):
                    finite = np.isfinite(s).reshape(len(s), -1).all(axis=1)
                    model_ok[np.flatnonzero(inside)[finite]] = True
                    scores = s[finite]
        if model_ok.all():  # the usual chunk: every row answered by the model, no per-row detour
            part = _vector_answers(self.decider, tier, scores, lambda: frame, rows)
            return {c: _typed(c, part[c]) for c in OUTPUT_COLUMNS}
        cols = {c: np.empty(n, dtype=object) for c in OUTPUT_COLUMNS}
        if model_ok.any():
            part = _vector_answers(self.decider, tier, scores, lambda: frame.loc[model_ok].reset_index(drop=True),
                                   rows[model_ok])
            for c in OUTPUT_COLUMNS:
                cols[c][model_ok] = part[c]
        rest = np.flatnonzero(~model_ok)
        if len(rest):
            # a fallback tier's rows at its split threshold are decided by their row's draw too, not a fresh one:
            # the same file scores the same on every run and either engine
            answers = self.predictor.predict(_records(frame.iloc[rest], list(self.spec.rules)), draws=row_draws(rows[rest]))
            for c, values in _answer_columns(answers).items():
                cols[c][rest] = values
        return {c: _typed(c, v) for c, v in cols.items()}


def _file_commas(chunk: pd.DataFrame, rules: dict, reading: str) -> pd.DataFrame:
    """The model's number columns of a chunk with the values written with the file's comma (``'39,1'`` in a ``;``
    file) as numbers; every other value, and every other column, as it was.

    A ``;`` export with decimal commas of palmerpenguins::penguins (as a spreadsheet in a decimal-comma locale saves
    it) had 342 of its 344 rows refused, "expected a number, got '39,1'", on both engines: only a model trained on
    such a file (its schema's ``comma``) read them. A value is read by its own text, so every chunk and partition
    reads it alike.
    """
    from functools import partial

    from .data import comma_number

    out = None
    for name, r in rules.items():
        if r.kind != "numeric" or name not in chunk.columns:
            continue
        s = chunk[name]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        has = s.astype("object").map(lambda v: isinstance(v, str) and "," in v, na_action="ignore").fillna(False)
        has = has.to_numpy(dtype=bool)
        if not has.any():
            continue
        if out is None:
            out = chunk.copy()
        col = s.astype("object").copy()
        col[has] = col[has].map(partial(comma_number, reading))
        out[name] = col
    return chunk if out is None else out


def _answer_columns(answers) -> dict:
    cols = {c: [] for c in OUTPUT_COLUMNS}
    for a in answers:
        cols["prediction"].append(None if a.prediction is None else str(a.prediction))
        cols["score"].append(np.nan if a.score is None else float(a.score))
        cols["decision"].append(a.decision)
        cols["conformal"].append(None if a.conformal is None else json.dumps(a.conformal, default=str))
        cols["fallback"].append(bool(a.fallback))
        cols["tier"].append(a.tier)
        cols["reason"].append(a.reason)
        cols["model_version"].append(a.model_version)
    return cols


def row_draws(rows: np.ndarray) -> np.ndarray:
    """One number in [0, 1) per input row, fixed by the row's number alone: the fractional parts of the row numbers
    times the golden ratio (a low-discrepancy sequence, so any run of rows gets its share of small draws).

    A binary model's rows at a split threshold (``tie_share``) are flagged where their draw is below the share:
    each row's decision then depends on the row, never on which chunk or Dask partition it was scored in.
    ``binary_flags`` without draws flags exactly the share of each *chunk's* tied rows, by a permutation of the
    chunk: stevedata::fakeLogit (10,000 rows, five distinct scores) scored with ``--chunk-rows 700`` gave 975
    decisions on the Dask engine that differed from the local engine's (946 against 947 flags).
    """
    golden = (5 ** 0.5 - 1) / 2
    return np.modf((np.asarray(rows, dtype="float64") + 1.0) * golden)[0]


def _vector_answers(decider, tier, scores: np.ndarray, frame_fn, rows: np.ndarray) -> dict:
    """What :meth:`Decider.answer` gives every row the model answered, for all of them at once (``rows``: the
    input rows' numbers, which choose the rows flagged at a split threshold: :func:`row_draws`)."""
    from .serve.fallback import conformal_sets

    bundle = tier.bundle
    n = len(scores)
    sets = conformal = size = width = None
    if bundle.conformal:
        try:
            conformal, size, width = _conformal_column(bundle, scores)
        except Exception:  # noqa: BLE001 - the serving path's way (it reports its own errors)
            sets = conformal_sets(bundle, scores, frame_fn)
            if sets is not None:
                size = np.array([len(x) for x in sets])
                width = np.array([x[1] - x[0] if len(x) == 2 else 0.0 for x in sets]) \
                    if bundle.task == "regression" else None
                conformal = np.asarray([json.dumps(x, default=str) for x in sets], dtype=object)
    review = np.zeros(n, dtype=bool)
    if decider.task == "binary":
        s = scores.reshape(-1)
        draws = row_draws(rows) if bundle.tie_share is not None else None
        flag = bundle.decide(s, draws).astype(bool)  # at a split threshold: the rows whose draw is under its share
        if decider.defer and size is not None:
            review = (size != 1) & (flag | _deferred(bundle, (size != 1) & ~flag, size, s, rows))
        decision = np.where(review, "review", np.where(flag, "flag", "auto"))
        prediction = np.where(flag, str(decider.classes[1]), str(decider.classes[0]))
        score = s
    elif decider.task == "multiclass":
        classes = bundle.classes if bundle.classes else decider.classes
        from .tasks import decide_classes

        prediction = np.asarray([str(c) for c in decide_classes(scores, classes, bundle.cost_matrix)], dtype=object)
        score = np.max(scores, axis=1)
        if decider.defer and size is not None:
            review = _deferred(bundle, size != 1, size, scores, rows)
        decision = np.where(review, "review", "auto")
    else:
        score = scores.reshape(-1)
        prediction = _float_text(bundle.decide(score))
        if decider.defer and decider.max_width is not None and width is not None:
            review = _deferred(bundle, width > decider.max_width, None, score, rows, width=width)
        decision = np.where(review, "review", "auto")
    return {"prediction": np.asarray(prediction, dtype=object), "score": np.asarray(score, dtype="float64"),
            "decision": np.asarray(decision, dtype=object),
            "conformal": conformal if conformal is not None else np.full(n, None, dtype=object),
            "fallback": np.zeros(n, dtype=bool), "tier": np.full(n, tier.name, dtype=object),
            "reason": np.full(n, None, dtype=object),
            "model_version": np.full(n, bundle.version, dtype="int64" if bundle.version is not None else object)}


def _deferred(bundle, candidates, size, scores, rows, width=None) -> np.ndarray:
    """The candidates the bundle's deferral cut sends to review (all of them where its calibration has no cut), with
    a tie at the cut drawn by row number, as the evaluation draws it (:mod:`mlcase.conformal.deferral`)."""
    cut = (bundle.conformal or {}).get("defer_cut")
    if cut is None:
        return np.asarray(candidates, dtype=bool)
    from .conformal import deferral

    k_size, close = deferral.keys(bundle.task, scores, size, bundle.threshold, width=width)
    return deferral.apply_cut(cut, candidates, k_size, close, deferral.draws(rows))


def _typed(name: str, values):
    """An output column from a list or an object array of per-row values."""
    if name == "score":
        return np.asarray(values, dtype="float64")
    if name == "fallback":
        return np.asarray(values, dtype=bool)
    if name == "model_version":
        return pd.array(values, dtype="Int64")
    return pd.Series(values, dtype="object")


def _records(frame: pd.DataFrame, features: list[str]) -> list[dict]:
    cols = {}
    for c in features:
        s = frame[c]
        values = s.to_numpy(dtype=object) if not pd.api.types.is_float_dtype(s) else s.to_numpy()
        if pd.api.types.is_float_dtype(s):
            cols[c] = [None if v != v else float(v) for v in values]
        elif pd.api.types.is_datetime64_any_dtype(s):
            cols[c] = [None if pd.isna(v) else pd.Timestamp(v).to_pydatetime() for v in values]
        else:
            cols[c] = [None if (v is None or (isinstance(v, float) and v != v) or v is pd.NA) else
                       (bool(v) if isinstance(v, (bool, np.bool_)) else v) for v in values]
    n = len(frame)
    return [{c: cols[c][i] for c in features} for i in range(n)]


# --------------------------------------------------------------------------- readers and writers
# Every CSV column is read as text: the record rules parse the model's numbers themselves (as the server
# does), other columns are echoed as written ('007' stays '007'), and Dask cannot meet a later block whose
# inferred dtype differs from the first block's (a fuzz-found internal error)
CSV_DTYPE = "str"


GLOB_CHARS = "*?["


def input_files(path: Path) -> list[Path]:
    """The files an input names: the file itself, or those a glob of Parquet partitions
    (``parts/*.parquet``) matches, in name order (DuckDB's order, as ``data.source`` reads a glob)."""
    if path.exists() or not any(ch in str(path) for ch in GLOB_CHARS):
        return [path]
    import glob

    return [Path(f) for f in sorted(glob.glob(str(path))) if Path(f).is_file()]


def _check_input(path: Path) -> str:
    if not path.exists():
        files = input_files(path)
        if not any(ch in str(path) for ch in GLOB_CHARS):
            raise DataError(f"no input file at {path}", "check the path")
        if not files:
            raise DataError(f"no input file matches {path}", "check the pattern (e.g. parts/*.parquet)")
        wrong = [f for f in files if f.suffix.lower() not in (".parquet", ".pq")]
        if wrong:
            raise DataError(f"input {path}: {wrong[0].name} is not Parquet; a pattern scores Parquet partitions only",
                            "match only the .parquet files (e.g. parts/*.parquet), or score one CSV at a time")
        return "parquet"
    from .data import table_suffix

    suffix = table_suffix(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise DataError(f"input {path.name}: unsupported file type '{path.suffix}'",
                    "score a .csv or .parquet file (a .csv.gz too)")


def _iter_local(path: Path, kind: str, spec, chunk_rows: int):
    with _reading(path):
        if kind == "csv":
            yield from pd.read_csv(path, chunksize=chunk_rows, dtype=CSV_DTYPE, sep=csv_sep(path))
            return
        for f in input_files(path):
            with _reading(f):   # a partition of a glob that cannot be read is named, not the pattern
                yield from _parquet_chunks(f, chunk_rows)


def _parquet_chunks(path: Path, chunk_rows: int, start: int = 0, stop: int | None = None):
    """Rows ``start`` to ``stop`` of one Parquet file as frames of ``chunk_rows`` rows (the last one shorter),
    reading only the row groups that hold them.

    Both engines read a Parquet input through this function (the local one the whole file, each Dask task its
    span of chunks, ``start`` a multiple of ``chunk_rows``), so every chunk holds the same rows with the same
    column types on either engine. ``dask.dataframe.read_parquet`` typed a decimal column as
    ``decimal128[pyarrow]`` where pyarrow's ``to_pandas`` gives Python decimals, and validation crashed on its
    missing values (palmerpenguins::penguins: "Length of values (342) does not match length of index (344)").
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    md = pf.metadata
    stop = md.num_rows if stop is None else min(stop, md.num_rows)
    groups, at, pos = [], None, 0
    for i in range(md.num_row_groups):
        n = md.row_group(i).num_rows
        if n and pos + n > start and pos < stop:
            groups.append(i)
            at = pos if at is None else at
        pos += n
    if not groups:
        return
    buf = None
    for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups):
        tbl = pa.Table.from_batches([batch])
        buf = tbl if buf is None else pa.concat_tables([buf, tbl])
        if at < start:   # the rows of the first row group before this span
            drop = min(start - at, buf.num_rows)
            buf, at = buf.slice(drop), at + drop
        while at < stop and buf.num_rows and buf.num_rows >= min(chunk_rows, stop - at):
            take = min(chunk_rows, stop - at)
            yield buf.slice(0, take).to_pandas()
            buf, at = buf.slice(take), at + take
        if at >= stop:
            return


@contextmanager
def _reading(path: Path, scoring: bool = False, workers: bool = False):
    """Reader errors of the input file as :class:`DataError` naming it (empty, not UTF-8, malformed).

    ``scoring``: the block also scores (a Dask task reads and scores its partition), so a ``ValueError``
    is not taken for a reading error there.
    """
    import pyarrow as pa

    readers = (pd.errors.ParserError, pa.ArrowException, OSError) + (() if scoring else (ValueError,))
    try:
        yield
    except pd.errors.EmptyDataError:
        raise DataError(f"input {path.name} is empty (no header row)",
                        "score a file with a header row of the model's columns and at least one record",
                        path=str(path)) from None
    except UnicodeDecodeError:
        from .data import encoding_error

        raise encoding_error(path, f"input {path.name}") from None
    except readers as exc:
        if isinstance(exc, DataError):
            raise
        while exc.__cause__ is not None:  # dask wraps the reader's own error
            exc = exc.__cause__
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        if workers and _missing_there(exc) and all(f.exists() for f in input_files(path)):
            # read here, not on a worker of a cluster: "check that it is a valid Parquet file" sent the user to a
            # file that was fine (a worker in another mount namespace saw no /data/in.parquet)
            raise DataError(f"input {path.name}: the Dask workers cannot read it ({first}); it is readable here",
                            "put the input on storage every worker mounts at the same path (see README, "
                            "\"Beyond one machine\"), or score it with --engine local", path=str(path)) from None
        raise DataError(f"input {path.name}: cannot read it ({first})",
                        f"check that it is a valid {'CSV' if path.suffix.lower() != '.parquet' else 'Parquet'} file",
                        path=str(path)) from None


def _missing_there(exc: BaseException) -> bool:
    """True when a reader's error says the file is not there or not readable (where it was read)."""
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return True
    text = str(exc)
    return "No such file" in text or "Permission denied" in text or "Failed to open local file" in text


class _Writer:
    """Appends frames to a CSV or Parquet file (Parquet with one schema for every chunk).

    The frames go to a hidden ``.<name>.partial`` file beside ``path``, which replaces ``path``
    only on :meth:`close` with ``commit=True``: a run that fails leaves an earlier output intact.
    """

    def __init__(self, path: Path, columns: list[str] | None = None):
        self.path = Path(path)
        self.kind = "parquet" if self.path.suffix.lower() in (".parquet", ".pq") else "csv"
        self.tmp = self.path.with_name(f".{self.path.name}.partial")
        self._pq = None
        self._schema = None
        self._first = True
        self.columns = columns
        if self.tmp.exists():
            self.tmp.unlink()

    def write(self, df: pd.DataFrame) -> None:
        if self.kind == "csv":
            df.to_csv(self.tmp, mode="w" if self._first else "a", header=self._first, index=False)
            self._first = False
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._schema is None:
            self._schema = pa.Schema.from_pandas(df, preserve_index=False)
            self._schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                                      for f in self._schema])
            self._pq = pq.ParquetWriter(self.tmp, self._schema)
        self._pq.write_table(pa.Table.from_pandas(df, schema=self._schema, preserve_index=False))

    def close(self, commit: bool = True) -> None:
        import os

        if commit and self.kind == "csv" and self._first and self.columns is not None:
            pd.DataFrame(columns=self.columns).to_csv(self.tmp, index=False)
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if not commit:
            self.tmp.unlink(missing_ok=True)
        elif self.tmp.exists():
            os.replace(self.tmp, self.path)
        else:  # nothing was written: no stale output of an earlier run stays behind
            self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- entry point
def score_file(case, input: str | Path, output: str | Path, engine: str | None = None, scheduler: str | None = None,
               version: int | None = None, chunk_rows: int = 50_000, errors_path: str | Path | None = None,
               progress: bool = True, console=None, bundles: dict | None = None) -> ScoreResult:
    """Score ``input`` into ``output`` with the case's champion (or ``version``).

    Parameters
    ----------
    case : Case
    input, output : path
        CSV or Parquet.
    engine : {"local", "dask"}, optional
        Default the spec's ``engine:`` (``dask`` where only ``scheduler`` is given), else local.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://...``; default the spec's ``engine.scheduler`` on the Dask engine);
        without one the Dask engine uses local threads. With ``engine="local"`` it is refused, not ignored.
    chunk_rows : int
        Rows per chunk (local) and per partition (Dask, CSV input).
    errors_path : path, optional
        Invalid rows with their reasons; default ``<output stem>.errors.csv``.
    bundles : dict, optional
        Bundles by role, instead of the registry (see :func:`mlcase.serve.fallback.load_chain`).
    """
    from .serve.fallback import load_chain

    t0 = time.perf_counter()
    from .case import load_case, path_arg

    case = load_case(case)
    input, output = path_arg(input, "input"), path_arg(output, "output")
    kind = _check_input(input)
    if case.spec.task == "forecast":  # one forecast per series (mlcase.forecast.batch)
        from .forecast.batch import forecast_file

        return forecast_file(case, input, output, version=version, errors_path=errors_path, engine=engine or "local",
                             scheduler=scheduler, bundles=bundles)
    from .engine import resolve

    # as monitor and run choose: `score --scheduler tcp://...` without --engine dask scored in this process, the
    # scheduler silently unused, and the spec's `engine: {kind: dask, scheduler: ...}` was never read
    chosen = resolve(case, engine, scheduler)
    engine, scheduler = chosen["kind"], chosen["scheduler"]
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, numbers.Integral):  # 'x' < 1 was a TypeError
        from .arguments import whole_number

        chunk_rows = whole_number(chunk_rows, "chunk_rows", "a number of rows", "pass e.g. chunk_rows=50000")
    if chunk_rows < 1:
        raise DataError(f"--chunk-rows {chunk_rows}: must be at least 1", "pass e.g. --chunk-rows 50000")
    errors_path = Path(errors_path) if errors_path else output.with_name(output.stem + ".errors.csv")
    _check_output(output, "-o", *input_files(input))
    _check_output(errors_path, "--errors", *input_files(input), output)
    registry = bundles is None or "model" not in bundles
    chain = load_chain(case, version=version, bundles=bundles, registry=registry, fallbacks=False)
    d = case.spec.data
    scorer = ChunkScorer(chain, fallback=functools.partial(_full_chain, case, version, dict(bundles or {}),
                                                           chain.primary.bundle, registry),
                         echo=tuple(c for c in (d.group, d.item) if c) if case.spec.task == "ranking" else (),
                         optional=(d.group,) if case.spec.task == "ranking" and d.group else (),
                         comma=_file_comma(input) if kind == "csv" else None)
    result = ScoreResult(output=output, errors_path=errors_path, engine=engine,
                         model_version=chain.primary.version, notes=list(chain.notes))
    if engine == "local":
        _warm_up(scorer, input, kind)
    result.startup_s = time.perf_counter() - t0
    out_w, err_w = _Writer(output), _Writer(errors_path, columns=ERROR_COLUMNS)
    done = False
    first_issue = None
    try:
        if engine == "local":
            parts = _run_local(scorer, input, kind, chunk_rows)
            total = None
        else:
            parts, total = _run_dask(scorer, input, kind, chunk_rows, scheduler)
        with _progress(progress, console, total, engine) as advance:
            for out, errs in parts:
                n_in = len(out) + (errs["row"].nunique() if len(errs) else 0)
                result.rows += n_in
                result.scored += len(out)
                result.invalid_rows += errs["row"].nunique() if len(errs) else 0
                result.issues += len(errs)
                fb = np.asarray(out["fallback"], dtype=bool)
                if fb.any():
                    for tier, cnt in out.loc[fb, "tier"].value_counts().items():
                        result.fallbacks[tier] = result.fallbacks.get(tier, 0) + int(cnt)
                for d, cnt in out["decision"].value_counts().items():
                    result.decisions[str(d)] = result.decisions.get(str(d), 0) + int(cnt)
                out_w.write(out)
                if len(errs):
                    err_w.write(errs)
                    if first_issue is None:
                        first_issue = errs.iloc[0]
                advance(n_in)
        done = True
    finally:
        # a failed run, or one where no row could be scored, keeps the earlier output; the errors file
        # of a run that got through the input is written either way (it says what is wrong)
        out_w.close(commit=done and result.scored > 0)
        err_w.close(commit=done and result.rows > 0)
    if case.spec.task == "ranking" and done and result.scored:
        _rank_lists(case, output, result)
    result.seconds = time.perf_counter() - t0
    result.scoring_s = result.seconds - result.startup_s
    if done and not result.rows:
        raise DataError(f"input {input.name} has no records (a header at most); {output.name} was not written",
                        "score a file with at least one record", path=str(input))
    if result.rows and not result.scored:
        detail = f" (row {first_issue['row']}, {first_issue['field']}: {first_issue['message']})" \
            if first_issue is not None else ""
        raise DataError(f"input {input.name}: none of its {result.rows} row(s) could be scored{detail}; "
                        f"{output.name} was not written",
                        f"fix the columns named in {errors_path} (types and values as in training), then score again",
                        path=str(errors_path))
    return result


def _rank_lists(case, output: Path, result: ScoreResult) -> None:
    """A ranking case's output as lists: each row's ``position`` in its group (1 = best, ties in input order,
    as ``POST /rank`` orders a list) and ``decision`` ``shown`` within the top ``ranking.k``, else ``below_k``.

    ordinal::soup was scored row by row, each with ``decision: auto``: nothing said which soup came first for
    whom. DuckDB orders the written output by group out of core, and the rewrite replaces it in one step.
    """
    import os

    import duckdb

    group = case.spec.data.group
    k = int(case.spec.ranking.k) if case.spec.ranking is not None else 10
    kind = "parquet" if output.suffix.lower() in (".parquet", ".pq") else "csv"
    tmp = output.with_name(f".{output.name}.ranked")

    def lit(path: Path) -> str:
        return "'" + str(path).replace("'", "''") + "'"

    con = duckdb.connect()
    try:
        src = (f"read_parquet({lit(output)})" if kind == "parquet"
               else f"read_csv({lit(output)}, header = true, all_varchar = true)")  # every value written as read
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
        # a file without the group column: every row is one without its group, decision 'no_group' as the README
        # says (AER::TravelMode scored without `individual` read 'auto' on every row, a binary case's decision)
        g = identifier(group) if group in cols else "NULL"
        row = 'CAST("row" AS BIGINT)'
        # a row without a group is in no list: no position, decision 'no_group' (Stat2Data::LeafWidth's rows with
        # no Year were ranked together as one list, positions 1 and 2, as if they were a query's items)
        con.execute(f"""COPY (SELECT * REPLACE (CASE WHEN position IS NULL THEN 'no_group'
                                                     WHEN position <= {k} THEN 'shown' ELSE 'below_k' END AS decision)
                              FROM (SELECT *, CASE WHEN {g} IS NULL THEN NULL ELSE row_number() OVER (
                                                   PARTITION BY {g} ORDER BY CAST(score AS DOUBLE) DESC NULLS LAST,
                                                   {row}) END AS position
                                    FROM {src})
                              ORDER BY {row})
                        TO {lit(tmp)} (FORMAT {kind}{", HEADER" if kind == "csv" else ""})""")
        lists, shown = con.execute(f"SELECT count(*), coalesce(sum(least(n, {k})), 0) FROM (SELECT count(*) AS n "
                                   f"FROM {src} WHERE {g} IS NOT NULL GROUP BY {g})").fetchone()
        (no_group,) = con.execute(f"SELECT count(*) FROM {src} WHERE {g} IS NULL").fetchone()
        os.replace(tmp, output)
    finally:
        con.close()
        tmp.unlink(missing_ok=True)   # a failed rewrite leaves the scored output as it was, and no stray file
    if group not in cols:
        result.decisions = {"no_group": int(no_group)}
        result.notes.append(f"no positions: the input has no '{group}' column to make lists of, so every row is in no "
                            f"list (decision 'no_group'); add the column to rank each {group}'s items")
        return
    result.decisions = {"shown": int(shown), "below_k": int(result.scored - shown - no_group)}
    result.notes.append(f"{lists:,} {'list' if lists == 1 else 'lists'} of '{group}': each row's position in its "
                        f"list (1 = best, ties in input order) and decision 'shown' in the top {k} (ranking.k), else "
                        "'below_k', as POST /rank orders and logs them")
    if no_group:
        result.decisions["no_group"] = int(no_group)
        result.notes.append(f"{no_group:,} row(s) have no '{group}', so they are in no list: no position, decision "
                            "'no_group' (POST /rank refuses an item list without its group)")


def _conformal_column(bundle, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Conformal sets (or intervals) as the JSON the output holds, with set sizes (and interval widths).

    The serving path's sets (:func:`mlcase.conformal.sets.predict_sets`), built from the
    membership matrix at once: a chunk has few distinct sets, each written to JSON once.
    """
    from .conformal.sets import (
        _conf,
        _plain,
        _proba,
        distinct_rows,
        intervals_from_scores,
        sets_from_scores,
    )

    conf = _conf(bundle, None)
    if bundle.task == "regression":
        low, high = intervals_from_scores(scores.reshape(-1), conf)
        # json.dumps(json_interval(low, high)) row by row was 2.0 s of the 11.5 s modeldata::ames's 200k rows took
        # (its linear model 8.5 s): the same text from the bounds' reprs, an unbounded side 'null'
        text = np.asarray([f"[{a}, {b}]" for a, b in zip(_float_text(low, "null"), _float_text(high, "null"),
                                                            strict=True)], dtype=object)
        return text, np.full(len(low), 2), high - low
    member = sets_from_scores(_proba(bundle, scores), conf)
    labels = np.asarray(conf.get("classes") or bundle.classes, dtype=object)
    patterns, inverse = distinct_rows(member)
    text = np.asarray([json.dumps([_plain(c) for c in labels[p]], default=str) for p in patterns], dtype=object)
    return text[inverse], member.sum(axis=1), None


def _float_text(values: np.ndarray, nonfinite: str | None = None) -> np.ndarray:
    """``str(float(v))`` of every value (``json.dumps`` writes the same ``repr`` of a finite float) as an object
    array; ``nonfinite``, where given, for a NaN or an infinity (JSON's ``null``)."""
    values = np.asarray(values, dtype="float64").reshape(-1)
    text = np.asarray(list(map(float.__repr__, values.tolist())), dtype=object)
    if nonfinite is not None:
        bad = ~np.isfinite(values)
        if bad.any():
            text[bad] = nonfinite
    return text


def _full_chain(case, version, bundles: dict, primary, registry: bool):
    """Every tier of ``serving.fallback`` behind the already loaded served model (loaded when a row needs one)."""
    from .serve.fallback import load_chain

    return load_chain(case, version=version, bundles={**bundles, "model": primary}, registry=registry)


def _file_comma(path: Path) -> str | None:
    """``'decimal'`` where the input CSV is delimited by ``;`` (a decimal-comma locale's export), else None."""
    from .data import comma_reading

    with suppress(Exception):   # a file that cannot be sniffed is reported by its reader
        return "decimal" if comma_reading(path) == "decimal" else None
    return None


def _check_output(path: Path, flag: str, *inputs: Path) -> None:
    """An output path must be a CSV/Parquet file in an existing folder that is not one of ``inputs``."""
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):  # what _Writer writes
        raise DataError(f"{flag} {path}: unsupported file type '{path.suffix or path.name}'",
                        "write a .csv or .parquet file")
    if not path.parent.is_dir():
        raise DataError(f"{flag} {path}: the folder {path.parent} does not exist",
                        "create it first, or pass a path in an existing folder")
    if path.is_dir():
        raise DataError(f"{flag} {path} is a folder", "pass a file name, e.g. scores.csv")
    for other in inputs:
        if path.resolve() == Path(other).resolve():
            raise DataError(f"{flag} {path} is also the input {other}; scoring would overwrite it",
                            "write the output to another file")


def _run_local(scorer: ChunkScorer, path: Path, kind: str, chunk_rows: int):
    offset = 0
    for chunk in _iter_local(path, kind, scorer.spec, chunk_rows):
        yield scorer(chunk, offset)
        offset += len(chunk)


def _warm_up(scorer: ChunkScorer, path: Path, kind: str) -> None:
    """The input's first record through the whole scoring path, its answer dropped: the model's first call
    (the lazy imports and caches of its first predict) is part of start-up, as the server's warm-up makes it.

    On 200k rows (``benchmarks/score_speed.py``) it moved about 0.1 s of one-time work out of the rows/s.
    A file that cannot be read, or a record that cannot be scored, is left for the run itself to report.
    """
    with suppress(Exception):
        first = next(iter(_iter_local(path, kind, scorer.spec, 1)), None)
        if first is not None and len(first):
            scorer(first.iloc[:1], 0)


def _run_dask(scorer: ChunkScorer, path: Path, kind: str, chunk_rows: int, scheduler: str | None):
    import dask

    if kind == "csv":
        tasks, total = _csv_tasks(scorer, path, chunk_rows, scheduler)
    else:
        tasks, total = _parquet_tasks(path, chunk_rows)
    client = None
    if scheduler:  # the one way mlcase connects to a scheduler (an unreachable one is a one-line EngineError)
        from .engine import DaskEngine

        client = DaskEngine(scheduler).client
    try:
        if callable(tasks):   # CSV: the blocks' lengths (their rows' numbers) are counted first, on the engine
            # the blocks are parsed here (on the workers): a bad line or byte in any of them is bad input
            with _reading(path, workers=client is not None):
                tasks, total = tasks(client)
        shipped = client.scatter(scorer, broadcast=True) if client else scorer
        items = iter(tasks)   # a list, or the chunks this process parses (a CSV with line breaks inside quotes)

        def take(k: int) -> list:
            return [dask.delayed(fn)(*args, shipped) for fn, *args in itertools.islice(items, k)]

        def gen():
            window = 4
            try:
                with _reading(path, scoring=True, workers=client is not None):
                    if client is not None:
                        futures = client.compute(take(window))
                        while futures:
                            f = futures.pop(0)
                            futures.extend(client.compute(take(1)))
                            yield from f.result()
                    else:
                        while batch := take(window):
                            for res in dask.compute(*batch, scheduler="threads"):
                                yield from res
            finally:
                if client is not None:
                    client.close()
        return gen(), (int(total) if total is not None else None)
    except BaseException:
        if client is not None:
            client.close()
        raise


def _csv_tasks(scorer: ChunkScorer, path: Path, chunk_rows: int, scheduler: str | None):
    """A CSV input's Dask blocks (about ``chunk_rows`` rows each, split at byte offsets): a function of the client
    giving ``[(fn, *args)]`` per block and the rows in all, once each block's length is counted."""
    import dask
    import dask.dataframe as dd

    with _reading(path):
        ddf = dd.read_csv(str(path), dtype=CSV_DTYPE, blocksize=_blocksize(path, chunk_rows), sep=csv_sep(path))
    parts = ddf.to_delayed()

    def counted(client):
        try:
            lengths = (client.compute([dask.delayed(len)(p) for p in parts], sync=True) if client
                       else dask.compute(*[dask.delayed(len)(p) for p in parts], scheduler="threads"))
        except pd.errors.ParserError:
            if len(parts) == 1:
                raise
            # a block cut inside a quoted field: a text value with a line break in it ("seen at dawn,\nnear the
            # colony" in a note beside palmerpenguins::penguins) ended a block mid-quote, "EOF inside string", where
            # the local engine read the file. This process parses the chunks as the local engine does and the
            # workers score them (a file that is malformed is then said as the local engine says it)
            return _parsed_here(path, chunk_rows), None
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
        return [(_score_partition, p, off) for p, off in zip(parts, offsets, strict=True)], int(sum(lengths))
    return counted, None


def _parsed_here(path: Path, chunk_rows: int):
    """``(fn, chunk, offset)`` per chunk of a CSV parsed in this process, as :func:`_iter_local` reads it."""
    offset = 0
    for chunk in _iter_local(path, "csv", None, chunk_rows):
        yield _score_partition, chunk, offset
        offset += len(chunk)


def _parquet_tasks(path: Path, chunk_rows: int):
    """A Parquet input's Dask tasks: spans of whole chunks of ``chunk_rows`` rows of one file, each about a row group
    or more, read by :func:`_parquet_chunks` as the local engine reads them. The rows' numbers come from the
    files' footers, so nothing is read twice."""
    import pyarrow.parquet as pq

    tasks, offset = [], 0
    with _reading(path):
        for f in input_files(path):
            with _reading(f):
                md = pq.ParquetFile(f).metadata
            n = md.num_rows
            biggest = max((md.row_group(i).num_rows for i in range(md.num_row_groups)), default=0)
            span = max(1, -(-biggest // chunk_rows)) * chunk_rows   # whole chunks, at least a row group's rows
            for start in range(0, n, span):
                # the absolute path: a worker started in another folder read 'plain.parquet' there ("No such file")
                tasks.append((_score_parquet_span, str(Path(f).absolute()), start, min(start + span, n), chunk_rows,
                              offset + start))
            offset += n
    return tasks, offset


def _score_partition(part: pd.DataFrame, offset: int, scorer: ChunkScorer):
    return [scorer(part, offset)]


def _score_parquet_span(path: str, start: int, stop: int, chunk_rows: int, offset: int, scorer: ChunkScorer):
    """Rows ``start`` to ``stop`` of a Parquet file scored chunk by chunk, as the local engine scores them."""
    out, at = [], offset
    for chunk in _parquet_chunks(Path(path), chunk_rows, start, stop):
        out.append(scorer(chunk, at))
        at += len(chunk)
    return out


def _blocksize(path: Path, chunk_rows: int) -> int | None:
    """Bytes per Dask partition for about ``chunk_rows`` rows (from the first 1000 lines); None (one partition)
    for a gzipped file, which cannot be split at byte offsets."""
    if path.suffix.lower() == ".gz":
        return None
    with open(path, "rb") as f:
        head = [f.readline() for _ in range(1001)]
    lines = [h for h in head[1:] if h]
    per_row = (sum(map(len, lines)) / len(lines)) if lines else 100.0
    return max(int(per_row * max(chunk_rows, 1)), 4096)


class _progress:
    """A Rich progress bar over rows (or a no-op)."""

    def __init__(self, enabled: bool, console, total: int | None, engine: str):
        self.enabled = enabled
        self.console = console
        self.total = total
        self.engine = engine

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.p = Progress(TextColumn("scoring ({task.fields[engine]})"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("rows"), TimeElapsedColumn(), console=self.console, transient=False)
        self.p.__enter__()
        task = self.p.add_task("score", total=self.total, engine=self.engine)
        return lambda n: self.p.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False
