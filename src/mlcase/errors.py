"""The mlcase error tree.

Every error a user can cause is an :class:`MlcaseError`. Its message names the
thing that is wrong and ends with what to do next; the CLI prints it on one line
and exits with code 2, the server maps it to a 4xx response.
"""

from __future__ import annotations

import errno
import os
import re


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


# query parameters whose values are secrets (matched on the lower-cased name)
_SECRET_PARAM = re.compile(r"pass|pwd|token|secret|key|auth|credential|signature|sig$|session|cookie")
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`\\]+")
REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` without its secrets, for anything mlcase shows: ``postgresql://***@host/db``.

    Parsed with :func:`urllib.parse.urlsplit`, as HTTP and database clients parse it: the
    whole userinfo goes (up to the *last* ``@`` of the authority, so a password holding
    ``@`` goes with it), and so do the values of query parameters named like a password,
    token, secret or key.

    >>> redact_url("postgresql://ana:secret@db.internal/mlcase")
    'postgresql://***@db.internal/mlcase'
    >>> redact_url("http://ana:p@ss@mlflow:5000/?token=abc&x=1")
    'http://***@mlflow:5000/?token=***&x=1'
    """
    from urllib.parse import unquote, urlsplit

    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable as a URL: keep the scheme only, where a userinfo or a query may hide a secret
        if not {"@", "?"} & set(url.split("://", 1)[1]):
            return url  # a '[' outside an IPv6 host (a column named '[link=http://x]y[/link]'): nothing secret in it
        return url.split("://", 1)[0] + "://" + REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pieces = []
        for piece in query.split("&"):
            name, eq, _ = piece.partition("=")
            pieces.append(f"{name}={REDACTED}" if eq and _SECRET_PARAM.search(unquote(name).lower()) else piece)
        query = "&".join(pieces)
    if netloc == parts.netloc and query == parts.query:
        return url
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` (for messages and logs).

    >>> redact_text("API request to http://u:pw@host:5000/api failed")
    'API request to http://***@host:5000/api failed'
    """
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_deep(obj):
    """``obj`` (dicts, lists, strings) with :func:`redact_text` applied to every string in it."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {redact_deep(k) if isinstance(k, str) else k: redact_deep(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_deep(v) for v in obj]
    return obj


class RedactingStream:
    """A text stream that passes every write through :func:`redact_text` (the CLI's stdout and stderr).

    The last line of defence: whatever a library prints (MLflow's run links, a log handler's
    message, an exception text) leaves the process without the credentials of a URL.
    """

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._stream.write(redact_text(text) if isinstance(text, str) else text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding, buffer ...
        return getattr(self._stream, name)


_NO_RIGHTS = {errno.EACCES, errno.EPERM, errno.EROFS}
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}   # EFBIG: past the process's file size limit (ulimit -f)
# an atomic write's temporary file: <name>.tmp, .<name>.<pid>.tmp, .<name>.<pid>
_TEMP_NAME = re.compile(r"^(?P<name>.+?)(\.\d+)?\.tmp$|^\.(?P<hidden>.+?)\.\d+$")


def storage_error(exc: OSError) -> str | None:
    """The one line for a file the machine would not let mlcase read or write (no rights, a read-only disk, a
    full disk), naming the path and the fix; None for any other ``OSError`` (a bug until said otherwise).

    ``mlcase report`` on a case folder mounted read-only ended in "internal error (PermissionError: ...
    report/.index.html.14732.tmp)"; every command that writes into the case folder did the same. Files are
    replaced only once fully written (a temporary file, then a rename), so what was there is unchanged.
    """
    if exc.errno not in _NO_RIGHTS | _NO_SPACE or (not exc.filename and exc.errno in _NO_RIGHTS):
        return None
    from pathlib import Path

    what = (exc.strerror or os.strerror(exc.errno)).lower()
    if not exc.filename:   # a write to a file already open: the disk filled up under it
        return (f"{what}; free space on the disk the case folder (or the temporary folder) is on, or raise the "
                "quota or the file size limit, and retry: files are replaced only once fully written, so what was "
                "there is unchanged")
    path = Path(str(exc.filename))
    m = _TEMP_NAME.match(path.name)
    if m:   # the temporary file of an atomic write: name the file it stands for
        path = path.with_name((m.group("name") or m.group("hidden")).removeprefix("."))
    if exc.errno in _NO_SPACE:
        return (f"{what}: {path}; free space on that disk (or raise the quota, or the file size limit) and retry: "
                "files are replaced only once fully written, so what was there is unchanged")
    if path.exists() and not os.access(path, os.R_OK):
        return f"{what}: {path}; make it readable by the user mlcase runs as, or run mlcase as one who may read it"
    return (f"{what}: {path}; mlcase reads the case's files and writes its results into the case folder: run it "
            "as a user who may write there, or on a writable copy of the folder (cp -r); what was there is "
            "unchanged")


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
