"""Alerts that reach their owner: ``monitoring.notify`` commands, run once per owner with the alert JSON on stdin.

mlcase has no network code: a webhook, a mail or a pager is one script away. Each command
runs without a shell (a string is split into words like a POSIX shell would, a list is the
argv as given; write ``["sh", "-c", "..."]`` to want a shell), in the case folder, with
``MLCASE_CASE`` and ``MLCASE_OWNER`` in its environment and this on stdin::

    {"case": "churn", "owner": "platform team", "source": "monitor", "sent_at": "...Z",
     "n_alerts": 2, "alerts": [{"kind": "fallback", "owner": "platform team", "window": ...,
                                "value": ..., "threshold": ..., "message": "..."}, ...]}

A command that fails, is missing or runs past ``monitoring.notify_timeout`` (it is killed) is
reported in the result, never raised: monitoring's own answer stands.
"""

from __future__ import annotations

import os
import subprocess
import time

from .owners import by_owner, owner_counts

STDERR_TAIL = 500


def payload(case, owner: str, alerts: list[dict], source: str) -> dict:
    """What one owner's command reads on stdin."""
    from ..serve.predlog import now_iso

    return {"case": case.name, "owner": owner, "source": source, "sent_at": now_iso(), "n_alerts": len(alerts),
            "alerts": alerts}


def notify(case, alerts: list[dict], source: str = "monitor") -> list[dict]:
    """Run every ``monitoring.notify`` command for each owner with alerts (alerts carry ``owner``).

    Returns
    -------
    list of dict
        One per command run: ``owner``, ``command`` (the program's name), ``ok``, ``returncode``,
        ``seconds``, ``error`` (the reason it failed, with the tail of its stderr).
    """
    from ..errors import redact_text
    from ..results import to_json

    mon = case.spec.monitoring
    if not alerts or not mon.notify:
        return []
    out = []
    for owner, items in by_owner(alerts).items():
        text = to_json(payload(case, owner, items, source), indent=None)
        for cmd in mon.notify:
            if cmd.owners is not None and owner not in {case.spec.owners.get(o, o) for o in cmd.owners}:
                continue
            out.append(_run(case, cmd.command, owner, text, mon.notify_timeout, redact_text))
    return out


def _run(case, argv: list[str], owner: str, stdin: str, timeout: float, redact) -> dict:
    env = {**os.environ, "MLCASE_CASE": case.name, "MLCASE_OWNER": owner}
    t0 = time.perf_counter()
    rec = {"owner": owner, "command": os.path.basename(argv[0]), "ok": False, "returncode": None, "error": None}
    try:
        done = subprocess.run(argv, input=stdin, text=True, capture_output=True, timeout=timeout, env=env,
                              cwd=case.root, check=False)
        rec["returncode"] = done.returncode
        rec["ok"] = done.returncode == 0
        if not rec["ok"]:
            tail = (done.stderr or "").strip()[-STDERR_TAIL:]
            rec["error"] = f"exited with {done.returncode}" + (f": {redact(tail)}" if tail else "")
    except FileNotFoundError:
        rec["error"] = f"no program {argv[0]!r} (relative paths are read from the case folder {case.root})"
    except PermissionError:
        rec["error"] = f"{argv[0]!r} is not executable"
    except subprocess.TimeoutExpired:
        rec["error"] = f"ran past monitoring.notify_timeout ({timeout:g}s) and was stopped"
    except OSError as exc:
        rec["error"] = f"cannot run it ({exc.strerror or type(exc).__name__})"
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


def notify_lines(results: list[dict]) -> list[str]:
    """One line per notify command run, for the CLI."""
    return [f"notified {r['owner']} with {r['command']}" if r["ok"] else
            f"could not notify {r['owner']} with {r['command']}: {r['error']}" for r in results]


def monitoring_done(case, data: dict, log=None, send: bool = True) -> dict:
    """What ``mlcase monitor`` does after a run: add the dead-man's alerts at the clock's time (the silence
    since the last prediction and since the last monitoring run), leave the heartbeat, notify the owners.

    ``data`` is :meth:`MonitorResult.to_dict`; it is returned with ``alerts``, ``alerts_by_owner``,
    ``status`` and ``notifications`` updated.
    """
    from . import deadman
    from .owners import assign

    database_log = log is None or not str(log).lower().endswith((".csv", ".parquet", ".pq"))
    silent = deadman.silence_alerts(case, log=log) if database_log else []
    deadman.record_heartbeat(case, n_rows=data.get("n_rows"))
    data["alerts"] = assign(data["alerts"] + silent, case.spec)  # every alert, whichever monitor raised it
    data["alerts_by_owner"] = owner_counts(data["alerts"])
    if silent:
        data["n_alerts"], data["status"] = len(data["alerts"]), "alert"
    data["notifications"] = notify(case, data["alerts"]) if send else []
    return data
