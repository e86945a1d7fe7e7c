"""The top of the report: the decision banner and the case (what is decided, by whom, under which costs).

Reads ``results["decision"]`` (``verdict``, ``reasons``, ``champion``, and any
other numbers the decision carries), ``results["case"]`` (added by the renderer:
the spec as a dict), ``results["data"]`` (rows and split sizes),
``results["checks"]`` (to say when a run stopped at the data checks) and
``results["registry"]`` (the champion's version).
"""

from __future__ import annotations

from typing import Any

from ...formats import money as _money_text
from . import Section, esc, fmt, table

TITLE = "The case"
ORDER = 0
STAGES: tuple[str, ...] = ()  # always built: the case is known even before any stage ran

VERDICTS = ("GO", "USE_BASELINE", "NO_GO", "INCONCLUSIVE")
MEANING = {
    "GO": "Deploy the model: it pays for itself over the best baseline.",
    "USE_BASELINE": "Use the baseline: the model does not add enough to be worth running.",
    "NO_GO": "Do not deploy a model for this decision.",
    "INCONCLUSIVE": "The evidence cannot decide yet.",
    "STOPPED": "The run stopped at the data checks; no model was judged.",
    "PENDING": "No decision yet: the run has not reached the decision stage.",
}
_SHOWN = {"verdict", "reasons", "champion"}


def build(results: dict[str, dict]) -> list[Section]:
    """The decision banner (``id="decision"``, first in the report) and the case section."""
    return [
        Section(id="decision", title="Decision", html=decision_banner(results), order=0, header=False),
        Section(id="case", title=TITLE, html=case_html(results), order=1, header=False),
    ]


# --------------------------------------------------------------------------- decision
def decision_banner(results: dict[str, dict]) -> str:
    """HTML of the banner: the verdict in large type, what it means, the reasons and the champion."""
    decision = results.get("decision") or {}
    verdict = str(decision.get("verdict") or "").upper()
    reasons = [_reason_text(r) for r in decision.get("reasons") or []]
    if not verdict:
        n_errors = check_errors(results.get("checks"))
        if n_errors:
            verdict = "STOPPED"
            reasons = reasons or [f"The data checks found {n_errors} error(s); see Data checks below. "
                                  "Fix the data or the spec, or run with --force to go on."]
        else:
            verdict = "PENDING"
            reasons = reasons or ["Run `mlcase run` on the case, then `mlcase report`."]
    meaning = MEANING.get(verdict, "")
    items = "".join(f"<li>{esc(r)}</li>" for r in reasons if r)
    spec = (results.get("case") or {}).get("spec") or {}
    facts = _facts(decision, results.get("registry") or {}, (spec.get("costs") or {}).get("currency") or "$")
    facts_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)
    return (f'<div class="banner verdict-{esc(verdict)}" data-verdict="{esc(verdict)}" role="status">'
            f'<p class="kicker">Decision</p>'
            f'<div class="verdict-line"><span class="verdict">{esc(verdict)}</span>'
            f'<span class="meaning">{esc(meaning)}</span></div>'
            + (f'<ul class="reasons">{items}</ul>' if items else "")
            + (f'<dl class="facts">{facts_html}</dl>' if facts_html else "")
            + "</div>")


def _reason_text(r: Any) -> str:
    if isinstance(r, dict):
        return str(r.get("text") or r.get("message") or r.get("reason") or
                   "; ".join(f"{k}: {fmt(v)}" for k, v in r.items()))
    return str(r)


def _facts(decision: dict, registry: dict, cur: str = "$") -> list[tuple[str, str]]:
    """The numbers under the verdict: champion, lift and its CI, value per period, and any other scalars."""
    out: list[tuple[str, str]] = []
    champion = decision.get("champion")
    if isinstance(champion, dict):
        name = champion.get("name") or champion.get("model") or "?"
        extra = ", ".join(f"{_label(k)} {fmt(v)}" for k, v in champion.items()
                          if k not in ("name", "model") and _scalar(v))
        out.append(("champion", f"{name} ({extra})" if extra else str(name)))
    else:
        from ..registry_now import champion_text

        # the registry's champion now (a promote or rollback after the run moves it), else the decision's
        text = champion_text(registry, str(champion) if champion else None) if registry else None
        if text or champion:
            out.append(("champion", text or str(champion)))
    if (registry.get("aliases_now") or {}).get("canary") is not None:
        out.append(("canary", f"registry version {registry['aliases_now']['canary']}"))
    evidence = decision.get("evidence")
    if isinstance(evidence, dict):
        out.extend(_evidence(evidence, cur))
    for key, value in decision.items():
        if key in _SHOWN or key == "evidence":
            continue
        if _scalar(value):
            out.append((_label(key), _value(value)))
        elif isinstance(value, list) and len(value) == 2 and all(_scalar(v) for v in value):
            out.append((_label(key), f"{_value(value[0])} to {_value(value[1])}"))
        elif isinstance(value, dict) and any(_scalar(v) for v in value.values()):
            out.append((_label(key), _range(value)))
    return out


def _evidence(ev: dict, cur: str) -> list[tuple[str, str]]:
    """The few numbers of :func:`mlcase.decision.decide`'s evidence a reader needs at the top."""
    out: list[tuple[str, str]] = []
    if ev.get("candidate"):
        vs = f" vs {ev['best_baseline']}" if ev.get("best_baseline") else ""
        out.append(("candidate", f"{ev['candidate']}{vs}"))
    lift = ev.get("lift_money_per_decision")
    if isinstance(lift, dict) and _scalar(lift.get("estimate")):
        d = _digits(lift["estimate"])
        ci = (f" (95% CI {_money(lift['ci_low'], cur, d, True)} to {_money(lift['ci_high'], cur, d, True)})"
              if _scalar(lift.get("ci_low")) and _scalar(lift.get("ci_high")) else "")
        out.append(("lift per decision", _money(lift["estimate"], cur, d, keep=True) + ci))
    need = ev.get("required_per_decision")
    if _scalar(need):
        out.append(("needed per decision", _money(need, cur, _digits(need), keep=True)))
    value = ev.get("value_per_period")
    if isinstance(value, dict) and _scalar(value.get("expected")):
        span = (f" ({_money(value['low'], cur, 0)} to {_money(value['high'], cur, 0)})"
                if _scalar(value.get("low")) and _scalar(value.get("high")) else "")
        # whose value: the candidate's over the best baseline (credit_data, USE_BASELINE: "value per month
        # -$181,257" under "champion linear" read as the champion's)
        whose = f" ({ev['candidate']} over {value.get('versus') or ev.get('best_baseline')})" if ev.get("candidate") else ""
        out.append((f"value per {value.get('period') or 'period'}{whose}", _money(value["expected"], cur, 0) + span))
    if _scalar(ev.get("n_test")):
        out.append(("test rows", f"{int(ev['n_test']):,}"))
    if isinstance(ev.get("latency_ok"), bool):
        out.append(("latency", "within the limit" if ev["latency_ok"] else "over the limit"))
    return out


def _range(d: dict) -> str:
    """``{"low", "expected", "high"}`` as "expected (low to high)"; other dicts as "key value, ..."."""
    mid = next((d[k] for k in ("expected", "estimate", "mean", "point") if _scalar(d.get(k))), None)
    low, high = d.get("low", d.get("ci_low")), d.get("high", d.get("ci_high"))
    if _scalar(low) and _scalar(high):
        span = f"{_value(low)} to {_value(high)}"
        return f"{_value(mid)} ({span})" if mid is not None else span
    return ", ".join(f"{_label(k)} {_value(v)}" for k, v in d.items() if _scalar(v))


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) and v != ""


def _value(v: Any) -> str:
    return fmt(v, 4)


def _label(key: str) -> str:
    return str(key).replace("_", " ")


def check_errors(checks: dict | None) -> int:
    """How many error-level data checks a ``checks`` result holds (0 when it was run with --force)."""
    if not checks or checks.get("forced"):
        return 0
    errors = checks.get("errors")
    if isinstance(errors, list):
        return len(errors)
    if isinstance(errors, int) and not isinstance(errors, bool):
        return errors
    items = checks.get("checks") or checks.get("results") or []
    return sum(1 for c in items if isinstance(c, dict) and str(c.get("severity", "")).lower() == "error"
               and not c.get("accepted"))


# --------------------------------------------------------------------------- the case
def case_html(results: dict[str, dict]) -> str:
    """HTML of the case: name, the decision it serves, owner, problem, goals, owners, assumptions."""
    ctx = results.get("case") or {}
    spec = ctx.get("spec") or {}
    if not spec:
        return '<p class="not-run">The case spec was not passed to the report.</p>'
    parts = ['<div class="case-head">', '<p class="kicker muted">The case</p>',
             f"<h1>{esc(spec.get('name'))}</h1>",
             f'<p class="question"><strong>Decision:</strong> {esc(spec.get("decision"))}</p>',
             _kv(_case_facts(spec, results.get("data") or {})), "</div>"]
    goals = _list_block("Goals", spec.get("goals"))
    non_goals = _list_block("Non-goals", spec.get("non_goals"))
    if goals or non_goals:
        parts.append(f'<div class="cols">{goals}{non_goals}</div>')
    owners = spec.get("owners") or {}
    if owners:
        parts.append("<h3>Owners</h3>" + table([{"role": k, "who": v} for k, v in owners.items()]))
    assumptions = spec.get("assumptions") or []
    if assumptions:
        rows = "".join(
            f"<tr><td>{esc(a.get('text'))}</td><td>"
            + (f"<code>{esc(a['check'])}</code>" if a.get("check") else '<span class="muted">not checked automatically</span>')
            + "</td></tr>" for a in assumptions)
        parts.append('<h3>Assumptions</h3><table class="tbl"><thead><tr><th>assumption</th>'
                     f"<th>checked on the data by</th></tr></thead><tbody>{rows}</tbody></table>")
    return "".join(parts)


def _case_facts(spec: dict, data: dict) -> list[tuple[str, str]]:
    """``(label, html)`` pairs; the html is already escaped."""
    problem = spec.get("problem") or {}
    d = spec.get("data") or {}
    costs = spec.get("costs") or {}
    cons = spec.get("constraints") or {}
    out: list[tuple[str, str]] = []
    if spec.get("owner"):
        out.append(("Owner", esc(spec["owner"])))
    target = f"<code>{esc(d.get('target'))}</code>"
    if d.get("positive") is not None:
        target += f" (positive: {esc(d['positive'])})"
    out.append(("Task", f"{esc(spec.get('task'))} · target {target}"))
    rows = ""
    if data.get("rows") is not None:
        rows = f" · {int(data['rows']):,} rows"
        split = data.get("split") or {}
        if split.get("n_test") is not None:
            rows += (f" (train {split.get('n_train', 0):,} · valid {split.get('n_valid', 0):,}"
                     f" · test {split.get('n_test', 0):,}, {esc(split.get('method', ''))} split)")
    if d.get("source"):
        out.append(("Data", f"<code>{esc(d['source'])}</code>{rows}"))
    if problem.get("current_process"):
        out.append(("Current process", esc(problem["current_process"])))
    if problem.get("volume") is not None:
        out.append(("Volume", esc(problem["volume"])))
    money = _costs(costs)
    if money:
        out.append(("Costs", money))
    limits = _constraints(cons, costs.get("currency") or "$")
    if limits:
        out.append(("Constraints", limits))
    baselines = [b if isinstance(b, str) else (b.get("name") or f"rule: {b.get('rule')}")
                 for b in spec.get("baselines") or []]
    if baselines:
        out.append(("Baselines", esc(", ".join(baselines))))
    if spec.get("candidates"):
        out.append(("Candidates", esc(", ".join(spec["candidates"]))))
    if spec.get("sensitive") or spec.get("slices"):
        cols = [*(spec.get("sensitive") or []), *(spec.get("slices") or [])]
        out.append(("Slices", esc(", ".join(dict.fromkeys(cols)))))
    return out


def _costs(costs: dict) -> str:
    cur = costs.get("currency") or "$"
    parts = []
    for key in ("true_positive", "false_positive", "false_negative", "true_negative", "under", "over"):
        v = costs.get(key)
        if v is None:
            continue
        shown = f"<code>{esc(v)}</code>" if isinstance(v, str) else esc(_money(v, cur))
        parts.append(f"{esc(_label(key))} {shown}")
    if costs.get("matrix"):
        parts.append("a cost matrix over the classes")
    return " · ".join(parts)


def _constraints(cons: dict, cur: str) -> str:
    parts = []
    if cons.get("review_capacity") is not None:
        cap = cons["review_capacity"]
        # three significant digits, as the evaluation writes it: ".0%" read a capacity of 0.125 as "12%"
        parts.append("review capacity " + (f"{100 * cap:.3g}% of cases" if isinstance(cap, float) else str(cap)))
    if cons.get("latency_p95_ms") is not None:
        parts.append(f"p95 latency ≤ {fmt(cons['latency_p95_ms'])} ms")
    if cons.get("min_lift"):
        parts.append(f"min lift {_money(cons['min_lift'], cur)} per decision")
    if cons.get("operating_cost"):
        op = cons["operating_cost"]
        parts.append("operating cost " + (_money(op, cur) + " per decision" if not isinstance(op, str) else op))
    return esc(" · ".join(parts))


def _money(v: Any, cur: str, digits: int = 2, keep: bool = False) -> str:
    """``$1,234.50``, ``-$0.412``; whole amounts lose their ``.00`` unless ``keep``."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    text = _money_text(v, cur, digits)
    return text[:-3] if digits == 2 and not keep and text.endswith(".00") else text


def _digits(v: Any) -> int:
    """Decimals for money per decision: cents, or a tenth of a cent under one unit."""
    return 3 if isinstance(v, (int, float)) and abs(v) < 1 else 2


def _kv(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _list_block(title: str, items: list | None) -> str:
    if not items:
        return ""
    return f"<div><h3>{esc(title)}</h3><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul></div>"
