"""``mlcase abtest``: plan, assign, analyze and A/A-check experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli import JsonOpt, QuietOpt, console, emit_json
from ._listing import Column, FormatOpt, Listing, check_format, show

abtest_app = typer.Typer(
    name="abtest",
    help="A/B tests: plan the sample size, assign units by a salted hash, analyse with trust checks, run A/A checks.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

Alpha = Annotated[float, typer.Option(help="Significance level.")]
SplitOpt = Annotated[str | None, typer.Option(help="Planned split, control first: 50/50, 10/90, 34/33/33, or control=50,treatment=50.")]


def register(app: typer.Typer) -> None:
    app.add_typer(abtest_app, name="abtest")


@abtest_app.command("plan")
def plan_cmd(
    kind: Annotated[str | None, typer.Option("--kind", help="Metric type: proportion (0/1) or mean. Default: from --sd/--history.")] = None,
    baseline: Annotated[float | None, typer.Option(help="Control rate (proportion) or mean.")] = None,
    sd: Annotated[float | None, typer.Option(help="Standard deviation per unit (mean metric).")] = None,
    mde: Annotated[str | None, typer.Option(help="Minimum detectable effect: absolute (0.01) or relative (5%).")] = None,
    alpha: Alpha = 0.05,
    power: Annotated[float, typer.Option(help="Power (1 - type II error).")] = 0.8,
    one_sided: Annotated[bool, typer.Option("--one-sided", help="One-sided test (default two-sided).")] = False,
    ratio: Annotated[float | None, typer.Option(help="Treatment units per control unit (1 = 50/50).")] = None,
    split: SplitOpt = None,
    daily_traffic: Annotated[float | None, typer.Option(help="Eligible units per day, both arms together.")] = None,
    history: Annotated[Path | None, typer.Option(help="Past data (CSV/Parquet) to estimate the metric's mean and sd.")] = None,
    metric: Annotated[str | None, typer.Option(help="The metric column in --history.")] = None,
    time: Annotated[str | None, typer.Option(help="A date column in --history; gives the daily traffic.")] = None,
    from_case: Annotated[Path | None, typer.Option("--from-case", help="Take the effect from this case's offline evaluation.")] = None,
    max_weeks: Annotated[int | None, typer.Option(help="Longest experiment you would run (with --from-case; default 8).")] = None,
    json_out: JsonOpt = False,
):
    """Sample size per arm and duration in whole weeks."""
    from ..abtest import plan as plan_fn
    from ..abtest import plan_from_case, plan_from_history
    from ..abtest.plan import split_ratio
    from ..errors import MlcaseError

    if ratio is not None and split is not None:
        raise MlcaseError("pass --ratio or --split, not both", "e.g. --split 10/90 or --ratio 9")
    r = ratio if ratio is not None else split_ratio(split)
    sided = 1 if one_sided else 2
    # a flag the chosen source does not read was dropped without a word (--from-case with --mde -1 planned on
    # the case's lift); each is refused, naming the source that sets it
    given = {"--mde": mde, "--baseline": baseline, "--sd": sd, "--kind": kind, "--history": history,
             "--metric": metric, "--time": time}
    if from_case is not None:
        unread = [f for f, v in given.items() if v is not None]
        source, other = "--from-case takes the effect and its spread from the case's evaluation", "--from-case"
    elif history is not None:
        unread = [f for f in ("--baseline", "--sd") if given[f] is not None]
        source, other = "--history gives the metric's mean and sd", "--history"
    else:
        unread = [f for f in ("--metric", "--time") if given[f] is not None]
        if unread:
            raise MlcaseError(f"{unread[0]}: it names a column of --history, which is not given",
                              f"pass --history FILE with it, or leave {', '.join(unread)} out")
    if unread:
        raise MlcaseError(f"{unread[0]}: {source}, so {', '.join(unread)} would be ignored",
                          f"leave {', '.join(unread)} out, or plan without {other}")
    if max_weeks is not None and from_case is None:
        # --max-weeks 2 without --from-case printed a plan of 6 weeks and no word that 2 was never read
        raise MlcaseError(f"--max-weeks {max_weeks}: only a plan --from-case weighs the weeks the lift needs "
                          "against a longest run", "leave --max-weeks out, or plan --from-case CASE")
    if from_case is not None:
        p = plan_from_case(from_case, alpha=alpha, power=power, sided=sided, ratio=r,
                              daily_traffic=daily_traffic, **({} if max_weeks is None else {"max_weeks": max_weeks}))
    elif history is not None:
        if not metric:
            raise MlcaseError("--history needs --metric COL", "name the metric's column in the history file")
        if mde is None:
            raise MlcaseError("--mde is required", "pass the smallest effect worth detecting, e.g. --mde 5%")
        p = plan_from_history(history, metric, mde, time=time, kind=kind, alpha=alpha, power=power,
                              sided=sided, ratio=r, daily_traffic=daily_traffic)
    else:
        if baseline is None or mde is None:
            raise MlcaseError("plan needs --baseline and --mde (or --history FILE --metric COL, or --from-case CASE)",
                              "e.g. mlcase abtest plan --baseline 0.1 --mde 5%")
        k = kind or ("mean" if sd is not None else "proportion")
        p = plan_fn(k, baseline, mde, sd=sd, alpha=alpha, power=power, sided=sided, ratio=r,
                    daily_traffic=daily_traffic)
    if json_out:
        emit_json(p.to_dict())
        return
    from ..formats import markup_escape

    con = console()
    con.print(f"[bold]Plan[/bold] ({markup_escape(str(p.source))})")
    con.print(markup_escape(p.summary()))
    for note in p.notes:
        con.print(f"[yellow]note:[/yellow] {markup_escape(note)}")


@abtest_app.command("assign")
def assign_cmd(
    ids: Annotated[Path, typer.Argument(help="Unit ids: a CSV/Parquet column or a text file, one id per line.")],
    salt: Annotated[str, typer.Option(help="Salt unique to this experiment; a new salt reshuffles every unit.")],
    split: Annotated[str, typer.Option(help="Shares per arm, control first: 50/50, 10/90, 34/33/33.")] = "50/50",
    arms: Annotated[str | None, typer.Option(help="Arm names, comma-separated (default control,treatment).")] = None,
    id_col: Annotated[str | None, typer.Option("--id-col", help="The id column of a CSV/Parquet file (default the first).")] = None,
    out: Annotated[Path | None, typer.Option(help="Assignment log (CSV); default <IDS>.assignments.csv beside IDS.")] = None,
    json_out: JsonOpt = False,
):
    """Assign units to arms by a salted SHA-256 of their id and write the assignment log."""
    from ..abtest import assign, read_ids
    from ..errors import MlcaseError

    names = [a.strip() for a in arms.split(",")] if arms else None
    target = out or ids.with_name(ids.stem + ".assignments.csv")
    if target.exists() and ids.exists() and target.resolve() == ids.resolve():
        raise MlcaseError(f"--out {target} is the ids file itself; writing the log there would overwrite the ids",
                          "pass --out another path (default <IDS>.assignments.csv)")
    result = assign(read_ids(ids, id_col), salt, split, names)
    path = result.write(target)
    if json_out:
        emit_json({**result.to_dict(), "log": str(path)})
        return
    counts = ", ".join(f"{a} {n:,}" for a, n in result.counts().items())
    console().print(f"assigned {len(result.frame):,} units with salt {salt!r}: {counts}; log written to {path}",
                    markup=False)  # arm names, the salt and the path are text


@abtest_app.command("analyze")
def analyze_cmd(
    data: Annotated[Path, typer.Argument(help="Experiment data (CSV/Parquet), one row per unit.")],
    unit: Annotated[str, typer.Option(help="Unit id column.")],
    variant: Annotated[str, typer.Option(help="Arm column.")],
    metric: Annotated[list[str], typer.Option(help="Metric column (repeat; the first is primary).")],
    control: Annotated[str | None, typer.Option(help="The control arm (default: control/baseline/A, else the first).")] = None,
    split: SplitOpt = None,
    covariate: Annotated[list[str] | None, typer.Option(help="Pre-experiment column for CUPED: COL (all metrics) or METRIC=COL.")] = None,
    guardrail: Annotated[list[str] | None, typer.Option(help="COL (must not drop by --guardrail-margin), 'COL>=-2%' or 'COL<=+5%'.")] = None,
    guardrail_margin: Annotated[str, typer.Option(help="Default guardrail margin: relative (1%) or absolute (0.01).")] = "1%",
    segment: Annotated[str | None, typer.Option(help="Effects per value of this column (Benjamini-Hochberg).")] = None,
    min_segment_size: Annotated[int, typer.Option(help="Fewest units per arm for a segment to be tested.")] = 200,
    planned_end: Annotated[str | None, typer.Option(help="Planned end date (YYYY-MM-DD): warns when analysing earlier.")] = None,
    as_of: Annotated[str | None, typer.Option(help="Analysis date (default today).")] = None,
    winsorize: Annotated[float | None, typer.Option(help="Cap mean metrics at this pooled quantile, e.g. 0.99.")] = None,
    method: Annotated[str, typer.Option(help="auto, welch, bootstrap, mann-whitney or winsorized.")] = "auto",
    alpha: Alpha = 0.05,
    lower_is_better: Annotated[list[str] | None, typer.Option(help="Metrics where lower is better (repeat).")] = None,
    proportion_ci: Annotated[str, typer.Option(help="CI for proportions: newcombe or wald.")] = "newcombe",
    drop_mixed: Annotated[bool, typer.Option("--drop-mixed", help="Leave out units seen in several arms instead of stopping.")] = False,
    aggregate: Annotated[str | None, typer.Option(help="Combine several rows of a unit: sum, mean, max or first.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML page with the CIs drawn.")] = None,
    fmt: FormatOpt = "table",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Analyse an experiment: SRM, assignment health, effects with CIs, CUPED, guardrails, segments, verdict."""
    from ..abtest import analyze
    from ..errors import MlcaseError

    fmt = check_format(fmt)
    if html is not None and html.is_dir():
        # --html naming a folder was "internal error (IsADirectoryError)", after the whole analysis
        raise MlcaseError(f"--html {html} is a folder", f"pass a file path for the page, e.g. --html {html / 'abtest.html'}")
    cov: dict[str, str] = {}
    bare = [c.strip() for c in covariate or [] if "=" not in c]
    if len(bare) > 1:
        raise MlcaseError(f"--covariate given {len(bare)} times without a metric ({', '.join(bare)})",
                          "use one bare --covariate COL for every metric, or METRIC=COL per metric")
    if bare:
        cov = {m: bare[0] for m in metric}
    for c in covariate or []:
        if "=" in c:
            m, col = (s.strip() for s in c.split("=", 1))
            if m not in metric:
                raise MlcaseError(f"--covariate {c!r}: {m!r} is not one of the --metric columns",
                                  "use METRIC=COL with a --metric name")
            cov[m] = col
    result = analyze(data, unit, variant, metric, control=control, split=split, covariate=cov or None,
                     guardrails=guardrail or [], guardrail_margin=guardrail_margin, segment=segment,
                     min_segment_size=min_segment_size, planned_end=planned_end, as_of=as_of, winsorize=winsorize,
                     method=method, alpha=alpha, lower_is_better=lower_is_better or [], proportion_ci=proportion_ci,
                     drop_mixed=drop_mixed, aggregate=aggregate)
    page = None
    if html is not None:
        from ..errors import storage_error
        from ..report.abtest_page import write_page

        try:
            page = write_page(result, html)
        except OSError as exc:
            # a path nothing can be written to (/proc/x.html) was an internal error
            raise MlcaseError(storage_error(exc) or f"--html {html}: cannot write the page there "
                              f"({(exc.strerror or type(exc).__name__).lower()}); pass --html a file in a folder you "
                              "may write to") from None
    if json_out:
        emit_json({**result.to_dict(), "html": str(page) if page else None})
        return
    _print_analysis(result, page, quiet, fmt)


def _print_analysis(result, page, quiet: bool, fmt: str = "table") -> None:
    from ..formats import markup_escape

    con = console(quiet)
    colour = {"SHIP": "green", "DONT_SHIP": "red", "INCONCLUSIVE": "yellow", "UNTRUSTWORTHY": "red"}[result.verdict]
    con.print(f"[bold {colour}]{result.verdict}[/]" + (" (preliminary)" if result.preliminary else ""))
    for w in result.warnings:
        con.print(f"[yellow]warning:[/yellow] {markup_escape(w)}")
    show(effects_listing(result), fmt, con)
    con.print(markup_escape(result.conclusion))
    if page:
        con.print(f"page written to {markup_escape(str(page))}")


def effects_listing(result) -> Listing:
    """One row per metric and treatment arm: means, the difference with its CI, relative change, adjusted p."""
    def ci(v):
        est, lo, hi = v
        return f"{est:+.3g} [{lo:+.3g}, {hi:+.3g}]"

    columns = [Column("metric / arm"), Column("control", lambda v: f"{v:.4g}", True),
               Column("treatment", lambda v: f"{v:.4g}", True), Column("diff [95% CI]", ci, True),
               Column("rel", lambda v: f"{v:+.1%}" if v == v else "n/a", True),
               Column("p adj", lambda v: f"{v[0]:.2g}" + (" *" if v[1] else ""), True)]
    rows = []
    for r in result.metrics:
        lo, hi = r["estimate_ci"]
        rel = r["cuped"]["rel_diff"] if r.get("cuped") else r["rel_diff"]
        tag = " (CUPED)" if r.get("cuped") else ""
        rows.append([f"{r['metric']} / {r['arm']}{tag}", r["mean_control"], r["mean_treatment"],
                     (r["estimate"], lo, hi), rel, (r["p_adjusted"], r["significant"])])
    return Listing(title="Effects (* significant after adjustment)", columns=columns, rows=rows)


@abtest_app.command("aa")
def aa_cmd(
    data: Annotated[Path, typer.Argument(help="Historical data (CSV/Parquet), one row per unit.")],
    metric: Annotated[list[str], typer.Option(help="Metric column (repeat).")],
    split: Annotated[str, typer.Option(help="Planned two-way split, control first.")] = "50/50",
    sims: Annotated[int, typer.Option(help="Number of random re-splits.")] = 1000,
    alpha: Alpha = 0.05,
    method: Annotated[str, typer.Option(help="auto, welch, bootstrap, mann-whitney or winsorized.")] = "auto",
    winsorize: Annotated[float | None, typer.Option(help="Cap mean metrics at this pooled quantile, e.g. 0.99.")] = None,
    unit: Annotated[str | None, typer.Option(help="Unit id column (with --aggregate when units repeat).")] = None,
    aggregate: Annotated[str | None, typer.Option(help="Combine several rows of a unit: sum, mean, max or first.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the re-splits.")] = 0,
    json_out: JsonOpt = False,
):
    """A/A simulation: the analysis' false-positive rate over random re-splits of past data."""
    from ..abtest import aa_test

    result = aa_test(data, metric, split=split, n_sims=sims, alpha=alpha, method=method, winsorize=winsorize,
                     unit=unit, aggregate=aggregate, seed=seed)
    if json_out:
        emit_json(result.to_dict())
        return
    from ..formats import markup_escape

    con = console()
    for note in result.notes:
        con.print(f"note: {markup_escape(note)}")
    con.print(markup_escape(result.conclusion))
    bad = [m["metric"] for m in result.metrics if not m["within_band"]]
    if bad:
        con.print(f"[yellow]outside the band:[/yellow] {markup_escape(', '.join(map(str, bad)))}")
