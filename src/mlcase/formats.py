"""How numbers, money and names are written for people (CLI, messages, Markdown): never scientific notation.

Money is written to the cent, and below a cent with three significant digits (``$0.0000000397``,
not ``3.97e-08``); other numbers with a few significant digits and thousands separators. A name from the
data or the spec goes into Rich markup through :func:`markup_escape` and into Markdown (the model card, the
datasheet) through :func:`md_text`, :func:`md_cell` and :func:`md_code`, so it is shown as written.
"""

from __future__ import annotations

import math
import re
from typing import Any


def _as_text_or_float(v: Any) -> str | float:
    """``v`` as a finite float, or the text to show instead: ``–`` for missing and non-finite values,
    ``str(v)`` for a boolean or anything not a number."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else "–"


def shown(v: Any) -> str:
    """A data value in a message: ``2012``, ``'N'`` (text quoted), ``2020-01-01 00:00:00``, never
    ``np.int64(2012)`` or ``Timestamp(...)`` (a cell read by pandas is a NumPy or pandas scalar, whose
    ``repr`` names its type). NumPy is not imported for it: this module is read at every CLI start."""
    if type(v).__module__ == "numpy" and hasattr(v, "item"):
        v = v.item()
    return repr(v) if isinstance(v, str) else str(v)


#: amounts smaller than this are float rounding, not money (an operating cost per decision is about 1e-7)
MONEY_NOISE = 1e-12


def money(v: Any, currency: str = "$", digits: int = 2) -> str:
    """Money for people: ``$1,234.50`` (``digits`` decimals); below a cent three significant digits
    (``$0.0000000397``), so an amount in small units never reads as ``$0.000``.

    Below ``1e-12`` is the rounding of a sum of costs, not money (AER::Fatalities as a ranking: popularity's
    cost over a perfect list summed to -8.88e-16 and read "-$0.000000000000000888"): it is $0.00.

    >>> money(3.97e-08), money(0.004213), money(-1234.5), money(0), money(None), money(0.1564, digits=3)
    ('$0.0000000397', '$0.00421', '-$1,234.50', '$0.00', '–', '$0.156')
    >>> money(-8.88e-16)
    '$0.00'
    """
    f = "–" if isinstance(v, bool) else _as_text_or_float(v)
    if isinstance(f, str):
        return f
    if abs(f) < MONEY_NOISE:
        f = 0.0
    sign = "-" if f < 0 else ""
    a = abs(f)
    if a == 0 or a >= 0.01:
        return f"{sign}{currency}{a:,.{digits}f}"
    decimals = min(2 - math.floor(math.log10(a)), 20)  # three significant digits
    return f"{sign}{currency}{a:.{decimals}f}"


def number(v: Any, digits: int = 5) -> str:
    """A number for people: up to ``digits`` significant digits, never scientific notation.

    >>> number(1.5586726998), number(12345678.9), number(0.000012345), number(None)
    ('1.5587', '12,345,679', '0.000012345', '–')
    """
    f = _as_text_or_float(v)
    if isinstance(f, str):
        return f
    if f == 0:
        return "0"
    a = abs(f)
    if a >= 10 ** digits:
        return f"{f:,.0f}"
    decimals = max(digits - 1 - math.floor(math.log10(a)), 0)
    text = f"{f:,.{min(decimals, 20)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def signed(v: Any, digits: int = 4) -> str:
    """:func:`number` with its sign, for a difference: ``+0.006``, ``-12.35``, ``+96,746,112``.

    >>> signed(0.0060231), signed(-12.3456), signed(96746112.3), signed(0)
    ('+0.006023', '-12.35', '+96,746,112', '+0')
    """
    text = number(v, digits)
    return text if text.startswith(("-", "–")) else "+" + text


def p_value(p: float, eq: bool = False) -> str:
    """A p-value as said after "p": two significant digits, and below 0.0001 only that it is
    (wooldridge::injury's slice read "Holm-adjusted p 2.8e-81"); ``eq`` adds the "=" of "p = 0.013".

    >>> "p " + p_value(0.01234), "p " + p_value(2.8e-81), "p " + p_value(0.0004, eq=True)
    ('p 0.012', 'p < 0.0001', 'p = 0.0004')
    """
    if p < 1e-4:
        return "< 0.0001"
    return f"= {p:.2g}" if eq else f"{p:.2g}"


def duration(seconds: float | None) -> str:
    """A duration as case.yaml writes it: ``180d``, ``6h``, ``90m``, ``45s`` (the largest whole unit).

    >>> duration(15552000), duration(5400), duration(90.5)
    ('180d', '90m', '90.5s')
    """
    if seconds is None:
        return "–"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def rough_duration(seconds: float) -> str:
    """An age as people say it: the largest unit it reaches, to a tenth (``3d``, ``1.5h``, ``45s``).

    An age is measured, not configured: 3 days and one second is "3d", not ``duration``'s "259201s".

    >>> rough_duration(259201), rough_duration(5400), rough_duration(45.2)
    ('3d', '1.5h', '45s')
    """
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{round(seconds / size, 1):g}{unit}"
    return f"{round(seconds):g}s"


def listing(names: list[str], most: int | None = None) -> str:
    """``a``, ``a and b``, ``a, b and c``; past ``most`` names, ``a, b and 3 more``.

    >>> listing(["hist_gbm", "lightgbm", "xgboost"])
    'hist_gbm, lightgbm and xgboost'
    >>> listing(["a", "b", "c", "d"], most=2)
    'a, b and 2 more'
    """
    names = [str(n) for n in names]
    if most is not None and len(names) > most:
        return f"{', '.join(names[:most])} and {len(names) - most} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else ""


def markup_escape(text: Any) -> str:
    r"""``text`` (a column, class, arm or series name, a path, a message quoting them) as Rich markup that
    prints it as written: ``[red]``, ``[/]`` or ``[link=...]`` in a name are not styles, and ``[/]`` does
    not raise :class:`rich.errors.MarkupError`.

    :func:`rich.markup.escape` escapes only brackets that read as a tag, and Rich prints any other
    ``\[`` as ``[``: a column named ``\[`` printed as ``[``. Here every ``[`` is escaped; a run of
    backslashes before a tag-like bracket is doubled (Rich halves it), and before any other bracket it
    keeps one more (Rich drops one); a trailing backslash is doubled as Rich's own escape does, so it
    cannot escape the tag that follows it.

    >>> markup_escape("[/]x")
    '\\[/]x'
    >>> from rich.markup import render
    >>> [render(f"[b]{markup_escape(s)}[/b]").plain for s in ("[red]a", "\\[", "a\\[b]", "x[")]
    ['[red]a', '\\[', 'a\\[b]', 'x[']
    """
    def one(m: re.Match) -> str:
        slashes, tag = m.group(1), m.group(2)
        return slashes * 2 + "\\[" if (tag or not slashes) else slashes + "\\["

    out = re.sub(r"(\\*)\[(?=([a-z#/@][^[]*?\])?)", one, str(text))
    return out + "\\" if (len(out) - len(out.rstrip("\\"))) % 2 else out


class Markdown(str):
    """Text that is Markdown already (a code span from :func:`md_code`): a table cell escapes only its pipes."""


# what Markdown reads as markup inside a line: \ ` * [ ] < > # | & ~ anywhere, _ at a word's edge (log_loss stays)
_MD_MARKUP = re.compile(r"[\\`*\[\]<>#|&~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_MD_LIST_START = re.compile(r"^(\s*\d*)([-+.)])(?=\s|$)")  # "- x", "1. x": a list inside a list item


def _one_line(v: Any) -> str:
    return " ".join(str(v).splitlines())


def md_text(v: Any) -> str:
    r"""``v`` (a name, a category, the spec's prose) as literal Markdown text on one line.

    A newline in a decision, a goal or a column name started a line of its own: ``# injected`` became a heading
    of the card; backticks, pipes, ``<a href>`` and ``*`` in names became code, cells, links and emphasis.

    >>> md_text("<a href='x'>c</a> *b* log_loss")
    "\\<a href='x'\\>c\\</a\\> \\*b\\* log_loss"
    """
    if v is None:
        return "–"
    s = _MD_MARKUP.sub(lambda m: "\\" + m.group(0), _one_line(v))
    return _MD_LIST_START.sub(lambda m: m.group(1) + "\\" + m.group(2), s)


def md_cell(v: Any) -> str:
    """``v`` as one Markdown table cell: text escaped as :func:`md_text`, a code span with its pipes escaped."""
    if isinstance(v, Markdown):  # a code span: its pipes escaped for the table (GFM reads them before the span)
        return v.replace("|", "\\|")
    return md_text(v)


def md_code(v: Any) -> Markdown:
    """``v`` as an inline code span shown as written: fenced by more backticks than any run inside it (a
    name with backticks broke out of its span), on one line, padded where CommonMark would strip a space.

    >>> md_code("a`b")
    '``a`b``'
    """
    s = _one_line(v)
    fence = "`" * (max((len(r) for r in re.findall("`+", s)), default=0) + 1)
    pad = " " if s[:1] == "`" or s[-1:] == "`" or (s[:1] == s[-1:] == " " and s.strip()) else ""
    return Markdown(f"{fence}{pad}{s}{pad}{fence}")
