"""Named points where a test may stop the process, to show that a kill there leaves every store consistent.

``MLCASE_FAILPOINT=<name>`` makes :func:`failpoint` at that name write ``MLCASE_FAILPOINT_FILE``
(when set) and then sleep, so the test can ``SIGKILL`` the process exactly there. Unset (always,
outside tests), a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import time

FAILPOINT_ENV = "MLCASE_FAILPOINT"


def failpoint(name: str) -> None:
    """Stop here (until killed) when ``MLCASE_FAILPOINT`` names this point."""
    if os.environ.get(FAILPOINT_ENV) != name:
        return
    marker = os.environ.get("MLCASE_FAILPOINT_FILE")
    if marker:
        with open(marker, "w") as fh:
            fh.write(f"{os.getpid()} {name}\n")
    while True:  # pragma: no cover - the test kills the process here
        time.sleep(1)
