"""``mlcase rollout status``: guardrails per arm and the canary analysed as an experiment.

The canary is the newest version the prediction log shows on the ``canary`` arm
(or ``version``); its period runs from its first to its last logged record, and
the champion's arm (``model`` in the log) over the same period is the control.
Per arm, from the log and its labels:

- error share (the arm's own model raised) and fallback share, with Wilson intervals;
- latency p95 (the request's ``latency_ms``);
- drift of the inputs and of the scores against each version's training reference
  (:func:`mlcase.monitor.monitor` on the arm's rows);
- decision rate (flags) against the review capacity;
- cost per decision: realized where labels arrived, estimated (CBPE, binary) before.

The canary is then analysed as an experiment with :func:`mlcase.abtest.analyze`
(sample ratio mismatch against the planned split, fixed-horizon CIs, guardrails;
marked as *peeking* until ``releases.min_units`` labelled units per arm), and
with always-valid intervals (:mod:`.sequential`) on the cost and the fallback
share, which the verdict rests on, so looking every hour is safe.

Verdict: ``rollback`` when a guardrail breaks on the canary (and not on the
champion over the same rows, for drift and latency) or the canary costs more
than ``releases.cost_margin`` with always-valid confidence; ``promote`` when no
guardrail breaks, the sample ratio holds, both arms have ``releases.min_units``
labelled units and, on cost: with a positive ``cost_margin`` (a non-inferiority
test), the interval's upper bound is within the margin; with the default margin 0
(a check for harm, as a fixed-horizon A/B test's guardrail), the canary is not
shown to cost more (its lower bound is at most 0); ``hold`` otherwise. At margin 0
the promote rule asked for an upper bound below 0, a saving no equal version can
show: a same-seed rerun of a case served as its own canary held forever. The
planned sample (``min_units``) is then what decides how small a harm is seen: a
canary that costs less more than its interval can resolve there is promoted.
Exit codes: 0 promote, 1 hold, 3 rollback
(2 is bad input, as for every command).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..case import Case, as_case
from ..errors import NotFoundError
from ..formats import signed

EXIT = {"promote": 0, "hold": 1, "rollback": 3}
ARM_NAMES = {"model": "champion", "canary": "canary"}


class NoCanary(NotFoundError):
    """The prediction log holds no canary (to analyse)."""


@dataclass
class RolloutStatus:
    """What ``mlcase rollout status`` found; ``exit_code`` is 0 promote, 1 hold, 3 rollback."""

    case: str
    verdict: str
    reasons: list[str]
    canary_version: int
    champion_versions: list[int]
    period: dict
    arms: dict
    guardrails: list[dict]
    experiment: dict
    peeking: bool
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT[self.verdict]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("case", "verdict", "reasons", "canary_version", "champion_versions",
                                              "period", "peeking", "arms", "guardrails", "experiment", "notes")} | {
            "exit_code": self.exit_code}

    def print(self, console) -> None:
        from rich.table import Table

        from ..formats import markup_escape

        colour = {"promote": "green", "hold": "yellow", "rollback": "red"}[self.verdict]
        console.print(f"[bold]{markup_escape(str(self.case))}[/bold]: canary version {self.canary_version} against champion "
                      f"{', '.join(map(str, self.champion_versions))} from {self.period['from']} to "
                      f"{self.period['to']}: [bold {colour}]{self.verdict}[/]")
        t = Table(show_edge=False, pad_edge=False)
        for col in ("guardrail", "champion", "canary", "limit", "status"):
            t.add_column(col)
        for g in self.guardrails:
            t.add_row(markup_escape(str(g["name"])), _fmt(g.get("champion")), _fmt(g.get("canary")), _fmt(g.get("limit")),
                      {"ok": "ok", "broken": "[red]broken[/red]", "unknown": "[dim]unknown[/dim]"}[g["status"]])
        console.print(t)
        for r in self.reasons:
            console.print(f"  - {markup_escape(r)}")
        for n in self.notes:
            console.print(f"  [dim]note: {markup_escape(n)}[/dim]")


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# --------------------------------------------------------------------------- reading the log
def _read(case: Case, log: str | None, version: int | None) -> tuple[pd.DataFrame, int, str]:
    from ..errors import DataError, redact_url
    from ..serve.predlog import open_existing

    try:
        backend, target = open_existing(case, log)
    except DataError as exc:
        raise NoCanary(exc.message, "serve a canary first (`mlcase serve --canary N:10%`), or pass --log with its "
                                    "prediction log", no_log=True) from None
    try:
        cols = set(backend.read_frame("SELECT * FROM predictions LIMIT 0").columns)
        if not {"arm", "arm_version"} <= cols:
            raise NoCanary(f"the prediction log {redact_url(target)} predates canaries (no arm_version column)",
                           "serve a canary with `mlcase serve --canary N:10%`")
        where = "arm = 'canary'" + ("" if version is None else " AND arm_version = :v")
        found = backend.read_frame(f"SELECT arm_version, min(ts) AS t0, max(ts) AS t1 FROM predictions WHERE {where} "
                                   "GROUP BY arm_version ORDER BY t1 DESC", {"v": version})
        if found.empty:
            what = "no canary" if version is None else f"no canary record of version {version}"
            raise NoCanary(f"the prediction log {redact_url(target)} holds {what}",
                           "serve one with `mlcase serve --canary N:10%` (or serving.canary) and send traffic")
        v, t0, t1 = int(found["arm_version"].iloc[0]), found["t0"].iloc[0], found["t1"].iloc[0]
        t0 = _started(case, v, t0)
        key_col = "p.log_key_id" if "log_key_id" in cols else "CAST(NULL AS TEXT) AS log_key_id"
        rows = backend.read_frame(
            f"""SELECT p.request_id, p.ts, p.arm, p.arm_version, p.model_version, p.tier, p.fallback, p.reason,
                      p.inputs, p.score, p.decision, p.prediction, p.latency_ms, p.unit_id, {key_col}, l.label
               FROM predictions p LEFT JOIN (
                   SELECT request_id, label FROM (SELECT request_id, label,
                       row_number() OVER (PARTITION BY request_id ORDER BY id DESC) AS rn FROM labels) WHERE rn = 1
               ) l ON l.request_id = p.request_id
               WHERE p.ts >= :t0 AND p.ts <= :t1 AND (p.arm = 'model' OR (p.arm = 'canary' AND p.arm_version = :v))""",
            {"t0": t0, "t1": t1, "v": v})
    finally:
        backend.close()
    return rows, v, str(redact_url(target))


def _started(case: Case, version: int, first):
    """When the canary ``version`` began to be routed to: its latest ``canary_start`` (or ``canary_share``) at or
    before its first record, in the log's own time format; else its first record.

    The period began at the canary's first record, and the champion's records a server answered between starting
    the canary and the canary's first record were left out: mlmRev::Contraception's 397 test women served with a
    50% canary read as 396 units to the rollout status (champion 210 labelled units), 397 to ``mlcase monitor``.
    """
    if not isinstance(first, str) or not first.endswith("Z"):
        return first
    try:
        at = pd.Timestamp(first)
        steps = [(t, s) for t, s in share_steps(case, version) if t <= at]
    except Exception:  # noqa: BLE001 - no release history (a store not reachable): the first record starts it
        return first
    if not steps or steps[-1][1] <= 0:   # paused (share 0) before its first record: that record starts it
        return first
    return steps[-1][0].tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _inputs(rows: pd.DataFrame) -> pd.DataFrame:
    recs = [json.loads(x) if isinstance(x, str) else {} for x in rows["inputs"]]
    return pd.DataFrame.from_records(recs, index=rows.index)


def _labels(case: Case, bundle, labels: pd.Series) -> np.ndarray:
    from types import SimpleNamespace

    from ..monitor.performance import encode_labels

    return encode_labels(SimpleNamespace(task=bundle.task, classes=bundle.classes, positive=bundle.positive), labels)


def _costs(case: Case, bundle, rows: pd.DataFrame, X: pd.DataFrame) -> np.ndarray:
    """Cost per row of the decision made, where a label arrived (NaN elsewhere)."""
    from .. import tasks

    out = np.full(len(rows), np.nan)
    has = rows["label"].notna().to_numpy()
    if not has.any():
        return out
    y = _labels(case, bundle, rows["label"][has])
    sub, Xs = rows[has], X[has]
    if bundle.task == "binary":
        ok = ~np.isnan(y)
        flag = np.where(sub["decision"] == "flag", 1, np.where(sub["decision"] == "auto", 0,
                        (sub["prediction"].astype(str) == str(bundle.positive)).astype(int)))
        per = tasks.binary_costs(case, Xs.reset_index(drop=True)).of(np.nan_to_num(y).astype(int), flag)
        vals = np.where(ok, per, np.nan)
    elif bundle.task == "regression":
        pred = pd.to_numeric(sub["prediction"], errors="coerce").to_numpy(float)
        ok = ~np.isnan(y) & ~np.isnan(pred)
        vals = np.full(len(sub), np.nan)
        if ok.any():
            vals[ok] = tasks.regression_cost(case, Xs[ok].reset_index(drop=True), y[ok], pred[ok])
    else:
        vals = tasks.multiclass_cost(case, y, sub["prediction"].astype(str).to_numpy())
    out[has] = vals
    return out


# --------------------------------------------------------------------------- per arm
def _arm(case: Case, bundle, rows: pd.DataFrame, X: pd.DataFrame, cost: np.ndarray, capacity) -> dict:
    from ..abtest.stats import wilson

    alpha = case.spec.releases.alpha
    n = len(rows)
    err = rows["reason"].fillna("").str.match(r"^model: error").to_numpy()
    fb = rows["fallback"].fillna(0).astype(int).to_numpy() == 1
    flags = (rows["decision"] == "flag").to_numpy()

    def share(k: np.ndarray) -> dict:
        lo, hi = wilson(int(k.sum()), n, alpha) if n else (np.nan, np.nan)
        return {"value": float(k.mean()) if n else None, "low": float(np.clip(lo, 0, 1)),
                "high": float(np.clip(hi, 0, 1)), "count": int(k.sum())}

    out = {"records": n, "units": int(rows["unit_id"].fillna(rows["request_id"]).nunique()),
           "versions": sorted(int(v) for v in rows["arm_version"].dropna().unique()),
           "error_share": share(err), "fallback_share": share(fb),
           "latency_p95_ms": float(np.nanpercentile(rows["latency_ms"], 95)) if n else None,
           "flag_rate": share(flags) if bundle.task == "binary" else None, "capacity": capacity}
    lab = ~np.isnan(cost)
    out["labelled"] = int(lab.sum())
    out["realized_cost"] = ({"value": float(cost[lab].mean()), "n": int(lab.sum()),
                             "sd": float(cost[lab].std(ddof=1)) if lab.sum() > 1 else None} if lab.any() else None)
    out.update(_monitor(case, bundle, rows, X))
    return out


def _monitor(case: Case, bundle, rows: pd.DataFrame, X: pd.DataFrame) -> dict:
    """Drift of inputs and scores against the version's training reference, and the estimated cost (binary)."""
    from ..monitor import monitor

    frame = X.copy()
    for c in ("ts", "request_id", "score", "decision", "prediction", "tier", "fallback", "reason"):
        frame[c] = rows[c].to_numpy()
    try:
        res = monitor(case, log=frame, bundle=bundle, window="36500d").to_dict()
    except Exception as exc:  # noqa: BLE001 - drift is one guardrail; the others stand without it
        return {"drift": None, "score_psi": None, "estimated_cost": None,
                "monitor_error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    alpha = case.spec.releases.alpha

    def significant(st: dict) -> bool:   # a column's test after Holm's adjustment over the columns, as monitoring's
        p = st.get("p_adjusted", st.get("p_value"))
        return p is not None and p < alpha

    drift = {f: s for f, s in (res["overall"].get("drift") or {}).items() if s.get("psi") is not None}
    top = max(drift, key=lambda f: drift[f]["psi"]) if drift else None
    sd = res["overall"].get("score_drift") or {}
    est = (res["windows"][0].get("estimated") or {}).get("cost") if res["windows"] else None
    # beside each PSI, the largest one whose change is significant (as monitoring judges drift): the guardrail's
    return {"drift": {"max_psi": drift[top]["psi"] if top else None, "feature": top,
                      "p_value": drift[top].get("p_value") if top else None,
                      "significant_psi": max((s["psi"] for s in drift.values() if significant(s)), default=None)},
            "score_psi": sd.get("psi"), "score_p_value": sd.get("p_value"),
            "score_significant_psi": sd.get("psi") if significant(sd) else None, "estimated_cost": est}


# --------------------------------------------------------------------------- the experiment
def _experiment(case: Case, rows: pd.DataFrame, cost: np.ndarray, share: float | None) -> dict:
    """The canary as an A/B test: SRM, fixed-horizon CIs (peeking until the planned size) and always-valid CIs."""
    from ..abtest import analyze
    from ..governance.logkeys import key_counts, log_keys_warning, sure_units
    from .sequential import always_valid_diff

    rel = case.spec.releases
    units = rows["unit_id"].fillna(rows["request_id"]).astype(str)
    frame = pd.DataFrame({"unit": units.to_numpy(), "arm": rows["arm"].map(ARM_NAMES).to_numpy(), "cost": cost,
                          "fallback": rows["fallback"].fillna(0).astype(float).to_numpy(),
                          "latency_ms": rows["latency_ms"].astype(float).to_numpy()})
    per_unit = frame.groupby(["unit", "arm"], as_index=False).mean()
    has_cost = per_unit["cost"].notna()
    labelled = per_unit[has_cost].groupby("arm").size().to_dict()
    out: dict = {"labelled_units": {a: int(labelled.get(a, 0)) for a in ("champion", "canary")},
                 "planned_units": rel.min_units, "planned_split": None}
    # a unit hashed under several log keys (servers with different MLCASE_LOG_KEYs) is several units to the log:
    # mlmRev::Contraception's 397 test women served twice under two keys read as 794 labelled units, met
    # releases.min_units 200 per arm and were promoted, where one key read 211 and 186 and held
    keys = rows["log_key_id"] if "log_key_id" in rows else pd.Series(None, index=rows.index, dtype="string")
    warning = log_keys_warning(key_counts(units, keys))
    out["log_keys"] = warning
    if warning:
        lab = ~np.isnan(cost)
        arm_names = rows["arm"].map(ARM_NAMES).to_numpy()
        out["labelled_units_sure"] = {a: sure_units(units[lab & (arm_names == a)], keys[lab & (arm_names == a)])
                                      for a in ("champion", "canary")}
    metrics = ["cost"] if min(out["labelled_units"].values()) >= 2 else ["fallback"]
    split = None
    if share:
        hold = case.spec.serving.holdout
        split = f"champion={(1 - hold - share) * 100:g},canary={share * 100:g}"
        out["planned_split"] = {"champion": 1 - hold - share, "canary": share}
    try:
        a = analyze(per_unit, unit="unit", variant="arm", metrics=metrics, control="champion", split=split,
                    guardrails=[] if metrics == ["fallback"] else ["fallback<=+0.01"],
                    lower_is_better=metrics, alpha=rel.alpha, drop_mixed=True)
        out["analysis"] = {k: v for k, v in a.to_dict().items() if k in (
            "verdict", "trustworthy", "srm", "metrics", "guardrails", "warnings", "conclusion")}
        out["srm_ok"] = a.trustworthy if share else None
    except Exception as exc:  # noqa: BLE001 - e.g. one arm without units yet: the verdict holds
        out["analysis"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        out["srm_ok"] = None
    champ, can = per_unit[per_unit["arm"] == "champion"], per_unit[per_unit["arm"] == "canary"]
    out["cost"] = (always_valid_diff(champ["cost"].dropna(), can["cost"].dropna(), rel.alpha, rel.min_units)
                   if metrics == ["cost"] else None)
    out["fallback"] = always_valid_diff(champ["fallback"], can["fallback"], rel.alpha, rel.min_units)
    out["peeking"] = min(out.get("labelled_units_sure", out["labelled_units"]).values()) < rel.min_units
    return out


# --------------------------------------------------------------------------- the verdict
def _guardrails(case: Case, arms: dict) -> list[dict]:
    spec = case.spec
    g = spec.releases.guardrails
    min_rows = spec.releases.min_rows
    max_fb = g.max_fallback_share if g.max_fallback_share is not None else spec.monitoring.max_fallback_share
    max_lat = g.max_latency_p95_ms if g.max_latency_p95_ms is not None else spec.constraints.latency_p95_ms
    max_psi = g.max_psi if g.max_psi is not None else spec.monitoring.psi_alert
    c, m = arms["canary"], arms["champion"]
    enough = c["records"] >= min_rows
    out = []

    def add(name, ch, ca, limit, broken, rule):
        """``rule`` says when the guardrail breaks; ``why`` is the rule only for a broken one."""
        status = "unknown" if ca is None or limit is None or not enough else ("broken" if broken else "ok")
        out.append({"name": name, "champion": ch, "canary": ca, "limit": limit, "status": status,
                    "rule": f"broken when {rule}", "why": rule if status == "broken" else None})

    add("error share", m["error_share"]["value"], c["error_share"]["value"], g.max_error_share,
        c["error_share"]["low"] > g.max_error_share, "the Wilson interval's lower bound is above the limit")
    add("fallback share", m["fallback_share"]["value"], c["fallback_share"]["value"], max_fb,
        c["fallback_share"]["low"] > max_fb, "the Wilson interval's lower bound is above the limit")
    add("latency p95 (ms)", m["latency_p95_ms"], c["latency_p95_ms"], max_lat,
        max_lat is not None and c["latency_p95_ms"] > max_lat and c["latency_p95_ms"] > (m["latency_p95_ms"] or 0),
        "above the limit and above the champion's over the same period")
    # PSI grows as a sample shrinks (about (bins - 1) / n with no drift at all), and the canary is the smaller
    # arm: a PSI breaks the guardrail only where its test says the change is real (p < releases.alpha), as
    # monitoring's drift status does; a noisy PSI on a few canary rows is not a reason to roll back
    def over(psi) -> bool:
        return psi is not None and psi > max_psi

    rule = (f"a change significant at p < {spec.releases.alpha:g} is above the limit on the canary's rows and not "
            "on the champion's")
    dc, dm = c.get("drift") or {}, m.get("drift") or {}
    add("input drift (max PSI)", dm.get("max_psi"), dc.get("max_psi"), max_psi,
        over(dc.get("significant_psi")) and not over(dm.get("significant_psi")), rule)
    add("score drift (PSI)", m.get("score_psi"), c.get("score_psi"), max_psi,
        over(c.get("score_significant_psi")) and not over(m.get("score_significant_psi")), rule)
    cap = m.get("capacity")
    if c.get("flag_rate") is not None and cap is not None:
        limit = cap * (1 + g.capacity_tolerance)
        add("flag rate vs capacity", m["flag_rate"]["value"], c["flag_rate"]["value"], limit,
            c["flag_rate"]["low"] > limit, "the Wilson interval's lower bound passes the capacity (with tolerance)")
    return out


def _verdict(case: Case, guards: list[dict], exp: dict) -> tuple[str, list[str]]:
    rel = case.spec.releases
    broken = [g for g in guards if g["status"] == "broken"]
    reasons = [f"{g['name']}: canary {_fmt(g['canary'])} against the limit {_fmt(g['limit'])} "
               f"(champion {_fmt(g['champion'])}); {g['why']}" for g in broken]
    cost = exp.get("cost")
    if cost and cost["diff"] is not None and cost["low"] > rel.cost_margin:
        reasons.append(f"the canary costs {signed(cost['diff'])} per decision [always-valid {1 - rel.alpha:.0%}: "
                       f"{signed(cost['low'])}, {signed(cost['high'])}], more than releases.cost_margin {rel.cost_margin:g}")
    if reasons:
        return "rollback", reasons
    hold = []
    units, sure = exp["labelled_units"], exp.get("labelled_units_sure")
    if min(units.values()) < rel.min_units:
        hold.append(f"labelled units champion {units['champion']}, canary {units['canary']}: fewer than the planned "
                    f"releases.min_units {rel.min_units} per arm")
    elif sure and min(sure.values()) < rel.min_units:
        hold.append(f"labelled units champion {units['champion']}, canary {units['canary']} as logged, but hashed "
                    f"under {len(exp['log_keys']['keys'])} different log keys, so a unit may count once per key: "
                    f"champion {sure['champion']}, canary {sure['canary']} for certain, fewer than the planned "
                    f"releases.min_units {rel.min_units} per arm; keep one MLCASE_LOG_KEY for every server and "
                    "label more units")
    if exp.get("srm_ok") is False:
        hold.append("sample ratio mismatch: the arms' sizes do not match the planned split; find out why first")
    if not cost or cost["diff"] is None:
        hold.append("no labels yet: the cost of the canary is unknown (see the estimated cost)")
    elif rel.cost_margin > 0 and cost["high"] > rel.cost_margin:
        # a margin given: a non-inferiority test, promoted only once the interval lies within it
        hold.append(f"the canary's cost difference {signed(cost['diff'])} [always-valid: {signed(cost['low'])}, "
                    f"{signed(cost['high'])}] does not yet rule out more than releases.cost_margin {rel.cost_margin:g}")
    unknown = [g["name"] for g in guards if g["status"] == "unknown" and g["limit"] is not None]
    if unknown:
        hold.append(f"guardrails not checked yet ({', '.join(unknown)}): fewer than releases.min_rows "
                    f"{rel.min_rows} canary records, or no value")
    if hold:
        return "hold", hold
    within = (f"within releases.cost_margin {rel.cost_margin:g}" if cost["high"] <= rel.cost_margin else
              f"not shown to cost more than the champion with the planned releases.min_units {rel.min_units} "
              f"labelled units per arm (releases.cost_margin 0: a check for harm; the interval still allows up to "
              f"{signed(cost['high'])}, and a positive margin would ask for it to lie within)")
    return "promote", [f"the canary costs {signed(cost['diff'])} per decision [always-valid {1 - rel.alpha:.0%}: "
                       f"{signed(cost['low'])}, {signed(cost['high'])}] on {units['canary']} labelled units, "
                       f"{within}, and every guardrail holds"]


def share_steps(case: Case, version: int) -> list[tuple[pd.Timestamp, float]]:
    """The shares the canary ``version`` was served at, oldest first: ``(when, share)`` of its ``canary_start``
    and of every ``canary_share`` event (``PUT /routing {"canary": 0.3}``, or a restart at another share)."""
    from .. import tracking

    steps = []
    for h in tracking.release_history(case, limit=200, evidence=True):
        if h.get("action") in ("canary_start", "canary_share") and h.get("to_version") == version and h.get("when"):
            share = (h.get("evidence") or {}).get("share")
            if share is not None:   # 0: paused by PUT /routing {"canary": 0}, no record went to it
                steps.append((pd.to_datetime(h["when"], utc=True), float(share)))
    return sorted(steps)


def _planned_share(case: Case, version: int, ts: pd.Series | None = None) -> tuple[float | None, str | None]:
    """The canary's share the sample ratio is checked against, and a note when it changed during the period.

    Widening a canary (``PUT /routing``) was not in the history: the arms were checked against the share it
    started at, and a canary widened from 10% to 30% read as a sample ratio mismatch (p 1e-20, 'hold: find out
    why first'). Each record is now expected at the share in force when it was routed, and the split is their
    mean over the period's records.
    """
    steps = share_steps(case, version)
    if not steps:
        c = case.spec.serving.canary
        return (float(c.share) if c is not None else None), None
    if ts is None or not len(ts) or len(steps) == 1:
        return steps[-1][1], None
    when = pd.to_datetime(ts, utc=True, format="ISO8601").to_numpy(dtype="datetime64[ns]")
    times = np.array([t.tz_localize(None).to_datetime64() for t, _ in steps], dtype="datetime64[ns]")
    shares = np.array([s for _, s in steps])
    at = shares[np.clip(np.searchsorted(times, when, side="right") - 1, 0, None)]
    used = sorted({float(x) for x in at})
    mean = float(at.mean())
    note = (None if len(used) == 1 else
            f"the canary's share changed during the period ({', '.join(f'{u:.1%}' for u in used)}): the sample "
            f"ratio is checked against the share in force at each record, {mean:.1%} over the period")
    return mean, note


def given_log(case: Case, log: str | None, what: str) -> None:
    """A prediction log named by hand (``--log``) must be there: read as "no log yet", a typo scored readiness
    lower and let ``promote`` past a canary whose rollout status said rollback. The default log may be missing."""
    if log is None:
        return
    from ..errors import DataError
    from ..serve.predlog import open_existing

    try:
        backend, _ = open_existing(case, log)
    except DataError as exc:
        raise NotFoundError(f"{what}: {exc.message}", "pass the prediction log the server writes as --log, or leave "
                            "--log out (serving.log, else <case>/predictions.db)") from None
    backend.close()


def planned_share(value, name: str = "share") -> float:
    """A canary's planned share of units as a caller gives it (``--share``), checked before anything is read.

    ``--share 1.5``, ``-1`` or ``50`` (meaning 50%) were taken as given: the sample ratio check then asked for a
    split of [-50, 150], failed inside the analysis, and the status went on without it, saying nothing but an
    error deep in ``--json``; ``--share 0`` was read as "no share given" and the arms checked against 50/50.
    A share is a number above 0 and at most the canary's limit (``serving.canary``'s, 0.5).
    """
    import math
    import numbers

    from ..arguments import said
    from ..errors import SpecError
    from ..serve.routing import MAX_SHARE

    top = MAX_SHARE["canary"]
    fix = f"give the share of units the canary was served to, above 0 and at most {top:g}, such as 0.1 for 10%"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(f"{said(name, value)} is not a canary share (got {type(value).__name__})", fix,
                        argument=name)
    if not (math.isfinite(float(value)) and 0 < float(value) <= top):
        raise SpecError(f"{said(name, value)} is not a canary share: it must be above 0 and at most {top:g}", fix,
                        argument=name)
    return float(value)


def rollout_status(case: Case, log: str | None = None, version: int | None = None,
                   share: float | None = None) -> RolloutStatus:
    """Guardrails per arm, the canary as an experiment, and a verdict (see the module docstring).

    Parameters
    ----------
    case : Case
    log : str, optional
        The prediction log (default ``serving.log`` or ``<case>/predictions.db``).
    version : int, optional
        The canary version to analyse (default the newest in the log).
    share : float, optional
        The canary's planned share of units, for the sample ratio check (default what the server
        recorded when the canary started, else ``serving.canary``).
    """
    from .. import tracking
    from ..arguments import registry_version
    from ..tasks import capacity_share

    case = as_case(case)  # a case.yaml path too, as mlcase.run takes it
    if version is not None:  # version=True read the log's records of version 1
        version = registry_version(version)
    if share is not None:
        share = planned_share(share)
    if case.spec.task in ("ranking", "forecast"):   # it said "serve one with --canary", which serve refuses there
        route = "/rank" if case.spec.task == "ranking" else "/forecast"
        raise NoCanary(f"{route} has no canary arm yet (this case is {case.spec.task}), so there is no canary to "
                       "judge", "promote a version after its evaluation (`mlcase promote`)")
    rows, v, source = _read(case, log, version)
    X = _inputs(rows)
    bundles = {b: tracking.load_bundle(case, alias=None, version=b) for b in
               sorted({int(x) for x in rows["arm_version"].dropna().unique()})}
    canary_b = bundles[v]
    cost = _costs(case, canary_b, rows, X)
    capacity = capacity_share(case)
    arms, notes = {}, []
    for arm, name in ARM_NAMES.items():
        sel = (rows["arm"] == arm).to_numpy()
        if arm == "model":
            versions = rows.loc[sel, "arm_version"].dropna()
            b = bundles[int(versions.mode().iloc[0])] if len(versions) else canary_b
        else:
            b = canary_b
        arms[name] = _arm(case, b, rows[sel], X[sel], cost[sel], capacity)
    if len(arms["champion"]["versions"]) > 1:
        notes.append(f"the champion changed during the canary (versions {arms['champion']['versions']})")
    planned, changed = (share, None) if share is not None else _planned_share(case, v, rows["ts"])
    if changed:
        notes.append(changed)
    if planned is None:
        notes.append("the canary's planned share is unknown (pass --share): the sample ratio is not checked")
    exp = _experiment(case, rows, cost, planned)
    if exp.get("log_keys"):
        notes.append(exp["log_keys"]["message"])
    if exp["peeking"]:
        notes.append(f"peeking: fewer than releases.min_units {case.spec.releases.min_units} labelled units per "
                     "arm, so the fixed-horizon intervals of the analysis assume a look that has not come; the "
                     "verdict rests on the always-valid intervals, which allow it")
    guards = _guardrails(case, arms)
    verdict, reasons = _verdict(case, guards, exp)
    return RolloutStatus(case=case.name, verdict=verdict, reasons=reasons, canary_version=v,
                         champion_versions=arms["champion"]["versions"],
                         period={"from": str(rows["ts"].min()), "to": str(rows["ts"].max()), "log": source},
                         arms=arms, guardrails=guards, experiment=exp, peeking=exp["peeking"], notes=notes)


__all__ = ["EXIT", "NoCanary", "RolloutStatus", "planned_share", "rollout_status"]
