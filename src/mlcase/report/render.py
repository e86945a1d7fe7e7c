"""Assemble the HTML report: one self-contained file, ``<case>/report/index.html``.

The report is rebuilt from the stage results in ``<case>/.mlcase/*.json``
(:func:`mlcase.results.load_all`) and the case spec; nothing is retrained. Every
module in :mod:`mlcase.report.sections` contributes sections through its
``build(results) -> list[Section]``. A builder that raises does not stop the
report: its section shows the error and the rest renders. plotly.js is inlined
from the installed ``plotly`` package, so the file opens offline.

Examples
--------
>>> from mlcase.report.render import build_report     # doctest: +SKIP
>>> build_report("examples/telco-churn")               # doctest: +SKIP
PosixPath('.../examples/telco-churn/report/index.html')
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import importlib
import logging
import pkgutil
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import results as results_mod
from ..case import Case, load_case
from . import sections as sections_pkg
from .sections import Section, esc

log = logging.getLogger("mlcase.report")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# Title, position and the results read, for section modules that declare none
# (used for their "not run yet" placeholder and to tell "not run" from "failed").
_DEFAULTS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "case": ("The case", 1, ()),
    "checks": ("Data checks", 10, ("checks", "datasheet")),
    "bakeoff": ("Baselines and bake-off", 20, ("bakeoff",)),
    "evaluation": ("Evaluation", 30, ("evaluation", "ceiling")),
    "trust": ("Explanations and uncertainty", 40, ("explain", "conformal")),
    "monitoring": ("Monitoring", 60, ("monitoring",)),
}

Builder = Callable[[dict], list]
_RESERVED_IDS = {"toc", "content", "page"}  # ids the page itself uses


@dataclass
class ReportResult:
    """What :func:`write_report` wrote: the file and an outline of its sections."""

    path: Path
    sections: list[dict] = field(default_factory=list)  # id, title, status (one per top-level section)

    @property
    def failed(self) -> list[str]:
        return [s["title"] for s in self.sections if s["status"] == "failed"]

    @property
    def not_run(self) -> list[str]:
        return [s["title"] for s in self.sections if s["status"] == "not_run"]

    def to_dict(self) -> dict:
        return {"path": str(self.path), "url": self.path.resolve().as_uri(), "sections": self.sections,
                "failed": self.failed, "not_run": self.not_run}


def build_report(case: Case | str | Path, *, builders: Iterable[Builder] | None = None) -> Path:
    """Write ``<case>/report/index.html`` from the case's stage results and return its path.

    Parameters
    ----------
    case : Case, or a path to case.yaml or its folder
    builders : iterable of callables, optional
        Extra section builders (``build(results) -> list[Section]``) added to the
        ones found in :mod:`mlcase.report.sections`.
    """
    return write_report(case, builders=builders).path


def write_report(case: Case | str | Path, *, builders: Iterable[Builder] | None = None) -> ReportResult:
    """Like :func:`build_report`, and also return the outline (which sections failed or have not run)."""
    case = load_case(case)
    results = results_mod.load_all(case)
    if not results:   # an empty report would replace the one the last run wrote
        from ..errors import NotFoundError

        raise NotFoundError(f"no stage results in {case.work_dir} to build the report from",
                            f"run `mlcase run {case.root}` first")
    results["case"] = case_context(case)
    if results.get("registry"):  # the aliases now: a promote or rollback after the run moved the champion
        from .registry_now import registry_now

        results["registry"] = registry_now(case, results["registry"])
    sections = collect_sections(results, builders=builders)
    html = render_html(results, sections)
    path = case.report_dir / "index.html"
    results_mod.write_atomic(path, html)
    outline = [{"id": s.id, "title": s.title, "status": s.status} for s in sections]
    return ReportResult(path=path, sections=outline)


def case_context(case: Case) -> dict:
    """What the report knows about the case itself (``results["case"]``)."""
    from .. import __version__

    return {"name": case.name, "spec": case.spec.model_dump(mode="json"),
            "path": str(case.path or case.root), "mlcase_version": __version__,
            "built_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            # when each stage's results were written: a section can tell that another stage ran after its own
            # (the readiness of a run scored "nothing served yet" beside the monitoring of 200 labelled answers)
            "saved_at": _saved_at(case)}


def _saved_at(case: Case) -> dict[str, str]:
    """``{stage: ISO time its .mlcase/<stage>.json was last written (UTC)}``."""
    out = {}
    if case.work_dir.exists():
        for p in sorted(case.work_dir.glob("*.json")):
            with contextlib.suppress(OSError):
                out[p.stem] = _dt.datetime.fromtimestamp(p.stat().st_mtime, _dt.UTC).isoformat(timespec="seconds")
    return out


# --------------------------------------------------------------------------- sections
def section_modules() -> list[tuple[str, object]]:
    """``(name, module)`` for every module in :mod:`mlcase.report.sections` (import failures as ``(name, exc)``)."""
    out = []
    for info in sorted(pkgutil.iter_modules(sections_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            out.append((info.name, importlib.import_module(f"{sections_pkg.__name__}.{info.name}")))
        except Exception as exc:  # a broken section module must not kill the report
            _log_failure(info.name, exc, "failed to import")
            out.append((info.name, exc))
    return out


def collect_sections(results: dict, builders: Iterable[Builder] | None = None) -> list[Section]:
    """Call every section builder on ``results`` and return their sections sorted by ``order``.

    A builder that raises becomes one failed section holding the error; a
    builder whose results are absent becomes a "not run yet" placeholder.
    """
    found: list[Section] = []
    sources: list[tuple[str, object]] = section_modules()
    sources += [(getattr(b, "__name__", "extra"), b) for b in (builders or [])]
    replaced: set[str] = set()
    for name, src in sources:
        made = _sections_from(name, src, results)
        if any(s.status != "not_run" for s in made):  # a task's own sections replace the placeholders it names
            replaced.update(getattr(src, "REPLACES", ()))
        found.extend(made)
    found = [s for s in found if not (s.status == "not_run" and s.id in replaced)]
    found.sort(key=lambda s: s.order)  # stable: equal orders keep discovery order
    _unique_ids(found, set())
    return found


def _sections_from(name: str, src, results: dict) -> list[Section]:
    title, order, stages = _DEFAULTS.get(name, (name.replace("_", " ").capitalize(), 50, (name,)))
    if isinstance(src, Exception):
        return [_failed(name, title, order, src)]
    build = src if callable(src) and not hasattr(src, "build") else getattr(src, "build", None)
    if build is None:
        return []
    title = getattr(src, "TITLE", title)
    order = getattr(src, "ORDER", order)
    stages = tuple(getattr(src, "STAGES", stages))
    how = getattr(src, "NOT_RUN_FIX", None)
    missing = bool(stages) and not any(s in results for s in stages)
    try:
        out = list(build(results) or [])
    except Exception as exc:
        if missing:
            log.debug("report section %s: no results yet (%s: %s)", name, type(exc).__name__, exc)
            return [_not_run(name, title, order, stages, how)]
        _log_failure(name, exc, "failed")
        return [_failed(name, title, order, exc)]
    bad = [s for s in out if not isinstance(s, Section)]
    if bad:
        exc = TypeError(f"build() returned {type(bad[0]).__name__}, expected Section objects")
        _log_failure(name, exc, "failed")
        return [_failed(name, title, order, exc)]
    if not out and missing:
        return [_not_run(name, title, order, stages, how)]
    return out


def _log_failure(name: str, exc: BaseException, what: str) -> None:
    """One line at ERROR (the report shows the section as failed); the traceback at DEBUG."""
    log.error("report section %s %s: %s: %s", name, what, type(exc).__name__, exc)
    log.debug("report section %s traceback", name, exc_info=exc)


def _not_run(name: str, title: str, order: int, stages: tuple[str, ...], how: str | None = None) -> Section:
    """The placeholder of a stage without results. ``how`` (a section module's ``NOT_RUN_FIX``, HTML) says what
    writes them where ``mlcase run`` does not: the monitoring placeholder told every fresh case's reader to "run
    mlcase run", which never writes ``monitoring.json``."""
    needed = ", ".join(f"<code>.mlcase/{esc(s)}.json</code>" for s in stages)
    how = how or "Run <code>mlcase run</code> on the case, then <code>mlcase report</code>."
    html = f'<p class="not-run">Not run yet: no results for this stage ({needed}). {how}</p>'
    return Section(id=name, title=title, html=html, order=order, status="not_run")


def _failed(name: str, title: str, order: int, exc: BaseException) -> Section:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-12:])
    html = (f'<div class="failed"><p><strong>This section could not be built.</strong> '
            f"<code>{esc(type(exc).__name__)}: {esc(exc)}</code></p>"
            f"<p>The rest of the report is unaffected; this is a bug in the report section "
            f"<code>{esc(name)}</code>.</p>"
            f"<details><summary>Traceback</summary><pre>{esc(tb)}</pre></details></div>")
    return Section(id=name, title=title, html=html, order=order, status="failed")


def _unique_ids(sections: list[Section], seen: set[str]) -> None:
    for s in sections:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", str(s.id)).strip("-") or "section"
        sid, n = base, 2
        while sid in seen or sid in _RESERVED_IDS:
            sid, n = f"{base}-{n}", n + 1
        seen.add(sid)
        s.id = sid
        _unique_ids([c for c in s.children if isinstance(c, Section)], seen)



# --------------------------------------------------------------------------- HTML
def plotly_js() -> str:
    """The plotly.js bundle shipped with the installed ``plotly`` package (inlined, so no CDN)."""
    from importlib.resources import files

    text = files("plotly").joinpath("package_data", "plotly.min.js").read_text(encoding="utf-8")
    return text.replace("</script", "<\\/script")


@functools.cache
def environment():
    """The one Jinja environment of every page mlcase writes: the report, the model card, the A/B page.

    Templates live in ``report/templates/``, their CSS and JS in ``report/static/`` (see :func:`static`);
    every value is escaped unless it is :class:`markupsafe.Markup` (HTML built by the section helpers).
    """
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def static(name: str):
    """A file of ``report/static/`` as :class:`markupsafe.Markup`, to inline in a page."""
    from markupsafe import Markup

    return Markup((STATIC / name).read_text(encoding="utf-8"))


def render_html(results: dict, sections: list[Section]) -> str:
    """The report page from the sections (the plotly.js bundle, CSS and JS inlined)."""
    from markupsafe import Markup

    env = environment()
    ctx = results.get("case") or {}
    has_figures = _has_figures(sections)
    return env.get_template("report.html.j2").render(
        case=ctx,
        sections=sections,
        stages=sorted(k for k in results if k != "case"),
        badge=_BADGES,
        css=static("report.css"),
        js=static("report.js"),
        plotly=Markup(plotly_js()) if has_figures else None,
    )


def _has_figures(sections: list[Section]) -> bool:
    return any('class="plotly-fig"' in s.html or _has_figures([c for c in s.children if isinstance(c, Section)])
               for s in sections)


_BADGES = {"ok": "ok", "warning": "warning", "error": "error", "failed": "section failed",
           "not_run": "not run yet"}


