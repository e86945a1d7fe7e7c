"""Release commands: ``promote``, ``rollback``, ``releases``, ``rollout status``, ``readiness``, ``replay``.

Exit codes (for CI/CD steps): ``rollout status`` 0 promote, 1 hold, 3 rollback; ``readiness``
0 when the score reaches the minimum, 1 below it; ``replay`` 0 when every decision is
reproduced, 1 otherwise; 2 is bad input for every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load

LogOpt = Annotated[str | None, typer.Option(
    "--log", help="Prediction log (SQLite file or SQLAlchemy URL); default serving.log or <case>/predictions.db.",
    show_default=False)]
WhyOpt = Annotated[str | None, typer.Option("--why", help="Why (kept in the release history).", show_default=False)]


def register(app: typer.Typer) -> None:
    @app.command()
    def promote(
        case: CaseArg = None,
        version: Annotated[int, typer.Option("--version", help="The registry version to make the champion.",
                                             show_default=False)] = ...,
        why: WhyOpt = None,
        force: Annotated[bool, typer.Option("--force", help="Promote below releases.min_readiness, or against a "
                                            "canary whose rollout status says rollback (recorded).")] = False,
        log: LogOpt = None,
        json_out: JsonOpt = False,
    ):
        """Move the champion alias to VERSION (running servers switch without a restart)."""
        from ..arguments import registry_version
        from ..releases import promote as do_promote

        registry_version(version, "--version")   # the flag named as typed (the function says version=...)
        c = load(case)
        out = do_promote(c, version, why=why, force=force, log=log)
        if json_out:
            emit_json(out)
            return
        from ..formats import markup_escape

        r = out["readiness"]
        console().print(f"champion: version {out['from_version']} -> {out['to_version']} (readiness {r['score']:g}, "
                        f"minimum {r['minimum']:g}" + (f"; canary verdict {out['rollout']['verdict']}"
                                                       if out.get("rollout") else "") + ")"
                        + (f"; forced past: {markup_escape('; '.join(out['overridden']))}" if out["forced"] else ""))
        if out.get("was_rolled_back"):
            console().print(f"[yellow]note:[/yellow] version {out['to_version']} had been rolled back "
                            f"({markup_escape(str(out['was_rolled_back'])[:160])}); the release history records "
                            "that it is champion again")
        if out.get("against_decision"):
            console().print(f"[yellow]note:[/yellow] promoted against the decision: {markup_escape(str(out['against_decision']))}; "
                            "the release history records it")

    @app.command()
    def rollback(
        case: CaseArg = None,
        to: Annotated[int | None, typer.Option("--to", help="The version to return to (default the champion "
                                               "before this one).", show_default=False)] = None,
        why: WhyOpt = None,
        json_out: JsonOpt = False,
    ):
        """End a running canary, or move the champion alias back to the version before it."""
        from ..arguments import registry_version
        from ..releases import rollback as do_rollback

        if to is not None:
            registry_version(to, "--to")
        c = load(case)
        out = do_rollback(c, to=to, why=why)
        if json_out:
            emit_json(out)
        elif out["alias"] == "canary":
            console().print(f"canary version {out['from_version']} ended (the 'canary' alias is removed)")
        else:
            console().print(f"champion: version {out['from_version']} -> {out['to_version']}")
            if out.get("was_rolled_back"):
                from ..formats import markup_escape

                console().print(f"[yellow]note:[/yellow] version {out['to_version']} had been rolled back "
                                f"({markup_escape(str(out['was_rolled_back'])[:160])}); it is champion again")

    @app.command("releases")
    def releases_cmd(
        case: CaseArg = None,
        limit: Annotated[int, typer.Option(help="Newest events to list.")] = 50,
        evidence: Annotated[bool, typer.Option("--evidence", help="Read each event's evidence too (slower).")] = False,
        json_out: JsonOpt = False,
    ):
        """The release history: every move of the champion and canary aliases, newest first."""
        from ..arguments import RELEASE_LIMIT, whole_number
        from ..releases import history

        whole_number(limit, "--limit", *RELEASE_LIMIT)
        c = load(case)
        out = history(c, limit=limit, evidence=evidence)
        if json_out:
            emit_json(out)
            return
        _print_history(console(), out)

    rollout = typer.Typer(help="Staged rollouts: the canary's guardrails and verdict.", no_args_is_help=True)
    app.add_typer(rollout, name="rollout")

    @rollout.command("status")
    def rollout_status_cmd(
        case: CaseArg = None,
        version: Annotated[int | None, typer.Option(help="The canary version (default the newest in the log).",
                                                    show_default=False)] = None,
        share: Annotated[float | None, typer.Option(help="The canary's planned share of units, for the sample "
                                                    "ratio check (default: as recorded when it started).",
                                                    show_default=False)] = None,
        log: LogOpt = None,
        json_out: JsonOpt = False,
    ):
        """Guardrails per arm and the canary as an experiment: promote (exit 0), hold (1) or rollback (3)."""
        from ..arguments import registry_version
        from ..releases import rollout_status
        from ..releases.rollout import planned_share

        if version is not None:
            registry_version(version, "--version")
        if share is not None:
            planned_share(share, "--share")
        c = load(case)
        status = rollout_status(c, log=log, version=version, share=share)
        if json_out:
            emit_json(status.to_dict())
        else:
            status.print(console())
        raise typer.Exit(status.exit_code)

    @app.command("readiness")
    def readiness_cmd(
        case: CaseArg = None,
        min_score: Annotated[float | None, typer.Option("--min-score", help="Score to pass (default "
                                                        "releases.min_readiness).", show_default=False)] = None,
        log: LogOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Readiness: the ML Test Score (28 tests) from the case's own evidence; exit 1 below the minimum.

        The rubric is Breck et al., 2017: data, model, infrastructure and monitoring, 7 tests each;
        the score is the minimum over the four groups.
        """
        from .. import results
        from ..releases import readiness
        from ..releases.mltest import _minimum

        if min_score is not None:
            _minimum(min_score, "--min-score")
        c = load(case)
        r = readiness(c, log=log, minimum=min_score)
        results.save(c, "readiness", r.to_dict())
        if json_out:
            emit_json(r.to_dict())
        else:
            r.print(console(quiet))
        if not r.passes:
            raise typer.Exit(1)

    @app.command()
    def replay(
        case: Annotated[Path, typer.Argument(help="case.yaml or its folder.", show_default=False)],
        request_ids: Annotated[list[str] | None, typer.Argument(metavar="REQUEST_ID...", show_default=False,
                                                                help="Logged request ids to replay.")] = None,
        last: Annotated[int | None, typer.Option(help="Replay the last N logged decisions instead.",
                                                 show_default=False)] = None,
        explain: Annotated[bool, typer.Option("--explain/--no-explain", help="Show the SHAP explanation.")] = True,
        version: Annotated[int | None, typer.Option(
            "--version", help="Replay the logged records (all, REQUEST_ID... or --last N) against this registered "
            "version instead: how its decisions, flag rate and cost would have differed.", show_default=False)] = None,
        log: LogOpt = None,
        json_out: JsonOpt = False,
    ):
        """Recompute logged decisions with the exact version, schema, threshold and tier that made them.

        With --version N: replay the logged traffic against version N (a shadow evaluation after the fact).
        """
        from ..errors import MlcaseError
        from ..releases import replay_many

        if version is not None:
            from ..arguments import registry_version
            from ..releases import replay_against

            registry_version(version, "--version")
            c = load(case)
            cmp = replay_against(c, version, request_ids or None, log=log, last=last)
            if json_out:
                emit_json(cmp.to_dict())
            else:
                cmp.print(console())
            return
        if not request_ids and last is None:
            raise MlcaseError("replay: no request id given", "pass REQUEST_ID (from /predict) or --last N, or "
                              "--version N to replay the whole log against version N")
        c = load(case)
        out = replay_many(c, request_ids or None, log=log, last=last, explain=explain and len(request_ids or []) == 1)
        if json_out:
            emit_json({"case": c.name, "replayed": len(out), "reproduced": sum(r.reproduced for r in out),
                       "results": [r.to_dict() for r in out]})
        else:
            con = console()
            for r in out:
                r.print(con)
        bad = [r for r in out if not r.reproduced]
        if bad:
            import sys

            sys.stderr.write(f"mlcase: error: {bad[0].summary()}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1
                                                                       else "") + "\n")
            raise typer.Exit(1)


def _print_history(out, data: dict) -> None:
    from rich.table import Table

    from ..formats import markup_escape

    al = data["aliases"]
    out.print(f"[bold]{markup_escape(str(data['case']))}[/bold]: " + (", ".join(f"{k} -> version {v}" for k, v in sorted(al.items()))
                                                 or "no aliases"))
    if not data["events"]:
        out.print("no release recorded yet")
        return
    t = Table(show_edge=False, pad_edge=False)
    for col in ("when", "action", "alias", "from", "to", "who", "why"):
        t.add_column(col, overflow="fold")
    for e in data["events"]:
        t.add_row((e.get("when") or "")[:19].replace("T", " "), e.get("action", ""), e.get("alias", ""),
                  str(e.get("from_version") or "–"), str(e.get("to_version") or "–"), markup_escape(e.get("who", "")),
                  markup_escape((e.get("why") or "")[:160]) + (" [red](forced)[/red]" if e.get("forced") else ""))
    out.print(t)
