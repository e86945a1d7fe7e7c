"""Release readiness: the ML Test Score (Breck et al., 2017) of the case, test by test.

Reads ``results["readiness"]`` (:meth:`mlcase.releases.mltest.Readiness.to_dict`), which
``mlcase run`` and ``mlcase readiness`` write.
"""

from __future__ import annotations

from . import Section, esc, table

TITLE = "Release readiness"
ORDER = 70
STAGES = ("readiness",)
_BADGE = {"automated": "ok", "manual": "warning", "missing": "error"}


def build(results: dict[str, dict]) -> list[Section]:
    r = results.get("readiness")
    if not r:
        return []
    status = "ok" if r["passes"] and r["score"] >= 3 else ("warning" if r["passes"] else "error")
    html = readiness_html(r)
    reg = results.get("registry") or {}
    now = reg.get("champion_version")
    saw = r["champion_version"] if "champion_version" in r else reg.get("champion_version_at_run", now)
    if "aliases_now" in reg and saw != now:  # its evidence names another champion (or none): say it is older
        html = (f'<p class="note">Computed before the champion moved (now '
                f'{esc("none" if now is None else f"registry version {now}")}): run <code>mlcase readiness</code> '
                "to score the case as it is.</p>") + html
    later = _monitored_after(r, (results.get("case") or {}).get("saved_at") or {})
    if later:  # its monitoring tests read "nothing served yet" beside a Monitoring section of real answers
        html = (f'<p class="note">Computed before the last <code>mlcase monitor</code> (its results written '
                f"{esc(later)}): the monitoring evidence below does not count them. Run <code>mlcase readiness</code> "
                "to score the case as it is.</p>") + html
    return [Section(id="readiness", title=TITLE, html=html, order=ORDER, status=status)]


def _monitored_after(r: dict, saved_at: dict[str, str]) -> str | None:
    """When monitoring results were written after this score was computed (their time), else None.

    After both its computation and its own file (over a second later: a copied case folder writes every file anew,
    in no particular order, and its readiness is not older than its monitoring for that)."""
    from datetime import datetime, timedelta

    try:
        computed = datetime.fromisoformat(r["computed_at"])
        if "readiness" in saved_at:
            computed = max(computed, datetime.fromisoformat(saved_at["readiness"]) + timedelta(seconds=1))
    except (KeyError, TypeError, ValueError):
        return None
    times = []
    for stage in ("monitoring", "forecast_monitoring"):
        try:
            t = datetime.fromisoformat(saved_at[stage])
        except (KeyError, TypeError, ValueError):
            continue
        if computed.tzinfo is not None and t.tzinfo is not None and t > computed:
            times.append(t)
    return max(times).strftime("%Y-%m-%d %H:%M:%S UTC") if times else None


def readiness_html(r: dict) -> str:
    groups = r["groups"]
    weakest = min(groups, key=groups.get)
    head = (f'<p class="lead">ML Test Score <strong>{r["score"]:g}</strong> of 7: the minimum over the four groups '
            f"(weakest: {esc(weakest)}). {esc(r['meaning'][:1].upper() + r['meaning'][1:])}. "
            + (f"It reaches <code>releases.min_readiness</code> {r['minimum']:g}, so <code>mlcase promote</code> "
               "goes ahead." if r["passes"] else
               f"It is below <code>releases.min_readiness</code> {r['minimum']:g}: <code>mlcase promote</code> "
               "refuses without <code>--force</code>.") + "</p>")
    summary = table([{"group": g, "points": v, "automated": sum(t["status"] == "automated" for t in r["tests"]
                                                                  if t["group"] == g),
                      "manual": sum(t["status"] == "manual" for t in r["tests"] if t["group"] == g),
                      "missing": sum(t["status"] == "missing" for t in r["tests"] if t["group"] == g)}
                     for g, v in groups.items()], caption="Points per group (7 tests each; 1 automated, 0.5 manual)")
    rows = "".join(
        f'<tr><td>{esc(t["id"])}</td><td>{esc(t["title"])}</td>'
        f'<td><span class="badge badge-{_BADGE[t["status"]]}">{esc(t["status"])}</span></td>'
        f'<td>{esc(t["evidence"])}' + (f'<br><span class="muted">to close: {esc(t["close"])}</span>'
                                       if t.get("close") else "") + "</td></tr>"
        for t in r["tests"])
    tests = ('<table class="tbl"><caption>The 28 tests, from this case\'s own evidence</caption><thead><tr>'
             "<th>test</th><th></th><th>status</th><th>evidence</th></tr></thead><tbody>" + rows + "</tbody></table>")
    steps = "".join(f"<li>{esc(s)}</li>" for s in r.get("next_steps") or [])
    nxt = f"<p>What would raise the score most:</p><ul>{steps}</ul>" if steps else ""
    cite = ('<p class="muted">Breck, Cai, Nielsen, Salib, Sculley: <em>The ML Test Score: A Rubric for ML '
            f"Production Readiness and Technical Debt Reduction</em> (IEEE Big Data 2017). Computed "
            f"{esc(r['computed_at'])}.</p>")
    return head + summary + nxt + tests + cite
