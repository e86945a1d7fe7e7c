"""``mlcase review``: the review queue out as a file, reviewers' verdicts back in as labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load, load_after_file

review_app = typer.Typer(
    name="review",
    help="Human review as a label source: export the cases waiting for review, import the reviewers' verdicts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

LogOpt = Annotated[str | None, typer.Option(
    "--log", help="Prediction log (SQLite file or SQLAlchemy URL; default serving.log or <case>/predictions.db).",
    show_default=False)]


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


@review_app.command("export")
def export_cmd(
    case: CaseArg = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Queue file to write: .csv or .parquet.")] = ...,
    since: Annotated[str | None, typer.Option(help="Only predictions younger than this, e.g. 7d or 12h.")] = None,
    log: LogOpt = None,
    reasons: Annotated[int, typer.Option(help="Top SHAP reasons per case (0: none, faster).")] = 3,
    include_reviewed: Annotated[bool, typer.Option("--all", help="Also cases that already have a verdict.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Write the cases waiting for review (flagged, deferred by conformal, audit sample) to a CSV/Parquet file.

    Each row has the request id, score, conformal set, top SHAP reasons, the rule's verdict and the
    record's inputs, and empty outcome, reviewer, reviewed_at and note columns for the reviewer.
    """
    from ..review import export_queue

    c = load(case)
    out = export_queue(c, output, since=since, log=log, reasons=reasons, include_reviewed=include_reviewed)
    if json_out:
        emit_json(out)
        return
    from ..formats import markup_escape

    con = console(quiet)
    why = ", ".join(f"{n} {k}" for k, n in out["by_why"].items()) or "none"
    con.print(f"wrote {out['rows']} case(s) waiting for review to {markup_escape(str(out['output']))} ({why})")
    for w in out["warnings"]:
        con.print(f"[yellow]warning[/yellow] {markup_escape(w)}")


@review_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="The filled-in queue (CSV/Parquet): request_id, outcome, reviewer"
                                              "[, reviewed_at, note].", show_default=False)],
    case: CaseArg = None,
    log: LogOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Store reviewers' verdicts as labels (all rows or none; rows without an outcome are skipped)."""
    from ..review import import_reviews

    c = load_after_file(file, case, "review import")
    out = import_reviews(c, file, log=log)
    if json_out:
        emit_json(out)
        return
    sources = ", ".join(f"{n} {k}" for k, n in out["sources"].items())
    msg = f"stored {out['stored']} verdict(s) from {Path(out['file']).name} in {out['log']}"
    msg += f" ({sources})" if sources else ""
    if out["already_imported"]:
        msg += f"; {out['already_imported']} were stored before"
    if out["skipped_unreviewed"]:
        msg += f"; {out['skipped_unreviewed']} row(s) without an outcome skipped"
    console(quiet).print(msg, markup=False)
