"""Secret keys kept outside every store mlcase writes: one per purpose, from the environment or a key file.

:func:`secret_key` reads ``$ENV`` when it is set, else ``$XDG_CONFIG_HOME/mlcase/<file>``
(default ``~/.config/mlcase/<file>``), created with a random value and mode 0600 on first use.
Two purposes use it:

- ``MLCASE_SIGNING_KEY`` / ``signing.key``: the HMAC that signs registered models (:mod:`mlcase.bundle`);
- ``MLCASE_LOG_KEY`` / ``log.key``: the HMAC that pseudonymises personal data in the prediction log
  (:mod:`mlcase.governance.pseudonym`).

They are separate keys on purpose: whoever holds the log key can link hashed log values to a
person they already know, and whoever holds the signing key can sign a model; rotating one must not
touch the other.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MIN_KEY_CHARS = 16


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/mlcase`` (default ``~/.config/mlcase``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mlcase"


def secret_key(env_var: str, file_name: str, error=None, what: str = "key") -> bytes:
    """The key in ``env_var``, else in ``config_dir() / file_name`` (created 0600 on first use).

    Parameters
    ----------
    env_var : str
        The environment variable that takes precedence (set it from a secret store on servers).
    file_name : str
        The key file's name in :func:`config_dir`.
    error : type, optional
        The :class:`~mlcase.errors.MlcaseError` subclass raised for a bad key (default ``MlcaseError``).
    what : str
        What the key is, for messages ("signing key", "log key").
    """
    from .errors import MlcaseError

    error = error or MlcaseError
    env = os.environ.get(env_var)
    if env is not None:
        if len(env.strip()) < MIN_KEY_CHARS:
            raise error(f"{env_var} is shorter than {MIN_KEY_CHARS} characters",
                        "set it to a long random value, e.g. `python -c \"import secrets; "
                        "print(secrets.token_hex(32))\"`")
        return env.strip().encode("utf-8")
    path = config_dir() / file_name
    try:
        if not path.exists():
            create_key_file(path)
        key = path.read_bytes().strip()
    except OSError as exc:
        raise error(f"the {what} file {path} cannot be used ({exc.strerror or type(exc).__name__})",
                    f"make its folder writable, or set {env_var}") from None
    if len(key) < MIN_KEY_CHARS:
        raise error(f"the {what} file {path} holds fewer than {MIN_KEY_CHARS} characters",
                    f"delete it (a new one is created) or set {env_var}")
    return key


def create_key_file(path: Path) -> None:
    """Write a random key with mode 0600; atomic (link), so two processes starting at once agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:  # another process created it first: use theirs
            pass
    finally:
        tmp.unlink(missing_ok=True)
