"""The bureau registry: every unit of 附件1 with a stable code and its Chinese name."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from schemas.errors import XiezhuError

Kind = Literal["department", "town", "street", "city"]
_CODE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")

#: The bureau that keeps the ledger and owns the catalogues.
JUSTICE = "sifa"
#: The root of the trust list (区大数据局 runs the shared exchange platform).
ROOT_AUTHORITY = "dashuju"


class RegistryError(XiezhuError):
    """The registry file is invalid, or a code is unknown."""

    code = "registry"


class Bureau(msgspec.Struct, frozen=True, kw_only=True):
    """One 行政机关 that may request or give assistance."""

    code: str
    name: str
    kind: Kind


class _File(msgspec.Struct, kw_only=True):
    bureau: list[Bureau]


class Registry:
    """Bureaus by code, in the order of the data file."""

    def __init__(self, bureaus: list[Bureau]) -> None:
        self._by_code: dict[str, Bureau] = {}
        for b in bureaus:
            if not _CODE.match(b.code):
                raise RegistryError(f"bureau code {b.code!r} must be lower-case letters, digits and '-'")
            if b.code in self._by_code:
                raise RegistryError(f"bureau code {b.code!r} appears twice")
            self._by_code[b.code] = b

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        """Read the registry TOML (default: the one shipped with xiezhu)."""
        try:
            shipped = resources.files("aggregates").joinpath("data/bureaus.toml")
            raw = path.read_bytes() if path else shipped.read_bytes()
            return cls(msgspec.convert(tomllib.loads(raw.decode("utf-8")), _File).bureau)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, msgspec.ValidationError) as e:
            raise RegistryError(f"cannot read bureau registry {path or 'aggregates/data/bureaus.toml'}: {e}") from e

    def __getitem__(self, code: str) -> Bureau:
        try:
            return self._by_code[code]
        except KeyError:
            raise RegistryError(f"unknown bureau code {code!r}", code=code) from None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Bureau]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def codes(self) -> list[str]:
        """Every code, in file order."""
        return list(self._by_code)

    def name(self, code: str) -> str:
        """The Chinese name of ``code``."""
        return self[code].name
