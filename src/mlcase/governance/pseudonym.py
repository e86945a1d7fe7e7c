"""The keyed hash that stands for personal data in the prediction log.

A value is stored as ``hmac:`` followed by 32 hex digits of
``HMAC-SHA256(key, "mlcase-log-v1" NUL case NUL column NUL value)``. The key is
``MLCASE_LOG_KEY``, else ``$XDG_CONFIG_HOME/mlcase/log.key`` (:mod:`mlcase.keys`): never in
the log or the case folder, so the log alone cannot be turned back into identifiers, not even
by trying every phone number. The case name and the column are part of the message (the salt),
so the same person gets unrelated hashes in two cases or two columns, and a hash cannot be looked
up across them. Whoever holds the key and an identifier can compute its hash: that is how
``mlcase forget`` finds a subject's rows. Every machine that serves, monitors or erases for a
case needs the same key; a lost key leaves the hashed values unlinkable (nobody can find a
subject's rows any more).
"""

from __future__ import annotations

import hashlib
import hmac
import math

LOG_KEY_ENV = "MLCASE_LOG_KEY"
LOG_KEY_FILE = "log.key"
PREFIX = "hmac:"
_CONTEXT = b"mlcase-log-v1"


def log_key() -> bytes:
    """The log key (see the module's docstring); a bad key is a :class:`~mlcase.errors.SpecError`."""
    from ..errors import SpecError
    from ..keys import secret_key

    return secret_key(LOG_KEY_ENV, LOG_KEY_FILE, SpecError, "log key")


def canonical(value) -> str | None:
    """The text a value is hashed as: whole numbers without ``.0``, text stripped; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).strip()


class Pseudonymizer:
    """Hashes values of one case: ``p(column, value) -> 'hmac:...'`` (None stays None).

    Parameters
    ----------
    case_name : str
    key : bytes, optional
        Default :func:`log_key`.
    """

    def __init__(self, case_name: str, key: bytes | None = None):
        self.case_name = case_name
        self._key = log_key() if key is None else key

    def __call__(self, column: str, value) -> str | None:
        text = canonical(value)
        if text is None:
            return None
        msg = b"\0".join((_CONTEXT, self.case_name.encode(), column.encode(), text.encode("utf-8", "surrogatepass")))
        return PREFIX + hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]


def is_hashed(value) -> bool:
    """True for a value this module produced."""
    return isinstance(value, str) and value.startswith(PREFIX) and len(value) == len(PREFIX) + 32
