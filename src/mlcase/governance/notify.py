"""Alerts that reach their owner: ``monitoring.notify`` commands, run once per owner with the alert JSON on stdin.

mlcase has no network code: a webhook, a mail or a pager is one script away. Each command
runs without a shell (a string is split into words like a POSIX shell would, a list is the
argv as given; write ``["sh", "-c", "..."]`` to want a shell), in the case folder, with
``MLCASE_CASE`` and ``MLCASE_OWNER`` in its environment and this on stdin::

    {"case": "churn", "owner": "platform team", "source": "monitor", "sent_at": "...Z",
     "n_alerts": 2, "alerts": [{"kind": "fallback", "owner": "platform team", "window": ...,
                                "value": ..., "threshold": ..., "message": "..."}, ...]}

A command that fails, is missing or runs past ``monitoring.notify_timeout`` (it is killed, with the
children it started) is reported in the result, on one line with the tail of its output, never raised:
monitoring's own answer stands, and the other owners' commands still run. A command is done when its
own process exits (a job it left in the background does not hold monitoring up).

An alert is sent once, then again only while it still fires ``monitoring.notify_repeat`` (4h, as
Prometheus Alertmanager's ``repeat_interval``) after it was last sent: ``mlcase monitor`` reads every
window still in the log, so without this each run from cron paged again for weeks-old windows, and
the dead-man's switch, run every few minutes, paged every few minutes. An alert is the same alert by
its owner, kind, window and what it is about (feature, assumption, series), not by its numbers, which
move as a live window fills. When it was sent is kept in ``.mlcase/governance/notified.json`` (no
identifier, no value), once one of its owner's commands succeeded: an owner nobody reached is tried
again on the next run. ``notify_repeat: 0`` sends every alert on every run.

What a command gets: the alerts as monitoring reports them (kinds, windows, feature names, shares,
statistics and the most common fallback reason; no logged input value is quoted), and the environment
of ``mlcase`` without its secrets (:data:`SECRET_ENV`: the log key, the signing key, the API key).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

from .owners import by_owner, notify_targets, owner_counts

STDERR_TAIL = 500


def payload(case, owner: str, alerts: list[dict], source: str) -> dict:
    """What one owner's command reads on stdin."""
    from ..serve.predlog import now_iso

    return {"case": case.name, "owner": owner, "source": source, "sent_at": now_iso(), "n_alerts": len(alerts),
            "alerts": alerts}


NOTIFIED = "notified.json"


def alert_key(alert: dict) -> str:
    """What makes two alerts one: owner, kind, window and what it is about; not its numbers or its text."""
    import json

    about = [alert.get(k) for k in ("owner", "kind", "window", "feature", "assumption", "series")]
    return json.dumps(about, default=str)


def notify_due(case, alerts: list[dict], source: str = "monitor", now=None) -> tuple[list[dict], int]:
    """Send the alerts not sent within ``monitoring.notify_repeat`` (see the module docstring) and note them as sent
    for each owner one of whose commands succeeded. Returns :func:`notify`'s records and how many alerts were held
    back as already sent. ``now`` (epoch seconds, default the clock) is when they are sent."""
    import json

    from ..times import read_now
    from .forget import _write
    from .stores import governance_dir

    mon = case.spec.monitoring
    if not alerts or not mon.notify:
        return [], 0
    t = read_now(now)
    path = governance_dir(case) / NOTIFIED
    try:
        sent = json.loads(path.read_text(encoding="utf-8")).get("sent") or {}
    except (OSError, ValueError, AttributeError):   # none yet, or unreadable: send, as before any was kept
        sent = {}
    sent = {k: float(v) for k, v in sent.items()
            if isinstance(v, (int, float)) and t - float(v) < mon.notify_repeat} if mon.notify_repeat > 0 else {}
    due = [a for a in alerts if alert_key(a) not in sent]
    results = notify(case, due, source)
    reached = {r["owner"] for r in results if r["ok"]}
    sent.update({alert_key(a): t for a in due if a.get("owner") in reached})
    if mon.notify_repeat > 0:
        governance_dir(case).mkdir(parents=True, exist_ok=True)
        _write(path, {"sent": sent})
    return results, len(alerts) - len(due)


def notify(case, alerts: list[dict], source: str = "monitor") -> list[dict]:
    """Run every ``monitoring.notify`` command for each owner with alerts (alerts carry ``owner``).

    Returns
    -------
    list of dict
        One per command run: ``owner``, ``command`` (the program's name), ``ok``, ``returncode``,
        ``seconds``, ``error`` (the reason it failed, on one line, with the tail of its output).
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
            if cmd.owners is not None and owner not in notify_targets(cmd.owners, case.spec):
                continue
            out.append(_run(case, cmd.command, owner, text, mon.notify_timeout, redact_text))
    return out


#: mlcase's own secrets, never handed to a notify command: the log key turns a hashed identifier back into a
#: person (by trying candidates), the signing key forges a model, the API key calls the server. A script that
#: needs a credential of its own (a webhook token) reads its own variable, which is passed on.
SECRET_ENV = ("MLCASE_LOG_KEY", "MLCASE_SIGNING_KEY", "MLCASE_API_KEY")


def notify_env(case, owner: str) -> dict[str, str]:
    """The environment of a notify command: this process's, without :data:`SECRET_ENV`, with the case and owner."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    return {**env, "MLCASE_CASE": case.name, "MLCASE_OWNER": owner}


def _one_line(text: str) -> str:
    """The last :data:`STDERR_TAIL` characters of a command's output as one line (the CLI prints one per command)."""
    return " ".join(text.split())[-STDERR_TAIL:]


def _run(case, argv: list[str], owner: str, stdin: str, timeout: float, redact) -> dict:
    """Run one notify command to its end (or its time limit) and say how it went.

    The command is done when its own process exits: a job it left in the background (``curl ... &``) may
    keep running, it does not hold monitoring up. Its output goes to an unnamed temporary file (deleted
    when closed), so a chatty command costs no memory, and the tail of it, on one line, is the reason
    given when it fails. Past the time limit its whole process group is killed, children included.
    """
    import signal
    import tempfile

    t0 = time.perf_counter()
    rec = {"owner": owner, "command": os.path.basename(argv[0]), "ok": False, "returncode": None, "error": None}
    try:
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                    env=notify_env(case, owner), cwd=case.root, start_new_session=True)
            try:
                proc.communicate(stdin.encode("utf-8"), timeout=timeout)  # a command that reads nothing is fine
            except BaseException as exc:  # past its time, or monitoring itself interrupted: stop it and its children
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if hasattr(os, "killpg"):
                        os.killpg(proc.pid, signal.SIGKILL)
                    else:  # no process groups (Windows): the command itself
                        proc.kill()
                proc.wait()
                if not isinstance(exc, subprocess.TimeoutExpired):
                    raise
                rec["error"] = f"ran past monitoring.notify_timeout ({timeout:g}s) and was stopped"
            else:
                rec["returncode"] = proc.returncode
                rec["ok"] = proc.returncode == 0
                if not rec["ok"]:
                    out.seek(max(0, out.seek(0, os.SEEK_END) - 4 * STDERR_TAIL))
                    tail = _one_line(out.read().decode("utf-8", "replace"))
                    rec["error"] = f"exited with {proc.returncode}" + (f": {redact(tail)}" if tail else "")
    except FileNotFoundError:
        rec["error"] = _missing(case, argv[0])
    except PermissionError:
        rec["error"] = f"{argv[0]!r} is not executable (chmod +x it, or name its interpreter first)"
    except OSError as exc:
        rec["error"] = f"cannot run {argv[0]!r} ({exc.strerror or type(exc).__name__})"
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


def _missing(case, program: str) -> str:
    """Why ``program`` was not found: a bare name is looked up on PATH, a path is read from the case folder."""
    from pathlib import Path

    if os.sep in program or (os.altsep and os.altsep in program):
        return f"no program {program!r} (relative paths are read from the case folder {case.root})"
    if (Path(case.root) / program).is_file():
        return (f"no program {program!r} on PATH (a bare name is looked up on PATH, not in the case folder); "
                f"write ./{program} for the one in the case folder")
    return f"no program {program!r} on PATH (a program in the case folder is written ./{program})"


def notify_lines(results: list[dict], held: int = 0) -> list[str]:
    """One line per notify command run, for the CLI, then how many failed (their owners may not know), and how
    many alerts were not sent again (``held``: sent within ``monitoring.notify_repeat``)."""
    lines = [f"notified {r['owner']} with {r['command']}" if r["ok"] else
             f"could not notify {r['owner']} with {r['command']}: {r['error']}" for r in results]
    failed = [r for r in results if not r["ok"]]
    if failed:
        who = ", ".join(dict.fromkeys(r["owner"] for r in failed))
        lines.append(f"{len(failed)} of {len(results)} notify command(s) failed: {who} may not have been told")
    if held:
        lines.append(f"{held} alert(s) already sent within monitoring.notify_repeat were not sent again")
    return lines


def warn_failures(results: list[dict]) -> None:
    """The failed notify commands' lines on stderr, for ``--json`` and ``--quiet`` runs, which print no listing:
    an owner who was not told is never progress output to hide."""
    import sys

    from ..errors import redact_text

    for line in notify_lines(results):
        if not line.startswith("notified "):
            sys.stderr.write(redact_text(line) + "\n")


def monitoring_done(case, data: dict, log=None, send: bool = True) -> dict:
    """What ``mlcase monitor`` does after a run: add the dead-man's alerts at the clock's time (the silence
    since the last prediction and since the last monitoring run), leave the heartbeat, notify the owners.

    ``data`` is :meth:`MonitorResult.to_dict`; it is returned with ``alerts``, ``alerts_by_owner``,
    ``status`` and ``notifications`` updated.
    """
    from . import deadman
    from .owners import assign

    silent = deadman.silence_alerts(case, log=target) if (target := _served_log(case, log)) is not None else []
    deadman.record_heartbeat(case, n_rows=data.get("n_rows"))
    data["alerts"] = assign(data["alerts"] + silent, case.spec)  # every alert, whichever monitor raised it
    data["alerts_by_owner"] = owner_counts(data["alerts"])
    if silent:
        data["n_alerts"], data["status"] = len(data["alerts"]), "alert"
    data["notifications"], data["notify_held"] = notify_due(case, data["alerts"]) if send else ([], 0)
    return data


def _served_log(case, log) -> str | None:
    """The serving log ``mlcase monitor`` read, as the dead-man's switch reads it (a path or a URL), found the way
    monitoring found it (a relative ``--log`` from the case folder too); None for records (CSV, TSV, Parquet, a
    DataFrame), which say nothing of the server's silence."""
    from ..monitor.sources import resolve_source

    source = resolve_source(case, log)
    return str(source.target) if source.kind in ("sqlite", "sqlalchemy") else None
