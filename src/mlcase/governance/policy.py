"""What the prediction log keeps of each column: ``raw``, ``hashed`` or ``drop`` (``serving.log_inputs``).

A column named in ``serving.log_inputs`` gets what it says; a column declared under
``personal_data`` is ``hashed`` by default; every other column is kept ``raw``. The unit a
record is routed by (``data.id``, logged as ``unit_id``) follows the same rule under its
column's name. The policy applies where the server writes a row (:meth:`LogPolicy.inputs`,
:meth:`LogPolicy.unit`), and is read back by monitoring, review and replay to say what they
cannot do for a column that is not kept raw (:meth:`LogPolicy.limits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

RAW, HASHED, DROP = "raw", "hashed", "drop"


@dataclass
class LogPolicy:
    """The log policy of one case.

    Attributes
    ----------
    kept : dict
        Column -> ``hashed`` or ``drop``, for every column not kept raw.
    id_column : str or None
        ``data.id``: the column ``unit_id`` holds.
    case_name : str
        The salt of the hash (see :mod:`mlcase.governance.pseudonym`).
    """

    kept: dict[str, str] = field(default_factory=dict)
    id_column: str | None = None
    case_name: str = ""
    named: tuple = ()   # the columns serving.log_inputs names (checked against the served model's inputs)
    _pseudo: object = field(default=None, init=False, repr=False)

    @classmethod
    def from_spec(cls, spec) -> LogPolicy:
        kept = {c: HASHED for c in spec.personal_columns}
        kept.update(spec.serving.log_inputs)
        return cls({c: v for c, v in kept.items() if v != RAW}, spec.data.id, spec.name,
                   tuple(spec.serving.log_inputs))

    def of(self, column: str) -> str:
        return self.kept.get(column, RAW)

    @property
    def active(self) -> bool:
        return bool(self.kept)

    def _hash(self, column: str, value):
        if self._pseudo is None:
            from .pseudonym import Pseudonymizer

            self._pseudo = Pseudonymizer(self.case_name)
        return self._pseudo(column, value)

    @property
    def key_id(self) -> str | None:
        """The log key's id (:func:`~mlcase.governance.pseudonym.log_key_id`), logged as ``log_key_id`` with each
        row where this policy hashes a column; None where it hashes none."""
        if HASHED not in self.kept.values():
            return None
        if self._pseudo is None:
            self._hash("", "")
        return self._pseudo.key_id

    def load_key(self) -> None:
        """Read the log key now (a server calls this at start, so a bad key fails before serving)."""
        if HASHED in self.kept.values():
            self._hash("", "")

    def inputs(self, record: dict) -> dict:
        """The record as the log keeps it: hashed columns hashed, dropped columns left out."""
        if not self.kept:
            return record
        out = {}
        for k, v in record.items():
            how = self.kept.get(k, RAW)
            if how == RAW:
                out[k] = v
            elif how == HASHED:
                out[k] = self._hash(k, v)
        return out

    def unit(self, unit_id: str | None, column: str | None = None) -> str | None:
        """``unit_id`` as the log keeps it, under ``column``'s policy (default ``data.id``; a ranking list's
        unit is its ``data.group``), in its one form (:func:`~mlcase.governance.pseudonym.unit_text`: NFC, a
        UUID and an e-mail in lower case) whether kept raw or hashed."""
        from .pseudonym import unit_text

        column = column or self.id_column
        if unit_id is None or not column:
            return unit_id
        how = self.of(column)
        if how == DROP:
            return None
        unit_id = unit_text(unit_id)  # one form per person, raw or hashed, as erasure finds it
        return unit_id if how == RAW else self._hash(column, unit_id)

    def check_columns(self, features: list[str], freshness: dict | None = None) -> None:
        """Every column ``serving.log_inputs`` and ``data.freshness`` name must be an input (or ``data.id``)."""
        import difflib

        from ..errors import SpecError

        allowed = list(features) + ([self.id_column] if self.id_column else [])
        for where, cols, ok in (("serving.log_inputs", self.named, allowed), ("data.freshness", freshness or {},
                                                                                 list(features))):
            for c in cols:
                if c not in ok:
                    close = difflib.get_close_matches(c, ok, n=1)
                    raise SpecError(f"{where} names '{c}', which is not an input of the served model"
                                    + (" or data.id" if where == "serving.log_inputs" else ""),
                                    f"did you mean '{close[0]}'?" if close else
                                    f"name one of {', '.join(ok[:12])}")

    def limits(self, features: list[str]) -> dict[str, str]:
        """What cannot be done for each model input the log does not keep raw, in plain words."""
        what = {HASHED: "hashed in", DROP: "dropped from"}
        return {f: f"{what[self.of(f)]} the prediction log (serving.log_inputs): its drift, per-row costs, SHAP "
                   "reasons, rule verdicts and replay cannot be computed from the log"
                for f in features if self.of(f) in what}
