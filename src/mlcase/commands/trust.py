"""``mlcase explain`` (why one prediction was made) and ``mlcase card`` (the model card)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

from ..cli import CaseArg, JsonOpt, QuietOpt, console, emit_json, load


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(
        case: CaseArg = None,
        row: Annotated[str | None, typer.Option("--row", help="The data.id of a row in the case's data (its "
                                                "position when the case names no id). Without it, a JSON "
                                                "record (or a list of records) is read from stdin.")] = None,
        top: Annotated[int, typer.Option(help="How many contributions to show.", min=1)] = 5,
        alias: Annotated[str | None, typer.Option(help="Registry alias of the model to explain (default: the one "
                                                  "`mlcase serve` serves: the champion, else the baseline).")] = None,
        version: Annotated[int | None, typer.Option(help="Registry version (instead of --alias).")] = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Explain predictions: the score, the decision and the columns that pushed it (SHAP)."""
        from .. import tracking
        from ..explain import explain_rows

        c = load(case)
        if c.spec.task == "forecast":  # its bundle forecasts series from their history; a row has no SHAP of its own
            from ..errors import SpecError

            raise SpecError("mlcase explain explains one row's prediction, and a forecast case forecasts series from "
                            "their history", "the SHAP importance of the forecast model's lag and calendar features is "
                            "in the report (`mlcase report`) and the model card")
        note = None
        if version is None and alias is None:  # what `mlcase serve` serves
            bundle, served_note = tracking.load_served(c)
            if served_note:
                note = ("no 'champion' alias is registered (the decision was not GO): explaining the 'baseline', "
                        "which `mlcase serve` serves; pass --alias candidate for the candidate")
        else:
            bundle = tracking.load_bundle(c, alias=None if version is not None else alias, version=version)
        frame, labels = _rows(c, bundle, row)
        explained = explain_rows(bundle, frame, top=top)
        sets = _conformal_sets(bundle, frame)
        for item, label, s in zip(explained, labels, sets, strict=True):
            item["row"] = label
            if s is not None:
                item["conformal"] = s
        doc = {"case": c.name, "model": bundle.name, "version": bundle.version, "rows": explained}
        if note:
            doc["note"] = note
        if json_out:
            emit_json(doc)
            return
        if note:
            from ..formats import markup_escape

            console(quiet).print(f"note: {markup_escape(note)}")
        _print(console(quiet), doc, bundle)

    @app.command()
    def card(
        case: CaseArg = None,
        log: Annotated[bool, typer.Option("--log/--no-log", help="Log the card to MLflow with the registered "
                                          "model version it describes (when there is one).")] = True,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ):
        """Write the model card (model_card.md and model_card.html) from the case's stage results."""
        from ..cards import _model, card_results, log_card, write_model_card
        from ..lock import case_lock

        c = load(case)
        logged = None
        # not while a run rewrites the results it reads and the card it writes (see `mlcase report`)
        with case_lock(c, "card") if os.access(c.work_dir, os.W_OK) else contextlib.nullcontext():
            md, html = write_model_card(c)   # refuses a case with no stage results (it would empty the card)
            if log:
                described = _model(card_results(c))
                if described["version"] is not None:
                    logged = log_card(c, int(described["version"]))
        doc = {"case": c.name, "markdown": str(md), "html": str(html), "logged": logged}
        if json_out:
            emit_json(doc)
            return
        from ..formats import markup_escape

        out = console(quiet)
        out.print(f"model card: {markup_escape(str(md))}")
        out.print(f"            {markup_escape(str(html))}")
        if logged:
            out.print(f"logged to MLflow with model version {logged['version']}: {markup_escape(str(logged['artifact_uri']))}")
        elif log:
            out.print("[dim]not logged: no registered model version yet (run `mlcase run`)[/dim]")


def _rows(case, bundle, row: str | None):
    """The rows to explain and a label for each: one row of the data by id, or records from stdin."""

    from ..errors import DataError, NotFoundError

    if row is not None:
        from ..data import load_frame

        frame = load_frame(case)
        id_col = case.spec.data.id
        if id_col:
            hit = frame[frame[id_col].astype(str) == str(row)]
            if hit.empty:
                raise NotFoundError(f"--row '{row}' is not a value of data.id column '{id_col}'",
                                    f"pass an existing {id_col}, or a JSON record on stdin")
            if len(hit) > 1:  # it explained the first of them, silently, whichever the user meant
                where = ", ".join(str(int(i)) for i in hit.index[:5]) + (", ..." if len(hit) > 5 else "")
                raise DataError(f"--row '{row}' is the data.id of {len(hit)} rows of the data (at positions {where}), "
                                f"so it does not name one row",
                                f"make '{id_col}' unique, or pipe the row you mean as a JSON record on stdin",
                                column=id_col)
            return hit.reset_index(drop=True), [row]
        if not row.isdigit() or int(row) >= len(frame):
            raise NotFoundError(f"--row '{row}' is not a row number of the data (0 to {len(frame) - 1})",
                                "the case names no data.id, so --row is the row's position; "
                                "or pass a JSON record on stdin")
        return frame.iloc[[int(row)]].reset_index(drop=True), [row]
    if sys.stdin is None or sys.stdin.isatty():
        raise DataError("mlcase explain needs a row", "pass --row ID, or pipe a JSON record on stdin")
    from ..bounded import load_json

    limit = case.spec.serving.max_body_bytes  # what the server takes in one request
    text = sys.stdin.read(limit + 1)  # never more than the limit (and one char) into memory
    doc = load_json(text, "stdin", max_bytes=limit,
                    fix='pipe one JSON object like {"tenure": 5, "contract": "Month-to-month"} or a list of them '
                        "(at most serving.max_body_bytes)")
    records = doc if isinstance(doc, list) else [doc]
    if not records or not all(isinstance(r, dict) for r in records):
        raise DataError("stdin must hold a JSON object (one record) or a list of objects",
                        'pipe e.g. {"tenure": 5, "contract": "Month-to-month"}')
    missing = [f for f in bundle.features if not any(f in r for r in records)]
    if missing:
        raise DataError(f"the JSON record lacks the model's feature columns {', '.join(missing[:8])}"
                        + (f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""),
                        "add them to the record (null for unknown values)")
    from ..serve.schema import RecordSpec

    spec = RecordSpec(bundle.schema or {}, bundle.features)  # the rules /predict applies, NaN and booleans included
    clean, issues = spec.validate_records(records)
    if issues:
        first = issues[0]
        more = f" (and {len(issues) - 1} more issue(s))" if len(issues) > 1 else ""
        where = f"record {first.record}: " if len(records) > 1 else ""
        raise DataError(f"stdin {where}column '{first.field}' {first.message}{more}",
                        f"send what POST /predict accepts for '{first.field}' (see the served /docs)",
                        field=first.field, record=first.record)
    frame = spec.frame(clean)
    ids = case.spec.data.id
    return frame, [str(r.get(ids, i)) if ids else str(i) for i, r in enumerate(records)]


def _conformal_sets(bundle, frame) -> list:
    if not bundle.conformal:
        return [None] * len(frame)
    from ..conformal import predict_sets

    sets = predict_sets(bundle, frame)
    key = "interval" if bundle.task == "regression" else "set"
    return [{key: list(s), "alpha": bundle.conformal.get("alpha")} for s in sets]


def _print(out, doc: dict, bundle) -> None:
    from rich.table import Table

    from ..formats import markup_escape

    ver = f" version {doc['version']}" if doc.get("version") is not None else ""
    for item in doc["rows"]:
        pred = item["prediction"]
        what = (f"P({bundle.positive or 'positive'}) = {pred:.3f}" if bundle.task == "binary"
                else f"prediction {pred}")
        # the server's words for a binary decision at the threshold (1: act on the row, 0: leave it)
        decision = (f", decision {({1: 'flag', 0: 'auto'}).get(item['decision'], item['decision'])} "
                    f"(threshold {bundle.threshold if bundle.threshold is not None else 0.5:.3g})"
                    if bundle.task == "binary" else "")
        out.print(f"[bold]row {markup_escape(str(item['row']))}[/bold]: {markup_escape(what)}{decision}  "
                  f"[dim]({markup_escape(str(doc['model']))}{ver})[/dim]")
        if item.get("conformal"):
            conf = item["conformal"]
            shown = conf.get("set", conf.get("interval"))
            out.print(f"  conformal {'interval' if 'interval' in conf else 'set'} at "
                      f"{100 * (1 - conf['alpha']):.0f}%: {markup_escape(str(shown))}")
        table = Table(box=None, pad_edge=False)
        table.add_column("feature")
        table.add_column("value")
        table.add_column(f"contribution ({item['output_space']})", justify="right")
        table.add_row("[dim]base value[/dim]", "", f"{item['base_value']:+.4f}")
        for c in item["contributions"]:
            colour = "red" if c["contribution"] > 0 else "blue"
            table.add_row(markup_escape(str(c["feature"])), markup_escape(_short(c["value"])), f"[{colour}]{c['contribution']:+.4f}[/]")
        table.add_row("[dim]all other columns[/dim]", "", f"{item['other']:+.4f}")
        table.add_row("[bold]output[/bold]", "", f"[bold]{item['output']:+.4f}[/bold]")
        out.print(table)
        out.print(f"  [dim]{markup_escape(str(item['explainer']))} explainer on {markup_escape(str(item['explained_model']))}; "
                  f"base + contributions - output = {item['sum_check']['abs_error']:.1e}[/dim]")
        for note in item.get("notes") or []:
            out.print(f"  [dim]note: {markup_escape(str(note))}[/dim]")


def _short(v) -> str:
    s = "null" if v is None else str(v)
    return s if len(s) <= 30 else s[:27] + "..."

