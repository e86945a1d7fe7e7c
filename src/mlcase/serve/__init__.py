"""Serving: the FastAPI app, request models from the stored schema, the fast path,
the fallback chain and the durable prediction log.

Nothing heavy is imported here; ``from mlcase.serve import create_app`` loads the app module.
"""

from __future__ import annotations

__all__ = ["ServeSettings", "create_app", "serve"]


def __getattr__(name):
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'mlcase.serve' has no attribute {name!r}")
