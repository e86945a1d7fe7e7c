"""Arguments a caller of the Python API gives, checked where they enter: a registry version, a count.

The CLI's options are typed by Typer, but the functions behind them are public too: ``promote(case, 1.5)``
promoted version 1, ``promote(case, True)`` version 1, ``rollback(case, to=2.9)`` moved the champion to
version 2, and ``load_bundle(case, version='abc')`` ended in a bare "invalid literal for int()". Each is
refused here with one :class:`~mlcase.errors.SpecError` naming the argument and the fix, before anything is
read or written. Only :mod:`mlcase.errors` is imported, so :mod:`mlcase.tracking` and :mod:`mlcase.releases`
both use it without a cycle.
"""

from __future__ import annotations

import math
import numbers

from .errors import SpecError

VERSION_FIX = "give a whole number such as 3 (`mlcase models` lists the registered versions)"


def whole_number(value, name: str, what: str, fix: str, *, minimum: int = 1, text: bool = False) -> int:
    """``value`` as an ``int`` when it is a whole number of at least ``minimum``, else a :class:`SpecError`.

    Accepted: an integer (``numpy`` ones too), a float with no fractional part (``3.0``) and, with ``text``,
    a string of ASCII digits (``'3'``, as a command line or a query string gives it). Refused: a bool
    (``True`` is 1 to Python, never a version), a float with a fraction or not finite, any other type, and
    a number below ``minimum``.

    Parameters
    ----------
    value
        What the caller gave.
    name : str
        The argument's name, as the message shows it (``version``, ``to``, ``limit``).
    what : str
        What it must be, with its article (``a registry version number``).
    fix : str
        What to give instead.

    >>> whole_number("3", "version", "a registry version number", "give 3", text=True)
    3
    >>> whole_number(1.5, "version", "a registry version number", "give 3")
    Traceback (most recent call last):
    ...
    mlcase.errors.SpecError: version=1.5 is not a registry version number (it has a fractional part); give 3
    """
    shown = said(name, value)
    if isinstance(value, bool):
        raise SpecError(f"{shown} is not {what} (a bool, which Python would read as {int(value)})", fix,
                        argument=name)
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real):
        if not math.isfinite(float(value)) or not float(value).is_integer():
            raise SpecError(f"{shown} is not {what} (it has a fractional part)" if math.isfinite(float(value))
                            else f"{shown} is not {what}", fix, argument=name)
        number = int(value)
    elif isinstance(value, str) and text:
        digits = value.strip()
        if not (digits.isascii() and digits.isdigit()):
            raise SpecError(f"{said(name, value[:40])} is not {what}", fix, argument=name)
        number = int(digits)
    else:
        raise SpecError(f"{said(name, value)} is not {what} (got {type(value).__name__})", fix, argument=name)
    if number < minimum:
        raise SpecError(f"{shown} is not {what}: the smallest is {minimum}", fix, argument=name)
    return number


def registry_version(value, name: str = "version") -> int:
    """A registry version number given by a caller, as an ``int`` (1 or more); see :func:`whole_number`.

    >>> registry_version("2")
    2
    >>> registry_version(True)
    Traceback (most recent call last):
    ...
    mlcase.errors.SpecError: version=True is not a registry version number (a bool, which Python would read as 1); give a whole number such as 3 (`mlcase models` lists the registered versions)
    """
    return whole_number(value, name, "a registry version number", VERSION_FIX, minimum=1, text=True)


def said(name: str, value) -> str:
    """An argument as a message names it: ``version=1.5`` for a Python argument, ``--version 0`` for a command-line
    flag (a command checks its flags under their own names before it calls the function)."""
    return f"{name} {_short(value)}" if name.startswith("--") else f"{name}={_short(value)}"


RELEASE_LIMIT = ("a number of release events to list", "give how many of the newest events to list, such as 50")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["RELEASE_LIMIT", "VERSION_FIX", "registry_version", "said", "whole_number"]


def flag(value, name: str) -> bool:
    """A switch a caller of the Python API gives (``force``), as a ``bool``; a text or a number is a
    :class:`SpecError`: ``promote(case, 3, force="no")`` forced the move past its gates, ``"no"`` being true.

    >>> flag(False, "force")
    False
    >>> flag("no", "force")
    Traceback (most recent call last):
    ...
    mlcase.errors.SpecError: force='no' is not True or False (got str); pass force=True or force=False
    """
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise SpecError(f"{said(name, value)} is not True or False (got {type(value).__name__})",
                    f"pass {name}=True or {name}=False", argument=name)
