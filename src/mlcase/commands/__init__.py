"""CLI command modules. Each module defines ``register(app)``; heavy imports stay inside the commands."""

from __future__ import annotations

import importlib

MODULES = ["core", "checks", "model", "trust", "analyze", "serving", "monitoring", "log", "review", "governance", "abtest",
           "releases", "report"]


def register_all(app) -> None:
    for name in MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # that stage's commands are not written yet
            raise
        mod.register(app)
