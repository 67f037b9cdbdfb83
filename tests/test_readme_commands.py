"""Every command of README.md's command table exists in the CLI, with the flags it shows."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import command_of
from xiezhu.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
FLAG = re.compile(r"(?<![\w-])(--?[a-z][a-z0-9-]*)")


def table_rows() -> list[str]:
    """The first cells of the command table (``| command | what it does |``), in order."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| command | what it does |")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line.split(" | ")[0].removeprefix("| "))
    return rows


def segments(cell: str) -> list[str]:
    """The backticked usages of one cell (``xiezhu calendar load FILE`` / ``calendar due …``)."""
    return re.findall(r"`([^`]+)`", cell)


Command = Any  # typer vendors its click: its commands and groups, duck-typed here


def is_group(command: Command) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def _subcommand(group: Command, word: str) -> Command | None:
    if not is_group(group):
        return None
    found: Command | None = group.commands.get(word.strip("[]…"))
    return found


def resolve(usage: str, root: Command, previous: Command | None
            ) -> tuple[Command, list[Command], list[str]]:
    """The group, the commands the usage names (alternatives ``a\\|b``) and the flags it shows."""
    tokens = usage.split()
    if tokens[0] == "xiezhu":
        tokens = tokens[1:]
    group: Command = root
    if previous is not None and tokens[0].split("\\|")[0] not in root.commands:
        group = previous  # "… / apply FILE …": a sibling of the usage before it
    while tokens and tokens[0].startswith("--"):  # global options before the command: --nats-url URL
        tokens = tokens[2:]
    chosen: list[Command] = [group]
    rest = tokens
    while rest:
        words = rest[0].split("\\|")
        found = [_subcommand(group, w) for w in words]
        if not all(found):
            break
        commands = [c for c in found if c is not None]
        rest = rest[1:]
        if len(commands) == 1 and is_group(commands[0]):
            group, chosen = commands[0], [commands[0]]
            continue
        chosen = commands
        break
    for token in rest:  # "… [--box-key B]\|revoke KID …\|publish": more alternatives further on
        for word in token.split("\\|")[1:]:
            extra = _subcommand(group, word)
            if extra is not None and extra not in chosen and chosen != [group]:
                chosen.append(extra)
    flags = FLAG.findall(" ".join(rest))
    return group, chosen, flags


def options(command: Command) -> set[str]:
    names: set[str] = set()
    for p in command.params:
        if getattr(p, "param_type_name", "") == "option":
            names |= set(p.opts) | set(p.secondary_opts)
    if is_group(command) and "show" in command.commands and "parse_args" in vars(type(command)):
        names |= options(command.commands["show"])  # `credit APPLICANT` is `credit show APPLICANT`
    return names


USAGES = [(cell, usage) for cell in table_rows() for usage in segments(cell)]


def test_the_table_is_there() -> None:
    assert len(USAGES) > 30


@pytest.mark.parametrize("cell", table_rows())
def test_each_command_of_the_table_exists_with_its_flags(cell: str) -> None:
    root = command_of(app)
    assert is_group(root)
    previous: Command | None = None
    for usage in segments(cell):
        group, commands, flags = resolve(usage, root, previous)
        assert commands, usage
        named = usage.split()[1] if usage.startswith("xiezhu ") else usage.split()[0]
        if not named.startswith("--"):
            assert commands != [root], f"{usage!r}: no such command"
        accepted = set().union(*(options(c) for c in commands)) | options(root)
        missing = [f for f in flags if f not in accepted]
        assert not missing, f"{usage!r}: {', '.join(missing)} not accepted by {[c.name for c in commands]}"
        previous = group
