"""The bureau registry: every unit of 附件1 with a stable code and its Chinese name."""
from __future__ import annotations

import functools
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
    #: 简称 in document numbers: 审批 in 台审批许〔2026〕0001号 (empty: the name without 区 and 局).
    short: str = ""
    #: The unit this one belongs to (隶属), e.g. a 派出所 of 区公安分局; empty for a unit of its own.
    parent: str = ""


class _File(msgspec.Struct, kw_only=True):
    bureau: list[Bureau]


class Registry:
    """Bureaus by code, in the order of the data file."""

    def __init__(self, bureaus: list[Bureau]) -> None:
        self._by_code: dict[str, Bureau] = {}
        for b in bureaus:
            if not _CODE.match(b.code):
                raise RegistryError(f"bureau code {b.code!r} must be lower-case letters, digits and '-'",
                                    zh=f"单位代码 {b.code!r} 须由小写字母、数字和“-”组成")
            if b.code in self._by_code:
                raise RegistryError(f"bureau code {b.code!r} appears twice", zh=f"单位代码 {b.code!r} 出现了两次")
            self._by_code[b.code] = b
        for b in bureaus:
            if b.parent and b.parent not in self._by_code:
                raise RegistryError(f"bureau {b.code!r} belongs to {b.parent!r}, which is not registered",
                                    zh=f"单位 {b.code!r} 隶属于 {b.parent!r}，但后者未登记")
            if b.parent and b.code in self._chain(b.parent):
                raise RegistryError(f"bureau {b.code!r} belongs to itself through {b.parent!r}",
                                    zh=f"单位 {b.code!r} 经 {b.parent!r} 隶属于自身")

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        """Read the registry TOML (default: the one shipped with xiezhu)."""
        try:
            shipped = resources.files("aggregates").joinpath("data/bureaus.toml")
            raw = path.read_bytes() if path else shipped.read_bytes()
            return cls(msgspec.convert(tomllib.loads(raw.decode("utf-8")), _File).bureau)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, msgspec.ValidationError) as e:
            raise RegistryError(f"cannot read bureau registry {path or 'aggregates/data/bureaus.toml'}: {e}",
                                zh=f"无法读取单位登记表 {path or 'aggregates/data/bureaus.toml'}：{e}") from e

    def __getitem__(self, code: str) -> Bureau:
        try:
            return self._by_code[code]
        except KeyError:
            raise RegistryError(f"unknown bureau code {code!r}", zh=f"未知的单位代码 {code!r}", code=code) from None

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Bureau]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def _chain(self, code: str) -> list[str]:
        """``code`` and the units above it, nearest first (stops at a cycle)."""
        chain: list[str] = []
        while code and code not in chain:
            chain.append(code)
            code = self._by_code[code].parent if code in self._by_code else ""
        return chain

    def subordinate(self, a: str, b: str) -> bool:
        """附件2 第二条 有隶属关系: one of ``a`` and ``b`` belongs, directly or further up, to the other."""
        return a != b and (b in self._chain(a) or a in self._chain(b))

    def codes(self) -> list[str]:
        """Every code, in file order."""
        return list(self._by_code)

    def name(self, code: str) -> str:
        """The Chinese name of ``code``."""
        return self[code].name

    def short(self, code: str) -> str:
        """The 简称 of ``code`` in document numbers, e.g. 审批 for shenpi."""
        b = self[code]
        return b.short or b.name.removeprefix("区").removesuffix("局")

    def licence_number(self, code: str, year: int, serial: int) -> str:
        """A licence (行政许可决定) number as the bureau writes it: 台审批许〔2026〕0001号."""
        return f"台{self.short(code)}许〔{year}〕{serial:04d}号"

    def decision_number(self, code: str, year: int, serial: int, *, licence: bool) -> str:
        """An approval's number: a licence's (台审批许〔2026〕0001号), else a decision's (台民政决〔2026〕0001号)."""
        if licence:
            return self.licence_number(code, year, serial)
        return f"台{self.short(code)}决〔{year}〕{serial:04d}号"

    def resolve(self, text: str) -> str:
        """The code of a bureau given by code, Chinese name, 简称 or a unique part of its name.

        ``gongan``, ``区公安分局``, ``公安`` all give ``gongan``. Raises :class:`RegistryError`
        naming the candidates when the text fits none or more than one.
        """
        text = text.strip()
        if text in self._by_code:
            return text
        exact = [b.code for b in self if text in (b.name, b.short)]
        if len(exact) == 1:
            return exact[0]
        partial = [b for b in self if text and text in b.name]
        if len(partial) == 1:
            return partial[0].code
        if partial:
            raise RegistryError(f"{text!r} fits {len(partial)} bureaus: "
                                + "、".join(f"{b.name}（{b.code}）" for b in partial) + "; give more of the name",
                                zh=f"{text!r} 与 {len(partial)} 个单位相符："
                                + "、".join(f"{b.name}（{b.code}）" for b in partial) + "；请写出更多名称",
                                bureau=text)
        raise RegistryError(f"no bureau is called {text!r}; `xiezhu bureaus` lists them",
                            zh=f"没有名为 {text!r} 的单位；`xiezhu bureaus` 列出全部单位", bureau=text)


@functools.cache
def shipped() -> Registry:
    """The registry shipped with xiezhu, read once."""
    return Registry.load()


def zh_name(code: str) -> str:
    """The Chinese name of the bureau ``code`` for an error's 中文 (the code itself where none is registered)."""
    registry = shipped()
    return registry.name(code) if code in registry else code

