"""Every read command takes ``--json`` (issue 16, point 5).

The command tree is walked: a command without ``--json`` must be named below with the reason it
prints nothing a machine would read (it changes something, runs a service, or writes a file).
A new read command without ``--json`` fails here, and so does a name below that is gone.
"""
from __future__ import annotations

import typer.main

from xiezhu.cli import app
from xiezhu.cli.helptext import command_id, walk

#: Commands that are not reads: what each does instead of printing rows.
NOT_READS: dict[str, tuple[str, ...]] = {
    "changes a record (one line on stderr says what was done)": (
        "alerts add", "alerts remove", "answer", "decline", "forward", "withdraw", "calendar load",
        "catalogue apply", "catalogue memorandum", "catalogue publish", "catalogue review",
        "credit approve-repair", "credit object", "credit push", "credit reject-repair", "credit repair",
        "credit review", "dispute amend", "dispute decide", "dispute escalate", "dispute negotiate",
        "dispute raise", "dispute refer", "dispute rule", "dispute settle", "dispute take-in",
        "government criticise", "government publish", "keys init", "keys publish", "keys revoke", "keys rotate",
        "keys rotate-root", "records load", "tokens create", "tokens revoke", "users create", "users disable",
        "projections rebuild", "provision"),
    "runs a service until stopped": ("agent", "checkpoint-signer", "ledger", "nats-server", "run", "serve"),
    "writes a file (or prints one: SQL, a configuration, the AsyncAPI document, a sheet)": (
        "catalogue export", "database roles", "docs asyncapi", "keys export", "nats-config"),
}


def leaf_commands() -> dict[str, list[str]]:
    """Every command that runs (not a bare group), with its long options."""
    out = {}
    for path, command in walk(typer.main.get_command(app)):
        if not path or (getattr(command, "commands", None) and not getattr(command, "invoke_without_command", False)):
            continue
        out[command_id(path)] = [o for p in command.params for o in getattr(p, "opts", []) if o.startswith("--")]
    return out


def test_every_read_command_takes_json() -> None:
    commands = leaf_commands()
    not_reads = {name for names in NOT_READS.values() for name in names}
    assert sorted(not_reads - commands.keys()) == []  # the list names only commands that exist
    assert sorted(c for c, opts in commands.items() if "--json" not in opts and c not in not_reads) == []
    assert sorted(c for c in not_reads if "--json" in commands[c]) == []  # a command with --json is a read
    for read in ("letter", "case show", "sla", "sla stats", "report", "catalogue show", "dispute show",
                 "dead-letters", "inbox", "calendar due"):
        assert "--json" in commands[read], read
    assert len(commands) - len(not_reads) > 50  # the reads are most of the tree, not a handful
