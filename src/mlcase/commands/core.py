"""Core commands: init, run, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load
from ._engine import EngineOpt, SchedulerOpt


def register(app: typer.Typer) -> None:
    _register_init(app)

    @app.command()
    def run(
        case: CaseArg = None,
        budget: Annotated[str | None, typer.Option(help="Time budget for the bake-off, e.g. 90s or 2m.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Run past error-level data checks (recorded).")] = False,
        fail_on_no_go: Annotated[bool, typer.Option("--fail-on-no-go", help="Exit 3 unless the decision is GO.")] = False,
        refit: Annotated[str | None, typer.Option(
            "--refit", help="'all': also register the champion refitted on every labelled row (overrides the "
                            "spec's refit).")] = None,
        engine: EngineOpt = None,
        scheduler: SchedulerOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Run the case end to end: checks, baselines, bake-off, evaluation, decision, report."""
        from ..pipeline import run as run_case

        c = load(case)
        result = run_case(c, budget=budget, force=force, quiet=quiet or json_out, console=console(quiet), refit=refit,
                          engine=engine, scheduler=scheduler)
        if json_out:
            emit_json(result.summary())
        else:
            result.print(console())
        if fail_on_no_go and result.decision != "GO":
            raise typer.Exit(3)


def _register_init(app: typer.Typer) -> None:
    @app.command()
    def init(
        data: Annotated[Path, typer.Argument(help="CSV or Parquet file to draft the case from.")],
        target: Annotated[str, typer.Option("--target", "-t", help="The column to predict.")],
        name: Annotated[str | None, typer.Option(help="Case name (default: the file's name).")] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write case.yaml (default: beside the data).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing case.yaml.")] = False,
        task: Annotated[str | None, typer.Option("--task", help="binary, multiclass, regression, ranking or forecast "
                                                                "(default: inferred from the target).")] = None,
        time: Annotated[str | None, typer.Option(help="The time column (a forecast case needs it).")] = None,
        series: Annotated[str | None, typer.Option(help="Forecast: the column naming each series.")] = None,
        group: Annotated[str | None, typer.Option("--group", help="Ranking: the query, user or session column.")] = None,
        item: Annotated[str | None, typer.Option("--item", help="Ranking: the item column.")] = None,
    ):
        """Draft a commented case.yaml from a data file."""
        from ..draft import draft_summary, write_draft
        from ..formats import markup_escape

        path = write_draft(data, target, name=name, out=out, force=force, task=task, time=time, series=series,
                           group=group, item=item)
        out_ = console()
        text = path.read_text(encoding="utf-8")
        noted = False
        for line in text.splitlines():
            if line.startswith("# note: "):  # what reading the file changed (also a comment in the draft)
                out_.print(f"[yellow]note:[/yellow] {markup_escape(line.removeprefix('# note: '))}")
                noted = True
            elif noted and line.startswith("#   "):
                # the note's example (the query that drops rare classes): the note ended "..., e.g." with nothing
                # after it on the terminal (openintro::nba_players_19's three rare positions)
                out_.print(f"  {markup_escape(line.removeprefix('#   '))}")
            else:
                noted = False
        out_.print(markup_escape(draft_summary(text)))
        # `mlcase run FOLDER` reads FOLDER/case.yaml: a draft written as `-o other.yaml` is run by its own path
        # (quoted for a shell where it holds spaces: `mlcase run /tmp/odd dir` runs ./case.yaml on two arguments)
        import shlex

        runs = shlex.quote(str(path.parent if path.name == "case.yaml" else path))
        out_.print(f"wrote {markup_escape(str(path))}: fill in the TODOs (decision, costs, capacity), then run "
                   f"`mlcase run {markup_escape(runs)}`")
