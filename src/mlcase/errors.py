"""The mlcase error tree.

Every error a user can cause is an :class:`MlcaseError`. Its message names the
thing that is wrong and ends with what to do next; the CLI prints it on one line
and exits with code 2, the server maps it to a 4xx response.
"""

from __future__ import annotations


class MlcaseError(Exception):
    """Base class of every error mlcase raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong, naming the thing (field, column, file).
    fix : str, optional
        What to do next; appended to the message.
    **details
        Structured details (``path``, ``column``, ``row`` ...) kept as attributes
        and in :attr:`details` for JSON output.
    """

    exit_code = 2
    http_status = 400

    def __init__(self, message: str, fix: str | None = None, **details):
        self.message = message
        self.fix = fix
        self.details = details
        for key, value in details.items():
            setattr(self, key, value)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.fix:
            sep = " " if self.message.rstrip().endswith((".", ":", ";")) else "; "
            return f"{self.message}{sep}{self.fix}"
        return self.message

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "message": str(self), **{
            k: v for k, v in self.details.items() if isinstance(v, (str, int, float, bool, list, type(None)))
        }}


def redact_url(url: str) -> str:
    """``url`` without its credentials, for messages: ``postgresql://***@host/db``.

    >>> redact_url("postgresql://ana:secret@db.internal/mlcase")
    'postgresql://***@db.internal/mlcase'
    """
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


class SpecError(MlcaseError, ValueError):
    """case.yaml is malformed or inconsistent with the data."""


class DataError(MlcaseError, ValueError):
    """The data cannot be read or does not fit the case."""


class RuleError(MlcaseError, ValueError):
    """A SQL rule, cost expression or assumption check is invalid."""


class ModelError(MlcaseError, RuntimeError):
    """A model is missing, cannot be loaded or failed."""

    http_status = 503


class NotFoundError(MlcaseError, LookupError):
    """Something the user named does not exist (a run, a model version, a row id)."""

    http_status = 404


class ChecksFailed(MlcaseError):
    """Error-level data checks block the run (use --force to override)."""

    exit_code = 2
