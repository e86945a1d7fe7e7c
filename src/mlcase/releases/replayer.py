"""``mlcase replay``: recompute a logged decision with exactly what made it, or name what differs.

Every prediction-log row records the version its arm routes to (``arm_version``),
the tier and version that answered, and the provenance of that tier: the sha256
of its model file and of its ``bundle.json`` (schema, threshold, calibration), the
sha256 of the schema the request was validated against, the threshold and the
mlcase version (:data:`mlcase.serve.predlog.PREDICTION_COLUMNS_ADDED`).

Replay loads that version from the registry (its files' hashes and signature are
verified first), rebuilds the same tier (model, champion, previous champion,
baseline, rule or constant), validates the logged inputs against its schema, and
recomputes the score, the conformal set, the prediction and the decision, with
the SHAP explanation of a model's answer. The decision and a class prediction must
be identical; scores, a regression prediction and interval bounds may differ by at
most 1e-9 relative to their size (the server may have used the compiled
single-record fast path, which it keeps only within that tolerance of the
pipeline, or scored the row in a batch, which rounds the last bits differently).
What differs is named: the model file hash (a file changed after registration),
the bundle, the schema, the threshold, a version no longer in the registry, and,
when outputs differ, the code version.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from ..case import Case, as_case
from ..errors import MlcaseError, NotFoundError, SpecError, redact_text
from ..formats import signed

TOLERANCE = 1e-9
_COLUMNS = ("request_id", "ts", "model_version", "tier", "fallback", "reason", "inputs", "score", "scores",
            "prediction", "decision", "conformal", "arm", "model_decision", "arm_version", "model_sha256",
            "bundle_sha256", "schema_sha256", "threshold", "code_version")


@dataclass
class Replay:
    """One logged decision replayed: ``reproduced``, and every difference (``what``, ``logged``, ``now``)."""

    request_id: str
    reproduced: bool
    differences: list[dict]
    logged: dict
    replayed: dict | None
    explanation: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"request_id": self.request_id, "reproduced": self.reproduced, "differences": self.differences,
                "logged": self.logged, "replayed": self.replayed, "explanation": self.explanation,
                "notes": self.notes}

    def summary(self) -> str:
        if self.reproduced:
            v = self.logged["model_version"]
            who = f"version {v} ({self.logged['tier']})" if v is not None else f"the {self.logged['tier']} tier"
            if self.replayed is not None and self.replayed.get("position") is not None:  # a ranked item
                return f"request {self.request_id}: reproduced: {who} scores the item {self.replayed['score']:.6g} again"
            return f"request {self.request_id}: reproduced: {who} decides {self.logged['decision']!r} again"
        first = "; ".join(f"{d['what']} differs (logged {_short(d['logged'])}, now {_short(d['now'])})"
                          for d in self.differences[:3])
        return f"request {self.request_id}: not reproduced: {first}"

    def print(self, console) -> None:
        from ..formats import markup_escape

        console.print(("[green]" if self.reproduced else "[red]") + markup_escape(self.summary()) + "[/]")
        if self.replayed and self.replayed.get("position") is not None:
            console.print(markup_escape(f"  score {self.replayed.get('score')} (logged at position {self.replayed['position']})"))
        elif self.replayed:
            r = self.replayed
            console.print(markup_escape(f"  score {r.get('score')}, prediction {r.get('prediction')!r}, decision "
                                 f"{r.get('decision')!r}, conformal {r.get('conformal')}, threshold {r.get('threshold')}"))
        for c in (self.explanation or {}).get("contributions", [])[:5]:
            console.print(f"  {markup_escape(str(c.get('feature')))} = {markup_escape(str(c.get('value')))}: "
                          f"{signed(c.get('contribution'))}")
        for n in self.notes:
            console.print(f"  [dim]note: {markup_escape(n)}[/dim]")


def _short(v) -> str:
    text = str(v)
    return text[:12] + "…" if len(text) == 64 and all(ch in "0123456789abcdef" for ch in text) else text[:120]


# --------------------------------------------------------------------------- reading the log
def _rows(case: Case, log: str | None, request_ids: list[str] | None, last: int | None) -> pd.DataFrame:
    from ..serve.predlog import open_existing
    from .against import not_a_log

    not_a_log(case, log, "replay")
    backend, _ = open_existing(case, log)
    try:
        have = set(backend.read_frame("SELECT * FROM predictions LIMIT 0").columns)
        cols = ", ".join(c if c in have else f"NULL AS {c}" for c in _COLUMNS)
        if request_ids is not None:
            found = [r for k in range(0, len(request_ids), 500) for r in
                     backend.lookup("predictions", request_ids[k:k + 500], ("request_id",))]
            known = {r[0] for r in found}
            missing = [r for r in request_ids if r not in known]
            if missing:
                raise NotFoundError(f"request id {missing[0]!r} is not in the prediction log"
                                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                    "use a request_id the server answered with, or pass --log with its log")
            parts = []
            for k in range(0, len(request_ids), 500):
                chunk = request_ids[k:k + 500]
                names = {f"r{i}": v for i, v in enumerate(chunk)}
                parts.append(backend.read_frame(f"SELECT {cols} FROM predictions WHERE request_id IN "
                                                f"({', '.join(':' + n for n in names)})", names))
            rows = pd.concat(parts, ignore_index=True)
            order = {r: i for i, r in enumerate(request_ids)}
            rows = rows.sort_values("request_id", key=lambda s: s.map(order)).reset_index(drop=True)
        else:
            rows = backend.read_frame(f"SELECT {cols} FROM predictions ORDER BY ts DESC LIMIT :n", {"n": int(last or 1)})
        return _with_list_sizes(backend, rows)
    finally:
        backend.close()


def _with_list_sizes(backend, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``list_size``: for an item the popularity fallback ordered, how many items its list held
    (its request ids are ``<list id>:<position>``); the others get none."""
    sizes = {}
    for rid in rows.loc[rows["tier"] == "popularity", "request_id"].astype(str):
        lid = rid.rsplit(":", 1)[0]
        if lid not in sizes:
            found = backend.read_frame("SELECT count(*) AS n FROM predictions WHERE request_id LIKE :p",
                                       {"p": lid + ":%"})   # a list id is a uuid's hex: no LIKE wildcards
            sizes[lid] = int(found["n"].iloc[0])
    return rows.assign(list_size=[sizes.get(str(r).rsplit(":", 1)[0]) for r in rows["request_id"]])


# --------------------------------------------------------------------------- rebuilding what answered
class _Refused(Exception):
    def __init__(self, difference: dict):
        super().__init__(difference["what"])
        self.difference = difference


class _Replayer:
    """Bundles and tiers by version, loaded (and verified) once for many rows."""

    def __init__(self, case: Case):
        self.case = case
        self._bundles: dict = {}

    def bundle(self, version: int, logged: dict):
        if version not in self._bundles:
            self._bundles[version] = self._load(version, logged)
        got = self._bundles[version]
        if isinstance(got, dict):
            raise _Refused(got)
        return got

    def _load(self, version: int, logged: dict):
        from .. import tracking
        from ..errors import ModelError

        try:
            return tracking.load_bundle(self.case, alias=None, version=int(version))
        except NotFoundError:
            return {"what": "model version", "logged": int(version), "now": "not in the registry any more"}
        except ModelError as exc:
            detail = redact_text(str(exc))
            try:
                files = tracking.bundle_file_hashes(self.case, int(version))
            except Exception:  # noqa: BLE001 - the files are gone: the load error says it
                files = {}
            rec = files.get("recorded") or {}
            for key, what in (("model_sha256", "model file hash"), ("bundle_sha256", "bundle.json hash")):
                if files.get(key) and files[key] != rec.get(key):
                    return {"what": what, "logged": logged.get(key) or rec.get(key), "now": files[key],
                            "detail": detail}
            return {"what": "signature", "logged": "valid when the decision was made", "now": detail}

    def tier(self, row: dict, arm_bundle):
        from ..serve.fallback import Tier, constant_answer

        name = row["tier"] or "model"
        spec = self.case.spec
        if name == "constant":
            return Tier("constant", constant=constant_answer(spec, arm_bundle.schema, arm_bundle.task,
                                                              arm_bundle.classes, arm_bundle.positive,
                                                              arm_bundle.reference))
        if name == "rule":
            cols = [c["name"] for c in arm_bundle.schema.get("columns", [])]
            if row["model_version"] is not None and not _isnan(row["model_version"]):
                b = self.bundle(int(row["model_version"]), row)
                return Tier("rule", bundle=b, rule=b.rule, rule_columns=[c["name"] for c in b.schema.get("columns", [])])
            if not spec.rule_baselines:
                raise _Refused({"what": "rule", "logged": "the spec's rule", "now": "the spec has no rule"})
            return Tier("rule", rule=spec.rule_baselines[0].rule, rule_columns=cols)
        if row["model_version"] is None or _isnan(row["model_version"]):
            raise _Refused({"what": "model version", "logged": None,
                            "now": "the model was given to the server directly, not from the registry"})
        return Tier(name, self.bundle(int(row["model_version"]), row))


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _value(v):
    return None if v is None or _isnan(v) else v


def _drawn(answer, tier) -> bool:
    """Whether a binary answer's score sits at its bundle's split threshold (its decision a draw)."""
    b = tier.bundle
    if b is None or b.task != "binary" or b.tie_share is None or b.threshold is None or answer.score is None:
        return False  # (a deferred answer's predicted class is drawn too)
    score = tier.rule_score(answer.score) if tier.rule is not None else answer.score
    if score is None:
        return False
    from ..tasks.binary import at_threshold

    return bool(at_threshold([score], b.threshold)[0])


# --------------------------------------------------------------------------- replaying
def _raw_score(answer, bundle):
    """The score a deferral key is computed from: the class probabilities of a multiclass answer."""
    if bundle.task == "multiclass" and answer.scores:
        return [answer.scores[str(c)] for c in bundle.classes]
    return answer.score


def _compare(row: dict, answer, tier, arm_bundle, decider=None) -> tuple[list[dict], list[str]]:
    from .. import __version__
    from ..bundle import schema_sha256

    diffs, notes = [], []
    holdout = row["arm"] == "holdout"
    logged_decision = row["model_decision"] if holdout and row["model_decision"] else row["decision"]
    if arm_bundle.task == "ranking":
        # a ranked item's log row holds its position and shown / below_k, which follow from the scores of every
        # item of its list (a stable sort); the item's own score is what one row can replay (every item was
        # "not reproduced" on dslabs::movielens: position 12 against the score -0.42)
        notes.append(f"position {row['prediction']} and '{logged_decision}' follow from the scores of the whole "
                     "list; the item's score was replayed")
    elif _drawn(answer, tier) and (answer.decision != logged_decision or not _same_prediction(
            row["prediction"], answer.prediction, arm_bundle.task)):
        # a score at a split threshold is flagged by a draw (Decider.answer): the same score may go either way
        notes.append(f"the score {answer.score:.6g} sits at the split threshold, where {tier.bundle.tie_share:.1%} of "
                     f"the rows are flagged by a draw: '{logged_decision}' then and '{answer.decision}' now are both "
                     "the model's decision")
    elif {answer.decision, logged_decision} == {"review", "auto"} and _same_prediction(
            row["prediction"], answer.prediction, arm_bundle.task) and decider is not None and decider.defer_drawn(
            tier.bundle, _raw_score(answer, arm_bundle), answer.conformal):
        # a case tied with the deferral cut goes to review by a draw (Decider.deferred), as a split threshold flags
        cut = tier.bundle.conformal["defer_cut"]
        notes.append(f"the case ties with the deferral cut, where {cut['tie_share']:.1%} of the tied cases go to review "
                     f"by a draw: '{logged_decision}' then and '{answer.decision}' now are both the model's decision")
    else:
        if answer.decision != logged_decision:
            diffs.append({"what": "decision", "logged": logged_decision, "now": answer.decision})
        if not holdout and not _same_prediction(row["prediction"], answer.prediction, arm_bundle.task):
            diffs.append({"what": "prediction", "logged": row["prediction"], "now": answer.prediction})
    logged_score = _value(row["score"])
    if logged_score is not None and answer.score is not None and arm_bundle.task != "multiclass" and \
            not _close(logged_score, answer.score):
        diffs.append({"what": "score", "logged": logged_score, "now": answer.score})
    if _value(row["scores"]):  # a null beside JSON text in the column is read as NaN
        old = json.loads(row["scores"])
        if any(not _close(old[k], v) for k, v in (answer.scores or {}).items() if k in old):
            diffs.append({"what": "scores", "logged": old, "now": answer.scores})
    if not _same_set(json.loads(row["conformal"]) if _value(row["conformal"]) else None, answer.conformal):
        diffs.append({"what": "conformal set", "logged": row["conformal"], "now": answer.conformal})
    prov = tier.provenance()
    for key, what in (("model_sha256", "model file hash"), ("bundle_sha256", "bundle.json hash (schema, threshold, "
                                                                            "calibration)")):
        if row.get(key) and prov.get(key) and row[key] != prov[key]:
            diffs.append({"what": what, "logged": row[key], "now": prov[key]})
    thr = _value(row.get("threshold"))
    if thr is not None and prov.get("threshold") is not None and abs(float(thr) - prov["threshold"]) > 0:
        diffs.append({"what": "threshold", "logged": thr, "now": prov["threshold"]})
    if row.get("schema_sha256") and row["schema_sha256"] not in {schema_sha256(arm_bundle)} | (
            {schema_sha256(tier.bundle)} if tier.bundle is not None else set()):
        diffs.append({"what": "schema", "logged": row["schema_sha256"], "now": schema_sha256(arm_bundle)})
    code = row.get("code_version")
    if code and code != __version__:
        (diffs.append if diffs else notes.append)(
            {"what": "code version", "logged": code, "now": __version__} if diffs else
            f"logged by mlcase {code}, replayed by {__version__}: the outputs are the same")
    if not row.get("model_sha256"):
        notes.append("logged before provenance was recorded: the files' hashes are checked against the registry only")
    return diffs, notes


def _close(a, b) -> bool:
    """Equal within TOLERANCE relative to the values' size (at least 1): a regression case's logged price
    and its replay differ in the last bits when the log came from a batch and the replay is one row
    (datasets::mtcars: 16.125183207241708 against 16.12518320724171, reported as "not reproduced")."""
    a, b = float(a), float(b)
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def _same_prediction(logged, now, task: str) -> bool:
    if task == "regression":
        try:
            return _close(logged, now)
        except (TypeError, ValueError):
            pass
    return str(now) == str(logged)


def _same_set(old, new) -> bool:
    if old is None or new is None:
        return old is None and new is None
    if len(old) != len(new):
        return False
    nums = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in list(old) + list(new))
    if nums:
        return all(_close(a, b) for a, b in zip(old, new, strict=True))
    return [str(x) for x in old] == [str(x) for x in new]


def _replay_rows(case: Case, rows: pd.DataFrame, explain: bool) -> list[Replay]:
    from ..serve.fallback import Decider, _call, conformal_sets

    rp = _Replayer(case)
    from ..governance.policy import LogPolicy

    spec = case.spec
    policy = LogPolicy.from_spec(spec)
    out: list[Replay] = []
    for row in rows.to_dict("records"):
        logged = {k: _value(row.get(k)) for k in ("model_version", "arm_version", "tier", "arm", "decision",
                                                  "model_decision", "prediction", "score", "threshold", "code_version")}
        for k in ("model_version", "arm_version"):  # a column with nulls is read as floats: 2.0
            if logged[k] is not None:
                logged[k] = int(logged[k])
        rid = row["request_id"]
        try:
            arm_v = _value(row.get("arm_version")) or _value(row.get("model_version"))
            if arm_v is None:
                raise _Refused({"what": "model version", "logged": None, "now": "the answering model was not "
                                "from the registry (or the row predates arm_version)"})
            arm_bundle = rp.bundle(int(arm_v), row)
            if row["tier"] == "popularity":  # no model ordered the list: the bundle's item counts did
                item_col = (arm_bundle.ranking or {}).get("item")
                _not_hidden(policy, [item_col] if item_col else [])
                out.append(_popularity(rid, row, logged, arm_bundle))
                continue
            tier = rp.tier(row, arm_bundle)
            spec_r = tier.spec if tier.spec is not None else _record_spec(arm_bundle)
            _not_hidden(policy, list(spec_r.features))
        except _Refused as r:
            out.append(Replay(rid, False, [r.difference], logged, None))
            continue
        clean, issues = spec_r.validate_records([json.loads(row["inputs"] or "{}")])
        if issues:
            out.append(Replay(rid, False, [{"what": "schema", "logged": "the inputs were valid",
                                            "now": f"{issues[0].field}: {issues[0].message}"}], logged, None))
            continue
        if tier.kind == "constant":  # no model: its answer is the case's constant, whatever the inputs
            scores = [None]
        else:
            scores = _call(tier, clean)
        if isinstance(scores, Exception):
            out.append(Replay(rid, False, [{"what": f"{tier.name} tier", "logged": "answered", "now": str(scores)}],
                              logged, None))
            continue
        conformal = None
        if tier.kind == "model" and tier.bundle.conformal:
            conformal = conformal_sets(tier.bundle, scores, lambda t=tier, c=clean: t.spec.frame(c))[0]
        decider = Decider(arm_bundle.task, arm_bundle.classes, arm_bundle.positive, defer=spec.conformal.defer,
                          max_interval_width=spec.conformal.max_interval_width)
        a = decider.answer(tier, scores[0], conformal, [], {})
        diffs, notes = _compare(row, a, tier, arm_bundle, decider)
        if tier.kind == "constant":
            why = _value(row.get("reason"))
            notes.append("the constant tier's answer was replayed, not why the tiers before it did not answer"
                         + (f" (logged: {why})" if why else ""))
        if row["arm"] == "holdout":
            notes.append(f"a held-out unit: today's process decided {row['decision']!r} (logged, not replayed); "
                         "the model's own decision is what was replayed")
        replayed = {"score": a.score, "scores": a.scores, "prediction": a.prediction, "decision": a.decision,
                    "conformal": a.conformal, "tier": a.tier, "model_version": a.model_version,
                    "threshold": tier.provenance().get("threshold")}
        if arm_bundle.task == "ranking":
            # one item's row replays its score only; its position and shown / below_k are the list's (a pointwise
            # answer's prediction and decision 'auto' printed beside "decides 'shown' again" on DAAG::spam7)
            replayed.update(prediction=None, decision=None, position=_value(row["prediction"]))
        explanation = _explain(tier, clean) if explain and tier.kind == "model" else None
        out.append(Replay(rid, not diffs, diffs, logged, replayed, explanation, notes))
    return out


def _not_hidden(policy, columns: list[str]) -> None:
    """Refuse a replay whose inputs the log keeps hashed or not at all (serving.log_inputs / personal_data): the
    value read is not there to read again. An item the popularity fallback ordered is looked up by its item
    column, so a hashed item is refused the same way (it was "not reproduced" against a popularity of 0)."""
    hidden = policy.limits(columns)
    if hidden:
        col = next(iter(hidden))
        raise _Refused({"what": "inputs", "logged": f"{col} as the log keeps it", "now": f"'{col}' is {hidden[col]}"})


def _popularity(rid: str, row: dict, logged: dict, bundle) -> Replay:
    """An item the popularity fallback ordered (every model tier failed for its list), replayed from the bundle's
    item counts: the served score is the item's training popularity less a billionth per place in the request,
    which breaks ties in the order sent (:func:`mlcase.serve.rank_routes.popularity_scores`). It reproduces when
    the logged score is that popularity less such a tie-break within its list (Stat2Data::Blood1's list of
    1e308s, which the linear model refused, was "not reproduced: the order came from item popularity")."""
    from ..serve.rank_routes import TIE_STEP, popularity_scores

    # the served function on the item alone: its popularity, with no tie-break (first place in a list of one)
    base = float(popularity_scores([json.loads(row["inputs"] or "{}")], bundle.ranking or {})[0])
    score, n = _value(row["score"]), int(_value(row.get("list_size")) or 0)
    place = round((base - score) / TIE_STEP) if score is not None else -1
    now = base - max(place, 0) * TIE_STEP
    diffs = [] if score is not None and 0 <= place < max(n, 1) and _close(score, now) else [
        {"what": "popularity score", "logged": score, "now": f"{base:g} (the item's training popularity)"}]
    why = _value(row.get("reason"))
    notes = [f"position {row['prediction']} and '{logged['decision']}' follow from the scores of the whole list; "
             "the item's popularity fallback score was replayed from the bundle's item counts"
             + (f", not why the model tiers did not answer (logged: {why})" if why else "")]
    replayed = {"score": now, "scores": None, "prediction": None, "decision": None, "conformal": None,
                "tier": "popularity", "model_version": logged["model_version"], "threshold": None,
                "position": _value(row["prediction"])}
    return Replay(rid, not diffs, diffs, logged, replayed, None, notes)


def _record_spec(bundle):
    from ..serve.schema import RecordSpec

    return RecordSpec(bundle.schema, bundle.features)


def _explain(tier, records: list[dict]) -> dict | None:
    try:
        from ..explain import explain_rows

        row = explain_rows(tier.bundle, tier.spec.frame(records), 5)[0]
    except (ImportError, MlcaseError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    keep = ("base_value", "contributions", "other", "output", "output_space", "explained_class", "explainer",
            "notes")
    return {k: row.get(k) for k in keep if k in row}


def replay(case: Case, request_id: str, log: str | None = None, explain: bool = True) -> Replay:
    """Recompute one logged decision (see the module docstring); ``reproduced`` says whether it matched.

    Raises
    ------
    NotFoundError
        The request id is not in the log, or there is no log.
    """
    case = as_case(case)  # a case.yaml path too, as mlcase.run takes it
    _check_task(case)
    return _replay_rows(case, _rows(case, log, [str(request_id)], None), explain)[0]


def _check_task(case: Case) -> None:
    """A forecast answer cannot be replayed: its log row keeps the series, the history's end and length and
    the points, not the history the forecast was computed from (a request carries it, and it can be long)."""
    if case.spec.task == "forecast":
        raise SpecError("mlcase replay recomputes a logged record's answer, and a forecast case logs each forecast's "
                        "series, history end and points but not the history it was computed from",
                        "to check a forecast, send the same history to POST /forecast of the same version "
                        "(mlcase serve --version N)")


def replay_many(case: Case, request_ids: list[str] | None = None, log: str | None = None, last: int | None = None,
                explain: bool = False) -> list[Replay]:
    """Replay many logged decisions (``request_ids``, or the ``last`` N), loading each version once.

    ``request_ids`` is a list (or other collection) of one or more request ids; ``last`` a whole number, at least
    1. A string for ``request_ids`` was read one character at a time ("request id '1' is not in the prediction
    log"), an empty list ended in pandas' "No objects to concatenate", and ``last=2.5`` was taken as 2: each is
    a :class:`~mlcase.errors.SpecError` naming the argument.
    """
    from ..arguments import whole_number

    if request_ids is not None:
        request_ids = _request_ids(request_ids)
    if last is not None:
        if isinstance(last, int) and not isinstance(last, bool) and last < 1:
            # SQLite reads LIMIT -1 as no limit: --last -1 replayed the whole log
            raise SpecError(f"--last {last}: replays the last N logged decisions, so N is at least 1",
                            "pass --last 1 or more, or request ids")
        last = whole_number(last, "last", "a number of logged decisions to replay",
                            "give a whole number such as 10 (the newest N logged decisions), or request_ids")
    case = as_case(case)
    _check_task(case)
    rows = _rows(case, log, request_ids, last)
    return _replay_rows(case, rows, explain)


def _request_ids(request_ids) -> list[str]:
    """``request_ids`` as a list of strings, or a :class:`SpecError` for a single string, an empty collection
    or something that is not a collection of ids."""
    fix = "give a list of request ids such as ['3f2c…'] (what /predict answered with), or last=N"
    if isinstance(request_ids, (str, bytes)):
        raise SpecError(f"request_ids={request_ids[:40]!r} is one string, not a list of request ids "
                        "(it would be read one character at a time)",
                        "give a list such as [" + repr(request_ids[:40]) + "], or call replay(case, request_id) "
                        "for one")
    if isinstance(request_ids, dict) or not isinstance(request_ids, Iterable):
        raise SpecError(f"request_ids={str(request_ids)[:40]} ({type(request_ids).__name__}) is not a list of "
                        "request ids", fix)
    ids = list(request_ids)
    if not ids:
        raise SpecError("request_ids is empty: no logged decision to replay", fix)
    for r in ids:
        if isinstance(r, bool) or not isinstance(r, (str, int)) or (isinstance(r, str) and not r.strip()):
            raise SpecError(f"request_ids holds {r!r:.60}, which is not a request id", fix)
    return [str(r) for r in ids]


__all__ = ["Replay", "replay", "replay_many"]
