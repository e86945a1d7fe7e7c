"""Request and response models generated from a bundle's stored schema.

The stored schema (:meth:`mlcase.data.Schema.to_dict`) says, per column, its
kind, its training missing rate, its categories and its range. From it this
module builds

* :class:`RecordSpec`: the field rules of one record (type, required or not,
  known categories, training range), shared by the server and batch scoring;
* a pydantic model of one record (:meth:`RecordSpec.record_model`), whose JSON
  schema is what ``/openapi.json`` and ``/docs`` show;
* a vectorised validator of a DataFrame (:meth:`RecordSpec.validate_frame`)
  that applies the same rules to batch input, row by row reasons included;
* :meth:`RecordSpec.frame`: records to a DataFrame with the training dtypes, the
  input the model's pipeline was fitted on.

A feature that was never missing in training is required; one that was
sometimes missing may be omitted or null and is then imputed the way training
imputed it, and flagged. An unknown category is accepted (the model handles it
the way training handled unseen values) and flagged; too many unknown
categories, or numbers far outside the training range, put a record outside the
model's domain (see :mod:`mlcase.serve.fallback`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import numpy as np
import pandas as pd

from ..data import comma_number, read_names
from ..errors import DataError
from ..times import as_datetimes, duration_seconds, us_date

MAX_TEXT = 10_000


@dataclass
class FieldRule:
    """How one feature column is validated and encoded."""

    name: str
    kind: str  # numeric | categorical | boolean | datetime | id | text
    required: bool
    categories: list[str] | None = None
    lo: float | None = None          # training min
    hi: float | None = None          # training max
    bool_as_text: bool = False       # boolean column stored as 'True'/'False' text in training
    known: frozenset = field(default_factory=frozenset)
    infinite: bool = False           # training read infinities here as missing: so does serving
    tokens: frozenset = field(default_factory=frozenset)  # ... and these markers ('.', 'NA' ...)
    comma: str | None = None         # training read '13,62' (decimal) or '25,879' (thousands) text as numbers
    duration: bool = False           # training read durations ('PT1H', '0 days 01:00:00', a timedelta) as seconds


@dataclass
class Issue:
    """One reason a record is invalid: the record index, the field and the message."""

    record: int
    field: str
    message: str

    def to_dict(self) -> dict:
        return {"record": self.record, "field": self.field, "message": self.message}


class RecordSpec:
    """The serving contract of a bundle: its features and how each is checked.

    Parameters
    ----------
    schema : dict
        The stored schema, ``Schema.to_dict()``.
    features : list of str
        The model's input columns.
    domain_margin : float
        A numeric value beyond ``margin * (max - min)`` outside the training
        range is out of domain.
    max_unseen : int
        More unseen categories than this in one record is out of domain.
    """

    def __init__(self, schema: dict, features: list[str], domain_margin: float = 0.5, max_unseen: int = 2):
        cols = {c["name"]: c for c in schema.get("columns", [])}
        missing = [f for f in features if f not in cols]
        if missing:
            raise DataError(f"the model's stored schema lacks the feature columns {', '.join(missing)}",
                            "re-register the model with `mlcase run` so its schema matches its features")
        self.features = list(features)
        self.target = schema.get("target")
        self.task = schema.get("task")
        self.classes = [str(c) for c in schema.get("classes") or []] or None
        self.other_columns = [c for c in cols if c not in set(features)]
        self.domain_margin = float(domain_margin)
        self.max_unseen = int(max_unseen)
        self.rules: dict[str, FieldRule] = {}
        for name in self.features:
            c = cols[name]
            kind = c["kind"]
            cats = [str(v) for v in c.get("categories") or []] or None
            bool_as_text = kind == "boolean" and "bool" not in str(c.get("dtype", "")).lower()
            # an identifier is no model input (candidates.column_groups drops it): never required (medicaldata::
            # indo_rct's patient `id` was, and a request without it, or with it null, was refused)
            self.rules[name] = FieldRule(
                name=name, kind=kind, required=float(c.get("missing_rate") or 0.0) == 0.0 and kind != "id",
                categories=cats, lo=c.get("min"), hi=c.get("max"), bool_as_text=bool_as_text,
                known=frozenset(cats or ()), infinite=bool(c.get("infinite")),
                tokens=frozenset(c.get("missing_tokens") or ()), comma=c.get("comma"),
                duration=bool(c.get("duration")))
        self._lo = {}
        self._hi = {}
        for r in self.rules.values():
            if r.kind == "numeric" and r.lo is not None and r.hi is not None:
                span = (r.hi - r.lo) or max(abs(r.hi), 1.0)
                self._lo[r.name] = r.lo - self.domain_margin * span
                self._hi[r.name] = r.hi + self.domain_margin * span
        self._model = None

    # ------------------------------------------------------------------ pydantic model
    def record_model(self, name: str = "Record"):
        """A pydantic model of one record (cached)."""
        if self._model is not None:
            return self._model
        from pydantic import BeforeValidator, ConfigDict, Field, create_model

        fields: dict[str, Any] = {}
        for r in self.rules.values():
            desc = self._describe(r)
            if r.kind == "numeric":  # true/false is not a number here (nor in batch scoring)
                # an infinity is refused, unless training read this column's infinities as missing
                # (drc::germination's `end`, infinite where a seed never germinated): then it is missing here too
                typ: Any = Annotated[float, Field(allow_inf_nan=r.infinite), BeforeValidator(_not_a_bool)]
                if r.tokens:  # medicaldata::opt writes an unknown lab value as '.', which training read as missing
                    typ = Annotated[typ | None, BeforeValidator(partial(_token_to_none, r.tokens))]
                if r.comma:   # a ';' export's '13,62', read as training read it
                    typ = Annotated[typ, BeforeValidator(partial(comma_number, r.comma))]
                if r.duration:   # 'PT1H' or '0 days 01:00:00' as seconds, as training read the column
                    typ = Annotated[typ, BeforeValidator(duration_seconds)]
                extra = {"examples": [r.lo]} if r.lo is not None else {}
            elif r.kind == "boolean":
                typ = bool
                extra = {"examples": [True]}
            elif r.kind == "datetime":
                typ = Annotated[datetime, BeforeValidator(_us_date_text)]
                extra = {}
            elif r.kind == "id":
                typ = Annotated[str, BeforeValidator(_number_to_text), Field(max_length=MAX_TEXT)]
                extra = {}
            else:
                typ = Annotated[str, BeforeValidator(_number_to_text), Field(max_length=MAX_TEXT)]
                extra = {"examples": r.categories[:3]} if r.categories else {}
            if r.required:
                fields[r.name] = (typ, Field(..., description=desc, **extra))
            else:
                fields[r.name] = (typ | None, Field(None, description=desc, **extra))
        for other in self.other_columns:
            fields[other] = (Any, Field(None, description="Not a model input; accepted and ignored."))
        model = create_model(name, __config__=ConfigDict(extra="forbid", title=name), **fields)
        model.__doc__ = "One record to score. Required fields were never missing in training."
        self._model = model
        return model

    @staticmethod
    def _describe(r: FieldRule) -> str:
        if r.kind == "id":
            return "an identifier: optional, and no model reads it"
        parts = [f"{r.kind}{'' if r.required else ', optional (imputed as in training when missing)'}"
                 + (", an infinity read as missing, as in training" if r.infinite else "")
                 + (", a duration: seconds, or text such as 'PT1H30M' or '0 days 01:30:00'" if r.duration else "")
                 + (f", {' or '.join(repr(t) for t in sorted(r.tokens))} read as missing, as in training"
                    if r.tokens else "")]
        if r.kind == "numeric" and r.lo is not None:
            parts.append(f"training range [{r.lo:g}, {r.hi:g}]")
        if r.categories:
            shown = ", ".join(r.categories[:30]) + (" ..." if len(r.categories) > 30 else "")
            parts.append(f"known categories: {shown}; an unknown one is accepted and flagged")
        return "; ".join(parts)

    def validate_records(self, items: list) -> tuple[list[dict], list[Issue]]:
        """Validate raw JSON records; return the clean records and every issue found."""
        from pydantic import ValidationError

        model = self.record_model()
        clean: list[dict] = []
        issues: list[Issue] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                issues.append(Issue(i, "(record)", f"expected a JSON object with the fields "
                                                   f"{', '.join(self.features[:8])}{' ...' if len(self.features) > 8 else ''}, "
                                                   f"got {type(item).__name__}"))
                continue
            if len({str(k).lower() for k in item}) < len(item) or any(str(k) != str(k).strip() for k in item):
                # 'class' and 'Class', 'age' and 'age ', as training read them
                item = dict(zip(read_names(item), item.values(), strict=True))
            try:
                rec = model.model_validate(item)
            except ValidationError as exc:
                issues.extend(self._issues(i, exc))
                continue
            clean.append({f: _finite_or_none(getattr(rec, f)) if self.rules[f].infinite else getattr(rec, f)
                          for f in self.features})
        return clean, issues

    def _issues(self, index: int, exc) -> list[Issue]:
        out = []
        for err in exc.errors(include_url=False):
            loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
            name = loc[0] if loc else "(record)"
            typ = err["type"]
            if typ == "missing":
                msg = f"is required (it was never missing in training); send a {self.rules[name].kind} value"
            elif typ == "extra_forbidden":
                import difflib

                close = difflib.get_close_matches(name, self.features, n=1)
                msg = "is not a column of this model" + (f"; did you mean '{close[0]}'?" if close else
                                                         f"; the fields are {', '.join(self.features[:10])}")
            elif name in self.rules:
                r = self.rules[name]
                got = err.get("input")
                msg = f"expected a {_kind_word(r.kind)}, got {_short(got)}"
                if got is None and r.required:   # a null where training never had a gap: say so, as for a missing key
                    msg = f"is null, and it was never missing in training; send a {r.kind} value"
                elif typ == "finite_number":
                    msg = f"expected a finite number, got {_short(got)}"
                elif typ == "string_too_long":
                    msg = f"is longer than {MAX_TEXT} characters"
            else:
                msg = err["msg"]
            out.append(Issue(index, name, msg))
        return out

    # ------------------------------------------------------------------ labels
    def label_values(self) -> list | None:
        """The JSON values a label may take: each class as text, and as the number or boolean it spells
        (``"1"`` and ``1``; ``"True"`` and ``true``). None for regression (any finite number)."""
        if self.task in ("regression", "ranking") or not self.classes:
            return None
        out: list = []
        for c in self.classes:
            out.append(c)
            if c in ("True", "False"):
                out.append(c == "True")
                continue
            try:
                number = float(c)
            except ValueError:
                continue
            if math.isfinite(number):
                out.append(int(number) if number.is_integer() and c.lstrip("-").isdigit() else number)
        return out

    def label_schema(self) -> dict:
        """The JSON schema of a label, for ``/openapi.json``: the classes (or a number), or null."""
        values = self.label_values()
        one = {"type": "number"} if values is None else {"enum": values}
        return {"anyOf": [one, {"type": "null"}], "title": "Label",
                "description": "The outcome: " + self._label_words() + "; null for none"}

    def label_issue(self, label) -> str | None:
        """Why ``label`` cannot be an outcome of this model's target, or None when it can.

        A classifier's label must be one of :meth:`label_values` (a class, or the number or boolean it
        spells); a regression label a finite number. ``None`` (no outcome) is accepted; NaN, infinities
        and booleans standing in for numbers are not.
        """
        if label is None:
            return None
        values = self.label_values()
        if values is None:
            if self.task not in ("regression", "ranking"):
                return None
            ok = isinstance(label, (int, float)) and not isinstance(label, bool) and math.isfinite(label)
        else:
            ok = any(isinstance(label, bool) == isinstance(v, bool) and type(label) is not str and
                     type(v) is not str and label == v or type(label) is str and label == v for v in values)
        return None if ok else f"expected {self._label_words()}, got {_short(label)}"

    def _label_words(self) -> str:
        if self.task == "regression":
            return f"a finite number (the value of '{self.target}')"
        if self.task == "ranking":
            return f"a finite number (the item's outcome: a click 1/0, a rating of '{self.target}')"
        shown = ", ".join(repr(c) for c in (self.classes or [])[:10])
        return f"one of the classes of '{self.target}' ({shown}{' ...' if len(self.classes or []) > 10 else ''})"

    # ------------------------------------------------------------------ frames
    def frame(self, records: list[dict]) -> pd.DataFrame:
        """Validated records as a DataFrame with the dtypes training used."""
        data = {}
        for name, r in self.rules.items():
            values = [rec.get(name) for rec in records]
            data[name] = self._column(r, values)
        return pd.DataFrame(data, index=pd.RangeIndex(len(records)))

    @staticmethod
    def _column(r: FieldRule, values: list):
        if r.kind == "numeric":
            return np.array([np.nan if v is None else v for v in values], dtype="float64")
        if r.kind == "boolean":
            if r.bool_as_text:
                return pd.Series([None if v is None else str(bool(v)) for v in values], dtype="str")
            if any(v is None for v in values):
                return pd.Series(values, dtype="object")
            return np.array(values, dtype=bool)
        if r.kind == "datetime":
            return as_datetimes(pd.Series(values, dtype="object"))
        return pd.Series(values, dtype="str")

    def validate_frame(self, df: pd.DataFrame, offset: int = 0) -> tuple[pd.DataFrame, list[Issue], np.ndarray]:
        """Apply the record rules to every row of ``df``.

        Returns the clean rows as a typed frame (index kept), the issues (record
        = ``offset`` + position) and a boolean mask of the rows that passed.
        """
        n = len(df)
        ok = np.ones(n, dtype=bool)
        issues: list[Issue] = []
        positions = np.arange(n)
        missing_cols = [c for c, r in self.rules.items() if r.required and c not in df.columns]
        if missing_cols:
            raise DataError(f"the input lacks the required columns {', '.join(missing_cols)}",
                            "add them (they were never missing in training)")
        out = {}

        def bad(mask: np.ndarray, name: str, message) -> None:
            for p in positions[mask]:
                ok[p] = False
                issues.append(Issue(int(offset + p), name, message(p) if callable(message) else message))

        for name, r in self.rules.items():
            if name not in df.columns:
                out[name] = self._column(r, [None] * n)
                continue
            s = df[name].reset_index(drop=True)
            if r.tokens and not pd.api.types.is_numeric_dtype(s):   # object, or pandas 3's str
                s = s.mask(s.map(partial(_is_token, r.tokens)))
            if r.comma and r.kind == "numeric" and not pd.api.types.is_numeric_dtype(s):
                s = s.astype("object").map(partial(comma_number, r.comma), na_action="ignore")
            if r.duration and r.kind == "numeric" and not pd.api.types.is_numeric_dtype(s):
                # a Parquet duration (timedelta64), or its CSV's text: seconds, as training read the column
                s = (s.dt.total_seconds() if pd.api.types.is_timedelta64_dtype(s) else
                     s.astype("object").map(duration_seconds, na_action="ignore"))
            isna = s.isna().to_numpy()
            if r.required:
                bad(isna, name, f"is required (it was never missing in training); send a {r.kind} value")
            if r.kind == "numeric" and (pd.api.types.is_datetime64_any_dtype(s) or
                                        pd.api.types.is_timedelta64_dtype(s)):
                # a Parquet date column read as its nanoseconds: every row went out of range to the constant tier
                what = "duration" if pd.api.types.is_timedelta64_dtype(s) else "date"
                bad(~isna, name, lambda p, s=s, w=what: f"expected a number, got the {w} {_short(str(s.iloc[p]))}")
                out[name] = np.full(n, np.nan)
            elif r.kind == "numeric":
                bools = np.zeros(n, dtype=bool)
                if s.dtype == object or pd.api.types.is_bool_dtype(s):  # true/false is not a number
                    bools = np.fromiter((isinstance(v, (bool, np.bool_)) for v in s), dtype=bool, count=n)
                bad(bools, name, lambda p, s=s: f"expected a number, got {_short(s.iloc[p])}")
                num = pd.to_numeric(s.where(~bools) if bools.any() else s, errors="coerce")
                vals = num.to_numpy(dtype="float64", na_value=np.nan)
                notnum = np.isnan(vals) & ~isna & ~bools
                bad(notnum, name, lambda p, s=s: f"expected a number, got {_short(s.iloc[p])}")
                inf = np.isinf(vals)
                if not r.infinite:      # else missing, as training read this column's infinities
                    bad(inf, name, "expected a finite number, got infinity")
                vals = np.where(notnum | inf | bools, np.nan, vals)
                out[name] = vals
            elif r.kind == "boolean":
                mapped = s.map(_to_bool, na_action="ignore")
                notbool = mapped.isna().to_numpy() & ~isna
                bad(notbool, name, lambda p, s=s: f"expected true or false, got {_short(s.iloc[p])}")
                out[name] = self._column(r, [None if (m is None or m != m) else bool(m) for m in mapped])
            elif r.kind == "datetime":
                out[name] = as_datetimes(s)
            else:
                text = s.astype("str")
                toolong = (text.str.len().fillna(0).to_numpy() > MAX_TEXT)
                bad(toolong, name, f"is longer than {MAX_TEXT} characters")
                out[name] = text.where(~pd.Series(isna), np.nan).astype("str")
        frame = pd.DataFrame(out, index=df.index)
        issues.sort(key=lambda i: i.record)
        return frame[ok], issues, ok

    # ------------------------------------------------------------------ domain
    def flags(self, rec: dict) -> dict[str, list[str]]:
        """Per record: optional features that were missing, unknown categories, numbers out of range."""
        missing, unknown, out_of_range = [], [], []
        for name, r in self.rules.items():
            v = rec.get(name)
            if v is None:
                if r.kind != "id":  # no model reads an identifier: its absence changes no answer
                    missing.append(name)
            elif r.known and r.kind == "categorical" and v not in r.known:
                unknown.append(name)
            elif name in self._lo and not (self._lo[name] <= v <= self._hi[name]):
                out_of_range.append(name)
        return {"missing": missing, "unknown_categories": unknown, "out_of_range": out_of_range}

    def out_of_domain(self, flags: dict[str, list[str]]) -> str | None:
        """Why a record is outside the model's domain, or None."""
        if flags["out_of_range"]:
            return "out_of_domain: " + ", ".join(flags["out_of_range"]) + " beyond the training range"
        if len(flags["unknown_categories"]) > self.max_unseen:
            return (f"out_of_domain: {len(flags['unknown_categories'])} unseen categories "
                    f"({', '.join(flags['unknown_categories'][:5])})")
        return None

    def domain_mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised ``out_of_domain(flags(rec)) is not None`` for a typed frame (batch scoring)."""
        n = len(frame)
        ood = np.zeros(n, dtype=bool)
        unseen = np.zeros(n, dtype=int)
        for name, r in self.rules.items():
            s = frame[name]
            if r.known and r.kind == "categorical":
                unseen += (s.notna().to_numpy() & ~s.isin(r.known).to_numpy())
            if name in self._lo:
                v = s.to_numpy(dtype="float64", na_value=np.nan)
                with np.errstate(invalid="ignore"):
                    ood |= (v < self._lo[name]) | (v > self._hi[name])
        return ood | (unseen > self.max_unseen)

    def frame_flags(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[dict]]:
        """Vectorised :meth:`flags` for a typed frame: (out-of-domain mask, per-row flags)."""
        n = len(frame)
        miss = {}
        unk = {}
        oor = {}
        for name, r in self.rules.items():
            s = frame[name]
            isna = s.isna().to_numpy()
            miss[name] = isna
            if r.known and r.kind == "categorical":
                unk[name] = ~isna & ~s.isin(r.known).to_numpy()
            if name in self._lo:
                v = s.to_numpy(dtype="float64")
                oor[name] = ~isna & ((v < self._lo[name]) | (v > self._hi[name]))
        n_unk = sum(unk.values()) if unk else np.zeros(n, dtype=int)
        any_oor = np.logical_or.reduce(list(oor.values())) if oor else np.zeros(n, dtype=bool)
        ood = any_oor | (np.asarray(n_unk) > self.max_unseen)
        flags = []
        for i in range(n):
            flags.append({"missing": [c for c, m in miss.items() if m[i]],
                          "unknown_categories": [c for c, m in unk.items() if m[i]],
                          "out_of_range": [c for c, m in oor.items() if m[i]]})
        return ood, flags

    def example(self) -> dict:
        """A typical record (medians and most frequent categories), for warm-up and docs."""
        rec = {}
        for name, r in self.rules.items():
            if r.kind == "numeric":
                rec[name] = 0.0 if r.lo is None else (r.lo + r.hi) / 2
            elif r.kind == "boolean":
                rec[name] = False
            elif r.kind == "datetime":
                rec[name] = datetime(2020, 1, 1)
            else:
                rec[name] = r.categories[0] if r.categories else "x"
        return rec


def _is_token(tokens: frozenset, v) -> bool:
    """Whether ``v`` is a missing-value marker that training read as missing (``'.'``)."""
    return isinstance(v, str) and v.strip() in tokens


def _token_to_none(tokens: frozenset, v):
    """A marker training read as missing is missing here too (a record's field)."""
    return None if _is_token(tokens, v) else v


def _not_a_bool(v):
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    return v


def _us_date_text(v):
    """A month/day/year text (``9/30/1990 0:00:00``) as the datetime training read it; anything else as sent."""
    t = us_date(v) if isinstance(v, str) and "/" in v else None
    return t.to_pydatetime() if t is not None else v


def _number_to_text(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and math.isfinite(v):
        return str(int(v)) if v.is_integer() else str(v)
    return v


_TRUE = {"true", "1", "yes", "y", "t", "on", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "off", "0.0"}


def _to_bool(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    t = str(v).strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def _kind_word(kind: str) -> str:
    return {"numeric": "number", "boolean": "boolean (true/false)", "datetime": "date-time (ISO 8601)",
            "categorical": "string (a category)", "id": "string", "text": "string"}.get(kind, kind)


def _short(v) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def synthetic_records(schema: dict, spec: RecordSpec, n: int = 64, seed: int = 0) -> list[dict]:
    """Records spread over the training distribution: every known category, numbers at the
    stored quantiles and in between, and missing values where training had them. Used to
    warm up the server and to check the fast path against the pipeline at start-up."""
    rng = np.random.default_rng(seed)
    info = {c["name"]: c for c in schema.get("columns", [])}
    out = []
    for i in range(n):
        rec = {}
        for j, (name, r) in enumerate(spec.rules.items()):
            c = info[name]
            if not r.required and i % 7 == 3:
                rec[name] = None
            elif r.kind == "numeric":
                q = c.get("quantiles") or ([r.lo, r.hi] if r.lo is not None else [0.0, 1.0])
                k = i % len(q)
                lo, hi = q[max(k - 1, 0)], q[k]
                v = float(lo + (hi - lo) * rng.random()) if i % 2 else float(q[k])
                rec[name] = float(round(v)) if c.get("dtype", "").startswith("int") else v
            elif r.kind == "boolean":
                rec[name] = bool(i % 2)
            elif r.kind == "datetime":
                rec[name] = datetime(2020, 1, 1 + i % 28)
            elif r.categories:
                rec[name] = r.categories[(i + j) % len(r.categories)]
            else:
                rec[name] = f"value-{i}"
        out.append(rec)
    return out


def _finite_or_none(v):
    """A field whose infinities training read as missing: an infinity (or NaN) is missing here too."""
    return None if isinstance(v, float) and not math.isfinite(v) else v
