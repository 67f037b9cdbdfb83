"""One error tree for xiezhu: every error carries a stable code and the values that explain it."""
from __future__ import annotations

from typing import Any


class XiezhuError(Exception):
    """Root of every error xiezhu raises on purpose."""
    code: str = "xiezhu.error"
    def __init__(self, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
    def __str__(self) -> str:
        return self.message
