"""Model commands: ``mlcase bakeoff``, ``mlcase leaderboard``, ``mlcase models``."""

from __future__ import annotations

from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load


def register(app: typer.Typer) -> None:
    @app.command()
    def bakeoff(
        case: CaseArg = None,
        budget: Annotated[str | None, typer.Option(help="Time budget, e.g. 90s or 2m (default: the spec's budget).")] = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Run the baselines and the time-boxed bake-off only; print and store the leaderboard.

        Registers nothing (``mlcase run`` does, after evaluation and the decision).
        """
        from .. import results
        from ..bakeoff import run_bakeoff
        from ..data import prepare
        from ..lock import case_lock, take_over
        from ..tracking import client

        c = load(case)
        with case_lock(c, "bakeoff") as held:
            dataset = prepare(c)
            client(c)
            take_over(c, held)
            res = run_bakeoff(c, dataset, budget=budget, console=console(quiet), quiet=quiet or json_out)
            res.wait_tracking()
            results.save(c, "bakeoff", res.to_dict())
        if json_out:
            emit_json(_summary(res.to_dict()))
        else:
            res.print(console(quiet))
            _print_notes(console(quiet), res.to_dict())

    @app.command()
    def leaderboard(case: CaseArg = None, json_out: JsonOpt = False):
        """Print the stored leaderboard of the last bake-off (baselines and candidates)."""
        from .. import results
        from ..bakeoff import leaderboard_table
        from ..errors import NotFoundError

        c = load(case)
        data = results.load(c, "bakeoff")
        if data is None:
            raise NotFoundError(f"no bake-off results for case '{c.name}' in {c.work_dir}",
                                "run `mlcase run` or `mlcase bakeoff` first")
        if json_out:
            emit_json(_summary(data))
            return
        out = console()
        out.print(leaderboard_table(data))
        _print_notes(out, data)

    @app.command()
    def models(case: CaseArg = None, json_out: JsonOpt = False):
        """List the registered model versions of the case with their aliases and tags."""
        from .. import tracking

        c = load(case)
        rows = tracking.versions(c)
        if json_out:
            emit_json({"case": c.name, "tracking_uri": c.tracking_uri, "versions": rows})
            return
        out = console()
        if not rows:
            out.print(f"no registered versions of '{c.name}' in {c.tracking_uri}; `mlcase run` registers them")
            return
        from rich.table import Table

        table = Table(title=f"Registered versions of '{c.name}'", title_justify="left")
        for col in ("version", "aliases", "role", "family", "cv mean", "created", "run", "decision"):
            table.add_column(col, no_wrap=col in ("version", "created", "run"))
        for r in rows:
            tags = r.get("tags", {})
            table.add_row(str(r["version"]), ", ".join(sorted(r.get("aliases", []))), tags.get("mlcase.role", ""),
                          tags.get("mlcase.family", ""), _short(tags.get("mlcase.cv_mean")),
                          (r.get("created") or "")[:16].replace("T", " "), (r.get("run_id") or "")[:8], tags.get("mlcase.verdict", ""))
        out.print(table)


def _summary(data: dict) -> dict:
    keep = ("leaderboard", "candidate", "best_baseline", "metric", "metric_direction", "budget_s", "elapsed_s",
            "interrupted", "cv", "notes", "run_id")
    return {k: data.get(k) for k in keep}


def _print_notes(out, data: dict) -> None:
    from rich.markup import escape

    for note in data.get("notes") or []:
        out.print(f"[dim]note:[/dim] {escape(note)}")
    if data.get("candidate"):
        out.print(f"candidate: [bold]{escape(data['candidate'])}[/bold]; best baseline: "
                  f"{escape(str(data.get('best_baseline')))}; {data.get('elapsed_s', 0):.1f}s of "
                  f"{data.get('budget_s', 0):g}s budget")


def _short(v) -> str:
    try:
        return f"{float(v):.5g}"
    except (TypeError, ValueError):
        return ""
