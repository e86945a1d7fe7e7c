"""Report sections: each stage's ``sections/<stage>.py`` has ``build(results) -> list[Section]``.

``results`` is :func:`mlcase.results.load_all` (stage name -> that stage's JSON).
Use :func:`table` and :func:`figure` for content so every section looks alike
and tables stay readable without JavaScript.

The renderer (:mod:`mlcase.report.render`) adds ``results["case"]`` (the spec as a
dict under ``"spec"``, plus ``"name"`` and ``"built_at"``). A section module may set
``TITLE`` and ``ORDER`` (used for its "not run yet" placeholder) and ``STAGES``
(the results it reads; default: the module's own name). When none of its
``STAGES`` has results and ``build`` returns nothing or raises, the report shows
the section as "not run yet"; when ``build`` raises otherwise, the section shows
as failed with the error and the rest of the report still renders.
"""

from __future__ import annotations

import functools
import html as _html
import itertools
import numbers
from dataclasses import dataclass, field
from typing import Any

from ...formats import number

_ids = itertools.count()


@dataclass
class Section:
    id: str
    title: str
    html: str = ""
    order: int = 50          # position in the report (lower first)
    status: str | None = None  # "ok" | "warning" | "error" | "not_run" | None: a badge next to the title
    children: list = field(default_factory=list)  # sub-sections (Section), shown under this one
    header: bool = True      # False: the renderer writes no <h2> title (the html carries its own)


def esc(v: Any) -> str:
    return _html.escape("" if v is None else str(v))


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return "–"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        # never scientific notation: an operating cost per decision read "3.151e-07" in every leaderboard (the
        # CLI's listing said $0.000000315), a tiny p-value "1e-06"
        return number(v, digits)
    return str(v)


def table(rows, columns: list[str] | None = None, caption: str | None = None, digits: int = 4,
          classes: str = "tbl") -> str:
    """An HTML table from a list of dicts or a DataFrame."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    rows = list(rows or [])
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_td(r.get(c), digits) for c in columns) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="{classes}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(v: Any, digits: int) -> str:
    num = isinstance(v, numbers.Real) and not isinstance(v, bool)
    return f'<td class="num">{esc(fmt(v, digits))}</td>' if num else f"<td>{esc(fmt(v, digits))}</td>"


def figure(fig, height: int | None = None, caption: str | None = None) -> str:
    """A Plotly figure (``plotly.graph_objects.Figure`` or its dict) rendered by the bundled plotly.js.

    A figure left on plotly's default template is drawn in the report's own
    style (the template is dropped here and applied in the page, which also
    keeps the file small); a figure with another template keeps it.
    """
    spec = fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else fig
    layout = spec.get("layout") or {}
    if "template" in layout and layout["template"] == _default_template():
        spec = {**spec, "layout": {k: v for k, v in layout.items() if k != "template"}}
    spec = plot_text(spec)
    from ...results import to_json

    payload = to_json(spec, indent=None).replace("</", "<\\/")  # NaN/inf -> null: the page's JSON.parse refuses NaN
    fid = f"fig{next(_ids)}"
    style = f' style="height:{int(height)}px"' if height else ""
    cap = f'<figcaption>{esc(caption)}</figcaption>' if caption else ""
    return (f'<figure class="plot"><div class="plotly-fig" id="{fid}"{style}></div>'
            f'<script type="application/json" data-for="{fid}">{payload}</script>{cap}</figure>')


_PLOTLY_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def plot_text(v: Any) -> Any:
    """``v`` with every string escaped for plotly.js, which draws a subset of HTML in whatever text it shows
    (names, category ticks, hover labels, annotations: ``<a href>`` became a link, ``<b>`` bold, ``<br>`` a new
    line, so a category ``<a href="javascript:alert(1)">x</a>`` read "x") and decodes ``&lt;`` back to ``<``.
    Keys ending in ``template`` (``hovertemplate``, ``texttemplate``, a layout's ``template``) are the builders'
    own markup; a builder escapes with this function what it puts in one (not with :func:`esc`:
    plotly.js knows no ``&quot;``)."""
    if isinstance(v, str):
        return v.translate(_PLOTLY_ENTITIES)
    if isinstance(v, dict):
        return {k: w if str(k).endswith("template") else plot_text(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [plot_text(w) for w in v]
    if getattr(v, "dtype", None) is not None and v.dtype.kind in "OUST":  # an array of text (numbers stay arrays)
        return [plot_text(w) for w in v.tolist()]
    return v


@functools.cache
def _default_template() -> dict:
    import plotly.io as pio

    return pio.templates[pio.templates.default].to_plotly_json()

