"""Releases: promote, roll back, watch a canary, gate on readiness, replay any logged decision.

>>> from mlcase.releases import promote, rollback, rollout_status, readiness, replay   # doctest: +SKIP

- :func:`promote` / :func:`rollback` / :func:`history`: move the registry's ``champion`` (or end a
  ``canary``), recording who, when, from, to, why and the evidence (:mod:`.moves`);
- :func:`rollout_status`: guardrails per arm and the canary as an experiment, with a
  ``promote`` / ``hold`` / ``rollback`` verdict (:mod:`.rollout`);
- :func:`readiness`: the ML Test Score from the case's own evidence (:mod:`.mltest`, the 28 tests in :mod:`.mltest_rubric`);
- :func:`replay` / :func:`replay_many`: recompute a logged decision exactly (:mod:`.replayer`);
- :func:`replay_against`: the logged traffic replayed against another registered version (:mod:`.against`).

The server side (the canary arm, the registry watcher, auto-rollback) is :mod:`mlcase.serve.release`.
Names resolve on first use, so importing this package imports nothing heavy. (No submodule is named
like a function it exports: importing a submodule binds its name on the package.)
"""

from __future__ import annotations

_LAZY = {"promote": "moves", "rollback": "moves", "history": "moves", "rollback_target": "moves",
         "ReleaseRefused": "moves", "rollout_status": "rollout", "RolloutStatus": "rollout", "NoCanary": "rollout",
         "readiness": "mltest", "Readiness": "mltest", "replay": "replayer", "replay_many": "replayer",
         "Replay": "replayer", "replay_against": "against", "VersionReplay": "against",
         "always_valid_diff": "sequential"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlcase.releases' has no attribute {name!r}")
