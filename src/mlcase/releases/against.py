"""``mlcase replay CASE --version N``: the logged traffic replayed against another registered version.

A shadow evaluation after the fact: every logged record's inputs are scored by version ``N`` exactly as
``mlcase score --version N`` scores them (the same chain, schema checks, threshold, conformal deferral and
fallback tiers; a binary score at a split threshold takes the draw of its row number, the logged records
numbered from 0 in the order ``ts, request_id``; read and scored :data:`CHUNK_ROWS` records at a time, with the
same answers as in one piece), and set beside what the log says was decided:

- how many decisions and predictions would have changed, and from what to what;
- the share flagged, sent to review and acted on automatically, per side, with the paired difference;
- where labels arrived, the cost per decision of each side on the same labelled records (the case's costs,
  as ``mlcase rollout status`` prices them) and the paired difference with its 95% t interval.

The logged side is the decision the log records (the model's own for a held-out unit, ``model_decision``),
made by whichever version the record's arm routed to; rows version ``N`` itself answered in the log are
counted apart (they should not change). Labels arrive mostly where the logged decision let an outcome be
seen, so a cost on labelled rows describes those rows, not all traffic (see the ``label_sources``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..case import Case, as_case
from ..errors import NotFoundError, SpecError

TOLERANCE = 1e-9
# logged records read, scored and compared at a time, as ``mlcase score`` reads its input (``--chunk-rows``): the
# whole log's inputs, their parsed frame and the model's working copies held at once grew with the log
CHUNK_ROWS = 50_000


@dataclass
class VersionReplay:
    """The logged decisions beside those of ``version`` on the same records (see the module docstring)."""

    case: str
    version: int
    logged_versions: dict
    rows: int
    invalid: list[dict]
    changed: dict
    transitions: dict
    rates: dict
    cost: dict | None
    prediction_change: dict | None
    notes: list[str] = field(default_factory=list)
    per_row: pd.DataFrame | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("case", "version", "logged_versions", "rows", "invalid", "changed",
                                              "transitions", "rates", "cost", "prediction_change", "notes")}

    def summary(self) -> str:
        c = self.changed
        text = (f"{self.rows} logged records replayed against version {self.version}: {c['decisions']} decisions "
                f"({c['decision_share']:.1%}) and {c['predictions']} predictions would have changed")
        if self.cost and self.cost.get("n"):
            k = self.cost
            text += (f"; cost per decision on {k['n']} labelled records"
                     + (f" of {k['units']} units" if k.get("units") else "")
                     + f" {k['logged']:.4g} logged, {k['version']:.4g} "
                     f"with version {self.version} (difference {k['diff']:+.4g}, 95% CI {k['low']:+.4g} to "
                     f"{k['high']:+.4g})")
        return text

    def print(self, console) -> None:
        from ..formats import markup_escape

        console.print(markup_escape(self.summary()))
        console.print(markup_escape("  logged by version(s) " + ", ".join(f"{v} ({n} records)" for v, n in
                                                                           self.logged_versions.items())))
        if self.changed["own_rows"]:
            console.print(markup_escape(f"  of the {self.changed['own_rows']} records version {self.version} answered "
                                        f"itself in the log, {self.changed['own_rows_changed']} changed"))
        for name, r in self.rates.items():
            console.print(markup_escape(f"  {name} share: logged {r['logged']:.2%}, version {self.version} "
                                        f"{r['version']:.2%} (paired difference {r['diff']:+.2%}, 95% CI "
                                        f"{r['low']:+.2%} to {r['high']:+.2%})"))
        for k, n in sorted(self.transitions.items(), key=lambda kv: -kv[1])[:8]:
            console.print(markup_escape(f"  {k}: {n}"))
        if self.prediction_change:
            p = self.prediction_change
            console.print(markup_escape(f"  prediction change: mean {p['mean']:+.4g}, mean absolute {p['mean_abs']:.4g}, "
                                        f"largest {p['max_abs']:.4g}"))
        for n in self.notes:
            console.print(f"  [dim]note: {markup_escape(n)}[/dim]")


# --------------------------------------------------------------------------- reading the log
_COLUMNS = ("request_id", "ts", "model_version", "arm", "arm_version", "tier", "score", "prediction",
            "decision", "model_decision", "bundle_sha256", "threshold", "unit_id", "log_key_id")   # not the inputs: read a chunk at a time


def _open(case: Case, log: str | None):
    """(backend, source) of the prediction log; no log is a NotFoundError naming the fix."""
    from ..errors import DataError, redact_url
    from ..serve.predlog import open_existing

    try:
        not_a_log(case, log, "replay --version")
        backend, target = open_existing(case, log)
    except DataError as exc:
        raise NotFoundError(f"replay --version: {exc.message}", "serve the case (`mlcase serve`) so that it logs "
                            "decisions, or pass --log with the prediction log it wrote") from None
    return backend, str(redact_url(target))


def not_a_log(case: Case, log: str | None, what: str) -> None:
    """Refuse, read-only, a SQLite file that holds no ``predictions`` table: opening it as the log creates the
    log's tables in it (``--log mlflow.db``, the case's MLflow store, got ``predictions`` and ``labels`` tables
    and was then called "a log that holds no logged decision")."""
    from ..serve.predlog import not_a_log_said, resolve_target, sqlite_tables

    target = resolve_target(case, log)
    if "://" in target and not (target.startswith("sqlite:///") and "?" not in target):
        return
    path = Path(target.removeprefix("sqlite:///"))
    if not path.is_file():
        return   # open_existing says there is none
    tables = sqlite_tables(path)
    if tables is not None and "predictions" not in tables:   # not a database: open_existing says what it is
        raise NotFoundError(f"{what}: {path} is not a prediction log ({not_a_log_said(tables)})",
                            "pass --log with the log `mlcase serve` wrote (serving.log, else <case>/predictions.db)")


def _logged(backend, source: str, request_ids: list[str] | None, last: int | None) -> pd.DataFrame:
    """The logged records to replay (all, ``request_ids`` or the ``last`` N) with their newest label, in the
    order ``ts, request_id``; their inputs are read a chunk at a time (:func:`_input_chunks`)."""
    have = set(backend.read_frame("SELECT * FROM predictions LIMIT 0").columns)
    cols = ", ".join(f"p.{c}" if c in have else f"NULL AS {c}" for c in _COLUMNS)
    label = """LEFT JOIN (SELECT request_id, label, source AS label_source FROM (SELECT request_id, label, source,
                   row_number() OVER (PARTITION BY request_id ORDER BY id DESC) AS rn FROM labels) WHERE rn = 1
               ) l ON l.request_id = p.request_id"""
    sql = f"SELECT {cols}, l.label, l.label_source FROM predictions p {label}"
    if request_ids is not None:
        parts = []
        for k in range(0, len(request_ids), 500):
            names = {f"r{i}": v for i, v in enumerate(request_ids[k:k + 500])}
            parts.append(backend.read_frame(f"{sql} WHERE p.request_id IN ({', '.join(':' + n for n in names)})",
                                            names))
        rows = pd.concat(parts, ignore_index=True)
        missing = sorted(set(request_ids) - set(rows["request_id"].astype(str)))
        if missing:
            raise NotFoundError(f"request id {missing[0]!r} is not in the prediction log {source}"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                "use request ids the server answered with, or pass --log with its log")
    elif last is not None:
        rows = backend.read_frame(f"{sql} ORDER BY p.ts DESC, p.request_id DESC LIMIT :n", {"n": int(last)})
    else:
        rows = backend.read_frame(sql)
    if rows.empty:
        raise NotFoundError(f"the prediction log {source} holds no logged decision to replay against another "
                            "version", "send traffic to `mlcase serve` first, or pass --log with a log that has some")
    return rows.sort_values(["ts", "request_id"], kind="stable").reset_index(drop=True)


def _input_chunks(backend, rows: pd.DataFrame, size: int):
    """``(offset, inputs)`` of ``rows`` (in their order) ``size`` records at a time, each chunk's logged inputs
    read from the log by request id (a log's request ids are its primary key)."""
    for start in range(0, len(rows), size):
        ids = rows["request_id"].iloc[start:start + size].astype(str).tolist()
        got = {str(r[0]): r[1] for r in backend.lookup("predictions", ids, ("inputs",))}
        yield start, _inputs(pd.Series([got.get(i) for i in ids], dtype=object))


def _same_case(case: Case, rows: pd.DataFrame, bundle, source: str) -> None:
    """Refuse a log (or a version) another case wrote: every logged version's bundle hash must be the one this
    case's registry recorded for that version number, as far as the log recorded them."""
    from .. import tracking

    if bundle.case_name and bundle.case_name != case.name:
        raise SpecError(f"version {bundle.version} in this registry was made by case '{bundle.case_name}', not "
                        f"'{case.name}'", "replay against a version this case registered (`mlcase models` lists them)")
    logged = rows.dropna(subset=["model_version", "bundle_sha256"])
    if logged.empty:
        return
    recorded = {v["version"]: (v.get("tags") or {}).get("bundle_sha256") for v in tracking.versions(case)}
    pairs = logged.drop_duplicates(["model_version", "bundle_sha256"])
    ours = [recorded.get(int(v)) in (None, h) and int(v) in recorded
            for v, h in zip(pairs["model_version"], pairs["bundle_sha256"], strict=True)]
    if not any(ours):
        v, h = int(pairs["model_version"].iloc[0]), str(pairs["bundle_sha256"].iloc[0])
        now = recorded.get(v)
        raise SpecError(f"the prediction log {source} was written by another case's models: its version {v} has "
                        f"bundle hash {h[:12]}…, and this case '{case.name}' "
                        + (f"registered version {v} with {now[:12]}…" if now else f"has no version {v}"),
                        "pass --log with the log this case's server wrote (serving.log, else <case>/predictions.db)")


# --------------------------------------------------------------------------- scoring with the version
def _scorer(case: Case, version: int):
    """``mlcase score --version N``'s scorer: a chunk of logged inputs and its first row number give (answers by
    row, errors); a binary score at a split threshold takes the draw of its row number, whatever the chunk."""
    import functools

    from ..score import ChunkScorer, _full_chain
    from ..serve.fallback import load_chain

    chain = load_chain(case, version=version, registry=True, fallbacks=False)
    scorer = ChunkScorer(chain, fallback=functools.partial(_full_chain, case, version, {}, chain.primary.bundle, True))
    return scorer, chain.primary.bundle


def _inputs(values: pd.Series) -> pd.DataFrame:
    recs = [json.loads(x) if isinstance(x, str) and x else {} for x in values]
    return pd.DataFrame.from_records(recs, index=range(len(values)))


# --------------------------------------------------------------------------- comparing
def _model_prediction(rows: pd.DataFrame, holdout: np.ndarray, bundle) -> pd.Series:
    """The logged prediction, with a held-out binary unit's the model's own: its log row keeps what today's
    process did (HMDA with serving.holdout 0.3: 29 of 148 held-out rows read as "prediction changed" against the
    very version that logged them). Flagged: the positive class; not: the negative; sent to review: its logged
    score against its logged threshold."""
    pred = rows["prediction"].copy()
    if bundle.task != "binary" or not holdout.any():
        return pred
    neg, pos = (list(bundle.classes) + [None, None])[:2]
    md = rows["model_decision"]
    over = pd.to_numeric(rows["score"], errors="coerce") >= pd.to_numeric(rows["threshold"], errors="coerce")
    own = np.where(md == "flag", pos, np.where(md == "auto", neg, np.where(over, pos, neg)))
    return pred.where(~holdout, pd.Series(own, index=rows.index).astype(str))


def _paired(b: np.ndarray, a: np.ndarray, units=None) -> dict:
    """Mean of ``b - a`` with its 95% t interval; a constant difference has no spread.

    With each record's ``units`` (the log's ``unit_id``; a record without one is its own unit), the interval is
    clustered by unit as monitoring's is (:func:`mlcase.monitor.estimators.mean_ci`): a unit answered several times
    is not several independent records. mlmRev::Contraception's test women each sent twice read the cost difference
    from the 794 records as if from 794 women. Where every record is its own unit it is scipy's paired t interval.
    """
    from ..monitor.estimators import mean_ci

    d = np.asarray(b, float) - np.asarray(a, float)
    n = len(d)
    out = {"n": n, "logged": float(np.mean(a)) if n else None, "version": float(np.mean(b)) if n else None,
           "diff": float(d.mean()) if n else None, "low": None, "high": None}
    if not n:
        return out
    ci = mean_ci(d, units)
    if ci.get("units", n) < n:
        out["units"] = int(ci["units"])
    if n >= 2 and np.ptp(d) == 0:
        out.update(low=float(d[0]), high=float(d[0]))
    elif n >= 2:
        out.update(low=ci["low"], high=ci["high"])
    return out


def _changed_prediction(logged: pd.Series, now: pd.Series, task: str) -> np.ndarray:
    if task == "regression":
        a, b = pd.to_numeric(logged, errors="coerce").to_numpy(float), pd.to_numeric(now, errors="coerce").to_numpy(float)
        return ~(np.abs(a - b) <= TOLERANCE * np.maximum(1.0, np.maximum(np.abs(a), np.abs(b))))
    return logged.astype(str).to_numpy() != now.astype(str).to_numpy()


def _costs(case: Case, bundle, frame: pd.DataFrame, X: pd.DataFrame) -> np.ndarray:
    from .rollout import _costs as priced

    return priced(case, bundle, frame, X)


def replay_against(case: Case, version: int, request_ids: list[str] | None = None, log: str | None = None,
                   last: int | None = None) -> VersionReplay:
    """Replay the logged records (all of them, ``request_ids`` or the ``last`` N) against registry ``version``.

    Parameters
    ----------
    case : Case or path
    version : int
        The registered version to replay the traffic against (a candidate, the previous champion...).
    request_ids, last :
        Which logged records; default every record of the log.
    log : str, optional
        The prediction log (default ``serving.log`` or ``<case>/predictions.db``).

    Raises
    ------
    NotFoundError
        No such version in the case's registry, no log, an empty log, or a request id not in it.
    SpecError
        A log another case's server wrote, a version another case made, or records none of which the version's
        schema accepts.
    """
    from .. import tracking
    from ..arguments import registry_version, whole_number
    from .replayer import _check_task, _request_ids

    version = registry_version(version)
    if request_ids is not None:
        request_ids = _request_ids(request_ids)
    if last is not None:
        if isinstance(last, int) and not isinstance(last, bool) and last < 1:
            raise SpecError(f"--last {last}: replays the last N logged decisions, so N is at least 1",
                            "pass --last 1 or more, or leave it out for the whole log")
        last = whole_number(last, "last", "a number of logged decisions to replay",
                            "give a whole number such as 100 (the newest N logged decisions)")
    case = as_case(case)
    _check_task(case)
    if case.spec.task == "ranking":
        raise SpecError("replay --version compares decisions record by record, and a ranking case's positions follow "
                        "from whole lists", "score the logged lists with `mlcase score --version N` and compare them")
    bundle = tracking.load_bundle(case, alias=None, version=version)   # NotFoundError naming the case's versions
    backend, source = _open(case, log)
    try:
        rows = _logged(backend, source, request_ids, last)
        _same_case(case, rows, bundle, source)
        scorer, bundle = _scorer(case, version)
        parts, errs = [], []
        for offset, X in _input_chunks(backend, rows, max(int(CHUNK_ROWS), 1)):
            out, errors = scorer(X, offset)
            errs.append(errors)
            if len(out):
                ok = out["row"].to_numpy()
                parts.append(_compare(case, scorer, version, rows.iloc[ok].reset_index(drop=True),
                                      X.iloc[ok - offset].reset_index(drop=True), out.reset_index(drop=True)))
    finally:
        backend.close()
    errors = pd.concat(errs, ignore_index=True)
    if not parts:
        first = errors.iloc[0] if len(errors) else None
        raise SpecError(f"none of the {len(rows)} logged records fits version {version}'s schema"
                        + (f" (record of request {rows['request_id'].iloc[int(first['row'])]}, {first['field']}: "
                           f"{first['message']})" if first is not None else ""),
                        "replay against a version trained on the columns this log holds, or pass --log with the "
                        "log of the case that version belongs to")
    return _summarise(case.name, version, bundle.task, pd.concat(parts, ignore_index=True), rows, errors)


def _compare(case: Case, scorer, version: int, a: pd.DataFrame, X: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One chunk's logged records ``a`` (their inputs ``X``) beside version's answers ``b``, row by row: what each
    side decided and predicted, and where a label arrived the cost of each side's decision.

    A record the version answered itself whose answer is a draw (a binary score at a split threshold, a case tied
    with the deferral cut) keeps its logged answer: the same model's draw, which the replay's row-numbered draw
    made again at random (carData::SLID, every interval as wide: 23 of the canary's own 157 records read as
    changed between review and auto)."""
    bundle = scorer.tiers[0].bundle
    holdout = ((a["arm"] == "holdout") & a["model_decision"].notna()).to_numpy()
    logged_decision = a["decision"].where(~holdout, a["model_decision"]).astype(str)
    logged_prediction = _model_prediction(a, holdout, bundle)
    who = a["arm_version"].where(a["arm_version"].notna(), a["model_version"])
    decision, prediction = b["decision"].astype(str), b["prediction"]
    own = (who == version).to_numpy() & (a["tier"].fillna("model") == "model").to_numpy()
    # which answers to ask about a draw: the version's own records that differ in any way, the others' changed
    # decisions (whose predictions differ anyway)
    d_changed = (logged_decision != decision).to_numpy()
    differ = d_changed | (own & _changed_prediction(logged_prediction, prediction, bundle.task))
    split, tied = np.zeros(len(a), dtype=bool), np.zeros(len(a), dtype=bool)
    if differ.any():
        split[differ], tied[differ] = _drawn(scorer, b[differ].reset_index(drop=True), X[differ].reset_index(drop=True))
    by_draw = split | tied
    # the version's own record: a tie with the deferral cut moves review and auto, never the prediction
    drawn = own & (split | (tied & ~_changed_prediction(logged_prediction, prediction, bundle.task)))
    if drawn.any():
        decision = decision.where(~drawn, logged_decision)
        kept = (pd.to_numeric(logged_prediction, errors="coerce") if pd.api.types.is_numeric_dtype(prediction)
                else logged_prediction.astype(prediction.dtype))
        prediction = prediction.where(~drawn, kept)
    frame = pd.DataFrame({"request_id": a["request_id"], "unit_id": a["unit_id"], "log_key_id": a["log_key_id"],
                          "logged_version": who,
                          "tier": a["tier"],
                          "holdout": holdout, "drawn": drawn, "by_draw": by_draw & ~own, "label": a["label"],
                          "label_source": a["label_source"],
                          "logged_decision": logged_decision, "decision": decision,
                          "logged_prediction": a["prediction"], "model_prediction": logged_prediction,
                          "prediction": prediction, "score": b["score"], "cost_logged": np.nan,
                          "cost_version": np.nan})
    if a["label"].notna().any():
        frame_a = pd.DataFrame({"label": a["label"], "decision": logged_decision, "prediction": logged_prediction})
        frame_b = pd.DataFrame({"label": a["label"], "decision": decision, "prediction": prediction})
        frame["cost_logged"], frame["cost_version"] = _costs(case, bundle, frame_a, X), _costs(case, bundle, frame_b, X)
    return frame


def _drawn(scorer, b: pd.DataFrame, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which of the version's answers ``b`` (to inputs ``X``) a draw decided, so that the same model may have
    answered otherwise: ``(split, tied)``, a binary score at its split threshold (``tie_share``), and a case tied
    with the deferral cut (the server's :meth:`Decider.defer_drawn`, as ``mlcase replay`` of one record asks it)."""
    from ..tasks.binary import at_threshold

    tier, decider = scorer.tiers[0], scorer.decider
    bundle = tier.bundle
    split, tied = np.zeros(len(b), dtype=bool), np.zeros(len(b), dtype=bool)
    if tier.kind != "model" or bundle is None:
        return split, tied
    mine = (b["tier"] == tier.name).to_numpy()
    score = pd.to_numeric(b["score"], errors="coerce").to_numpy(float)
    if bundle.task == "binary" and bundle.tie_share is not None and bundle.threshold is not None:
        split = mine & at_threshold(score, bundle.threshold)
    rest = np.flatnonzero(mine & ~split & b["decision"].isin(["review", "auto"]).to_numpy())
    if not len(rest) or not (bundle.conformal or {}).get("defer_cut"):
        return split, tied
    raw = score
    if bundle.task == "multiclass":   # the key is the margin of the two likeliest classes
        raw = np.full(len(b), None, dtype=object)
        raw[rest] = list(np.asarray(bundle.scores(X.iloc[rest]), dtype="float64"))
    for i in rest:
        conformal = json.loads(b["conformal"].iloc[i]) if isinstance(b["conformal"].iloc[i], str) else None
        tied[i] = decider.defer_drawn(bundle, raw[i], conformal)
    return split, tied


def _summarise(case_name: str, version: int, task: str, f: pd.DataFrame, rows: pd.DataFrame,
               errors: pd.DataFrame) -> VersionReplay:
    """The chunks' row-by-row comparison ``f`` (every record the version answered, in log order) summed up."""
    holdout = f["holdout"].to_numpy(bool)
    logged_decision, now_decision = f["logged_decision"], f["decision"]
    units = f["unit_id"].to_numpy(dtype=object)   # intervals clustered by unit (a record without one: its own)
    d_changed = (logged_decision != now_decision).to_numpy()
    p_changed = _changed_prediction(f["model_prediction"], f["prediction"], task)
    if task != "binary":   # a held-out unit's log row keeps today's process's prediction, not the model's
        p_changed &= ~holdout
    who = f["logged_version"]
    logged_versions = {("unknown" if pd.isna(v) else int(v)): int(n)
                       for v, n in who.value_counts(dropna=False).sort_index().items()}
    own = (who == version).to_numpy() & (f["tier"].fillna("model") == "model").to_numpy()
    changed = {"decisions": int(d_changed.sum()), "decision_share": float(d_changed.mean()),
               "predictions": int(p_changed.sum()), "prediction_share": float(p_changed.mean()),
               "own_rows": int(own.sum()), "own_rows_changed": int((d_changed | p_changed)[own].sum())}
    trans = pd.Series([f"{x} -> {y}" for x, y in zip(logged_decision, now_decision, strict=True)])
    transitions = {k: int(n) for k, n in trans[d_changed].value_counts().items()}
    rates = {}
    for name in ("flag", "review", "auto"):
        la, lb = (logged_decision == name).to_numpy(float), (now_decision == name).to_numpy(float)
        if la.any() or lb.any():
            r = _paired(lb, la, units)
            rates[name] = {"logged": r["logged"], "version": r["version"], "diff": r["diff"], "low": r["low"],
                           "high": r["high"]}
    prediction_change = None
    if task == "regression":
        diff = (pd.to_numeric(f["prediction"], errors="coerce") - pd.to_numeric(f["model_prediction"], errors="coerce"))
        diff = diff[~holdout].dropna().to_numpy(float)
        if len(diff):
            prediction_change = {"mean": float(diff.mean()), "mean_abs": float(np.abs(diff).mean()),
                                 "max_abs": float(np.abs(diff).max())}
    cost = None
    notes = []
    lab = f["label"].notna().to_numpy()
    if lab.any():
        ca, cb = f["cost_logged"].to_numpy(float), f["cost_version"].to_numpy(float)
        both = ~np.isnan(ca) & ~np.isnan(cb) & ~(holdout & (task != "binary"))
        cost = _paired(cb[both], ca[both], units[both]) | {"labelled": int(lab.sum())}
        srcs = f.loc[lab, "label_source"].fillna("unknown").value_counts()
        cost["label_sources"] = {str(k): int(v) for k, v in srcs.items()}
        notes.append("costs are on the labelled records only; where the logged decision decided which outcomes were "
                     "seen (a flagged case reviewed), they describe those records, not all traffic")
    else:
        notes.append("no logged record has a label yet: the costs of the two sides are unknown")
    from ..governance.logkeys import key_counts, log_keys_warning

    keys = log_keys_warning(key_counts(f["unit_id"], f["log_key_id"]))
    if keys:   # the same unit under two keys is two units: the clustered intervals are too narrow
        notes.append(keys["message"])
    if len(errors):
        notes.append(f"{errors['row'].nunique()} logged records do not fit version {version}'s schema and were left "
                     f"out (first: {errors.iloc[0]['field']}: {errors.iloc[0]['message']})")
    if holdout.any():
        notes.append(f"{int(holdout.sum())} held-out records: their model's own decision (model_decision) is compared, "
                     "not what today's process did" + ("" if task == "binary" else "; their logged prediction is the "
                                                       "process's, so their predictions and costs are left out"))
    drawn = f["drawn"].to_numpy(bool)
    if drawn.any():
        notes.append(f"{int(drawn.sum())} records version {version} answered itself were decided by a draw (a score "
                     "at a split threshold, a case tied with the deferral cut) that came out otherwise in the replay; "
                     "their logged answers are kept, the same model's")
    other = (f["by_draw"].to_numpy(bool) & d_changed).sum()
    if other:
        notes.append(f"{int(other)} of the {int(d_changed.sum())} changed decisions are version {version}'s draws at a "
                     "tied cut (a share of the tied cases is flagged or sent to review): another draw may decide "
                     "them the other way")
    fb = f["tier"].fillna("model") != "model"
    if fb.any():
        notes.append(f"{int(fb.sum())} logged records were answered by a fallback tier; their logged decision is that "
                     "tier's")
    invalid = [{"request_id": str(rows["request_id"].iloc[int(e["row"])]), "field": e["field"],
                "message": e["message"]} for e in errors.to_dict("records")]
    per_row = f[["request_id", "unit_id", "logged_version", "logged_decision", "decision", "logged_prediction",
                 "prediction", "score", "cost_logged", "cost_version"]].reset_index(drop=True)
    return VersionReplay(case=case_name, version=version, logged_versions=logged_versions, rows=len(f),
                         invalid=invalid, changed=changed, transitions=transitions, rates=rates, cost=cost,
                         prediction_change=prediction_change, notes=notes, per_row=per_row)


__all__ = ["VersionReplay", "replay_against"]
