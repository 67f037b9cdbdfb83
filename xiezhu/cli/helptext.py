"""Every command's help in the interface language: English in the code, 中文 from :mod:`xiezhu.cli.help_zh`.

The code keeps one text per command (its docstring) and per option (``help=``), in English.
The 中文 texts are a catalogue keyed by stable ids (:func:`command_id`, :func:`param_id`):
``"sla stats"`` for a command, ``"sla stats --csv"`` for an option, ``"letter NUMBER"`` for an
argument, ``"xiezhu"`` for the root.  Typer turns the code into a Click command tree when the
app runs; the root group (:class:`LocalGroup`) then rewrites that tree's texts once, before
anything is parsed, in the language of ``--lang`` in the arguments or ``XIEZHU_LANG`` (中文
by default).  A command's examples are not translated: they are taken from its English text.
The words of Typer's own help screen (Options, [default: …], …) follow the same language, and
its texts fold where a line is full: 中文 has no spaces to wrap at, and Typer's option table
would otherwise cut such a line with "…".
``tests/test_help_language.py`` checks that the catalogue covers every command and option.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from typer._click.exceptions import ClickException
from typer.core import TyperGroup
from typer.exceptions import Abort

from schemas.errors import XiezhuError
from xiezhu.cli.help_zh import HELP_OPTION, TYPER_WORDS, ZH
from xiezhu.cli.tables import ENV_LANG, Lang, lang

#: Typer's help-screen words as it ships them (English), to put back for ``--lang en``.
_TYPER_EN: dict[str, str] = {}
_EXAMPLE = re.compile(r"Examples?:\s*")

Command = Any  # typer vendors its click: commands and groups, duck-typed here


def typer_words(language: Lang) -> None:
    """Typer's own help-screen words in ``language``, its texts folded rather than cut.

    Called only where a help screen or an error panel is about to be drawn: ``typer.rich_utils``
    (rich's Markdown, pygments …) costs a command that prints neither a good part of its start-up.
    """
    from rich.text import Text
    from typer import rich_utils

    if not _TYPER_EN:
        _TYPER_EN.update({name: getattr(rich_utils, name) for name in TYPER_WORDS})
        make = rich_utils._make_rich_text

        def folding(*, text: str, style: str = "", markup_mode: Any) -> Any:
            made = make(text=text, style=style, markup_mode=markup_mode)
            if isinstance(made, Text):
                made.overflow = "fold"
            return made

        rich_utils._make_rich_text = folding
    for name, english in _TYPER_EN.items():
        setattr(rich_utils, name, english if language == "en" else TYPER_WORDS[name])


def command_id(path: Sequence[str]) -> str:
    """``"sla stats"``; the root is ``"xiezhu"``."""
    return " ".join(path) or "xiezhu"


def param_id(path: Sequence[str], param: Any) -> str:
    """``"sla stats --csv"`` for an option (its first long name), ``"letter NUMBER"`` for an argument."""
    if param.param_type_name == "argument":
        name = param.name.upper()
    else:
        name = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    return f"{command_id(path)} {name}"


def walk(command: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command of the tree with its path, the root first, subcommands in name order."""
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from walk(sub, (*path, name))


def examples(text: str) -> str:
    """The example paragraphs of an English help text, headed 示例."""
    found = []
    for paragraph in text.split("\n\n"):
        at = _EXAMPLE.search(paragraph)
        if at is not None:
            found.append("示例：" + paragraph[at.end():].strip())
    return "\n\n".join(found)


def language_of(args: Sequence[str]) -> Lang:
    """The language of this run: ``--lang`` among the arguments, else ``XIEZHU_LANG``, else 中文.

    A value that is no language leaves the help in 中文; the root callback then says what is wrong.
    """
    given = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(args):
            given = args[i + 1]
        elif arg.startswith("--lang="):
            given = arg.partition("=")[2]
    try:
        return lang(given)
    except XiezhuError:
        try:
            return lang(os.environ.get(ENV_LANG))
        except XiezhuError:
            return "zh"


def localize(root: Command, language: Lang) -> None:
    """Set the help of ``root``'s tree in ``language`` (the code's English for ``en``).

    The tree may be run again (a test runs one tree many times): the English texts are kept
    beside the 中文 on the first call, so that each call sets one language or the other.
    """
    from typer import _click

    for path, command in walk(root):
        texts = getattr(command, "_xiezhu_texts", None)
        if texts is None:
            help_option = command.get_help_option(_click.Context(command))
            params = [p for p in command.params if getattr(p, "help", None) is not None]
            if help_option is not None:
                params.append(help_option)
            en = [(command, "help", command.help), (command, "short_help", command.short_help)]
            en += [(p, "help", p.help) for p in params]
            zh = ZH.get(command_id(path))
            shown = examples(command.help or "")
            zh_texts = [(command, "help", zh + (f"\n\n{shown}" if shown else "")), (command, "short_help", None)] \
                if zh is not None else []
            zh_texts += [(p, "help", ZH[param_id(path, p)]) for p in params
                         if p is not help_option and param_id(path, p) in ZH]
            if help_option is not None:
                zh_texts.append((help_option, "help", HELP_OPTION))
            texts = command._xiezhu_texts = {"en": en, "zh": zh_texts}
            command.format_help = _worded(command.format_help, root)
        for owner, attribute, text in texts[language]:
            setattr(owner, attribute, text)


def _worded(format_help: Any, root: Any) -> Any:
    def format_help_in(ctx: Any, formatter: Any) -> Any:
        typer_words(root.language)
        return format_help(ctx, formatter)

    return format_help_in


#: Click's usage-error sentences (exit 2) in 中文; the value's own complaint after them stays as Click says it.
_USAGE_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^No such option: (.+?)(?: \(Possible options: (.+)\))?$"), "没有选项 {0}（可用的选项：{1}）"),
    (re.compile(r"^Missing argument (.+)\.$"), "缺少参数 {0}。"),
    (re.compile(r"^Missing option (.+)\.$"), "缺少选项 {0}。"),
    (re.compile(r"^Missing parameter: (.+)$"), "缺少参数：{0}"),
    (re.compile(r"^Invalid value for (.+?): (.*)$", re.S), "{0} 的值无效：{1}"),
    (re.compile(r"^Invalid value: (.*)$", re.S), "值无效：{0}"),
    (re.compile(r"^Got unexpected extra argument\(s\) \((.*)\)$"), "多余的参数（{0}）"),
    (re.compile(r"^No such command (.+?)\.(?: Did you mean (.+)\?)?$"), "没有命令 {0}。是否想用 {1}？"),
    (re.compile(r"^Option (.+) requires an argument\.$"), "选项 {0} 需要一个值。"),
    (re.compile(r"^Option (.+) requires (\d+) arguments\.$"), "选项 {0} 需要 {1} 个值。"),
]


def usage_in_chinese(e: ClickException) -> None:
    """Have ``e`` (a usage error Typer is about to draw) say its sentence in 中文."""
    english = e.format_message()
    for pattern, zh in _USAGE_ZH:
        found = pattern.match(english)
        if found:
            parts = found.groups()
            text = zh.format(*(p or "" for p in parts))
            if len(parts) > 1 and not parts[1]:  # Click offered no candidates
                text = text.removesuffix("（可用的选项：）").removesuffix("是否想用 ？")
            setattr(e, "format_message", lambda said=text: said)  # noqa: B010 (an instance's own sentence)
            return


class LocalGroup(TyperGroup):
    """The root group: its tree's help in this run's language, set before the arguments are parsed."""

    language: Lang = "zh"

    def main(self, args: Sequence[str] | None = None, *rest: Any, **extra: Any) -> Any:
        self.language = language_of(list(sys.argv[1:] if args is None else args))
        localize(self, self.language)
        return super().main(args, *rest, **extra)

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except (ClickException, Abort) as e:  # Typer draws its error panel next
            typer_words(self.language)
            if isinstance(e, ClickException) and self.language == "zh":
                usage_in_chinese(e)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (ClickException, Abort) as e:
            typer_words(self.language)
            if isinstance(e, ClickException) and self.language == "zh":
                usage_in_chinese(e)
            raise
