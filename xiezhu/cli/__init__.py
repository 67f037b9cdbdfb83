"""The ``xiezhu`` command line (``xiezhu.cli:main``); one module per command group, shared parts in ``common``.

``app``, the whole tree, is built on first use (``xiezhu.cli.main``); ``main`` builds only what a run needs.
"""
from __future__ import annotations

from typing import Any

from xiezhu.cli.entry import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from xiezhu.cli.main import app

        return app
    raise AttributeError(f"module 'xiezhu.cli' has no attribute {name!r}")
