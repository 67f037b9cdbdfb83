"""One error tree for xiezhu: every error carries a stable code and the values that explain it.

An error speaks two languages: ``message`` (English: ``str(e)``, the logs, the HTTP ``message``)
and ``zh`` (中文: what the command line prints by default, the HTTP ``message_zh``).  The layer that
raises it knows what went wrong and says it in both; the layer that prints it chooses (decision 64).
"""
from __future__ import annotations

from typing import Any, Literal

Lang = Literal["zh", "en"]


class XiezhuError(Exception):
    """Root of every error xiezhu raises on purpose."""
    code: str = "xiezhu.error"
    def __init__(self, message: str, /, *, zh: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        #: The same in 中文, for a person (None: the error has no 中文 yet and shows its English).
        self.zh = zh
        self.details = details
    def __str__(self) -> str:
        return self.message
    def text(self, language: Lang | str) -> str:
        """What a person reads in ``language``: the 中文 for ``zh`` (the English where there is none)."""
        return self.zh if language == "zh" and self.zh else self.message


def zh_of(e: BaseException) -> str:
    """``e``'s 中文 text, to quote inside another error's 中文 (its message where it has none)."""
    return e.zh or e.message if isinstance(e, XiezhuError) else str(e)
