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

Each row the server hashes is logged with the key's id (``log_key_id``: :func:`mlcase.bundle.key_id` of the log
key, a short public fingerprint that does not reveal it), so monitoring and erasure can tell when a log holds
rows hashed under different keys: the same unit then has unrelated hashes, and nothing can match them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import unicodedata

LOG_KEY_ENV = "MLCASE_LOG_KEY"
LOG_KEY_FILE = "log.key"
PREFIX = "hmac:"
_CONTEXT = b"mlcase-log-v1"


def log_key() -> bytes:
    """The log key (see the module's docstring); a bad key is a :class:`~mlcase.errors.SpecError`."""
    from ..errors import SpecError
    from ..keys import secret_key

    return secret_key(LOG_KEY_ENV, LOG_KEY_FILE, SpecError, "log key")


def log_key_id(key: bytes | None = None) -> str:
    """The id of the log key (default :func:`log_key`): :func:`mlcase.bundle.key_id`'s public fingerprint of it."""
    from ..bundle import key_id

    return key_id(log_key() if key is None else key)


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


_UUID = re.compile(r"^(?:urn:uuid:)?\{?(?:([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})|"
                   r"([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12}))\}?$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_WHOLE = re.compile(r"^(-?\d+)\.0*$")


def unit_text(value) -> str | None:
    """The one text a unit (a ``data.id`` value) is logged, hashed and erased as: :func:`canonical`, then

    - Unicode NFC (``"Jose\\u0301"`` and ``"Jos\\u00e9"`` are one person);
    - a UUID (with or without hyphens, braces or ``urn:uuid:``, any case) as 8-4-4-4-12 lower-case hex;
    - an e-mail address in lower case (``Ana@Example.COM`` is ``ana@example.com``).

    Numbers are written whole (``123.0`` is ``123``) by :func:`canonical`; text that spells a number is kept as
    written (``"00123"`` is not ``123``). Before this form, the log kept the stripped text as the client sent it:
    :func:`unit_forms` lists those older forms so erasure still finds the rows they were logged under.
    """
    text = canonical(value)
    if text is None:
        return None
    text = unicodedata.normalize("NFC", text)
    m = _UUID.match(text)
    if m:
        return "-".join(g for g in m.groups() if g is not None).lower()
    if _EMAIL.match(text):
        return text.lower()
    return text


def unit_forms(value) -> list[str]:
    """Every text a unit may have been logged as (the first is :func:`unit_text`): the form of this version, the
    text as given (what older versions logged), its NFC and NFD spellings, a UUID's upper-case and hyphen-less
    spellings, and a whole number written with ``.0`` spelled whole."""
    text = canonical(value)
    if text is None:
        return []
    first = unit_text(text)
    forms = [first, text, unicodedata.normalize("NFC", text), unicodedata.normalize("NFD", text),
             unicodedata.normalize("NFD", first)]
    if _UUID.match(text):
        forms += [first.upper(), first.replace("-", ""), first.replace("-", "").upper()]
    if _EMAIL.match(text):
        local, _, domain = text.rpartition("@")
        forms += [f"{local}@{domain.lower()}"]
    m = _WHOLE.match(text)
    if m:
        forms.append(str(int(m.group(1))))
    return list(dict.fromkeys(forms))


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
        #: the key's id (:func:`log_key_id`), logged beside each row hashed with it
        self.key_id = log_key_id(self._key)

    def __call__(self, column: str, value) -> str | None:
        text = canonical(value)
        if text is None:
            return None
        msg = b"\0".join((_CONTEXT, self.case_name.encode(), column.encode(), text.encode("utf-8", "surrogatepass")))
        return PREFIX + hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]


def is_hashed(value) -> bool:
    """True for a value this module produced."""
    return isinstance(value, str) and value.startswith(PREFIX) and len(value) == len(PREFIX) + 32
