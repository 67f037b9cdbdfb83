"""The ``xiezhu`` command line (``xiezhu.cli:main``); one module per command group, shared parts in ``common``."""
from xiezhu.cli.main import app, main

__all__ = ["app", "main"]
