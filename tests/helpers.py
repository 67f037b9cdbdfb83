"""The one way tests run the command line: as a person does (a process), or in this process (faster).

``xiezhu(...)`` runs ``python -m xiezhu`` with a clean environment (no ``XIEZHU_*`` of the
caller's), a wide terminal and the data directory given; ``xiezhu_here(...)`` runs the same
entry point with the same environment in this process and returns the same ``returncode``,
``stdout`` and ``stderr`` (a second less per command: no interpreter, no imports);
``cli(app, ...)`` invokes a Typer app here and returns the result with ``exit_code``,
``stdout`` and ``stderr``.
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer
import typer.main
import typer.testing
from typer.testing import CliRunner, Result

#: Each Typer app's Click tree, built once: Typer builds all of it (every command's signature
#: read again) on every run, most of an in-process run's time; Click commands are meant to be
#: run many times, and xiezhu's root sets the help language on every run (xiezhu.cli.helptext).
_BUILT: dict[int, tuple[typer.Typer, Any]] = {}


def command_of(app: typer.Typer) -> Any:
    """``app``'s Click tree, built on first use (for parsing or invoking; never change it)."""
    built = _BUILT.get(id(app))
    if built is None or built[0] is not app:
        built = _BUILT[id(app)] = (app, typer.main.get_command(app))
    return built[1]


typer.testing._get_command = command_of  # type: ignore[attr-defined,assignment]  # what CliRunner.invoke builds with


def clean_env(data_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without any ``XIEZHU_*``, with the data directory and a wide terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIEZHU_")}
    env["COLUMNS"] = "200"
    if data_dir is not None:
        env["XIEZHU_DATA_DIR"] = str(data_dir)
    return env | extra


def xiezhu(*args: str, data_dir: Path | None = None, check: bool = True, env: Mapping[str, str] | None = None,
           timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``xiezhu ARGS`` in a process of its own; with ``check``, a failure is the test's failure, with stderr."""
    proc = subprocess.run([sys.executable, "-m", "xiezhu", *args], capture_output=True, text=True,
                          env=dict(env) if env is not None else clean_env(data_dir), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"xiezhu {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def xiezhu_here(*args: str, data_dir: Path | None = None, check: bool = True, env: Mapping[str, str] | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``xiezhu ARGS`` as :func:`xiezhu` runs it, in this process: the console entry point itself
    (``xiezhu.cli.main``: a mistake is one ``error:`` line and exit 1), the same environment (no
    ``XIEZHU_*`` but the data directory, 200 columns), output not a terminal, the exit status as
    ``returncode`` and an uncaught exception as the traceback on stderr and 1, as Python's own.
    What only a process shows (start-up, signals, the exit status a shell sees) keeps :func:`xiezhu`.
    ``timeout`` is accepted for the same signature; the test's own timeout bounds the run."""
    from xiezhu.cli import app
    from xiezhu.cli.common import one_line_errors

    environ = dict(env) if env is not None else clean_env(data_dir)
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in environ}
    overrides.update(environ)
    command = command_of(app)

    def entry(**kwargs: Any) -> Any:  # what Typer's __call__ does, with the Click tree built once
        return command(prog_name="xiezhu", **kwargs)

    argv = sys.argv
    with CliRunner().isolation(env=overrides) as (stdout, stderr, _):
        sys.argv = ["xiezhu", *args]
        try:
            one_line_errors(entry)  # type: ignore[arg-type]
            code = 0
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:  # sys.exit("text"): Python prints it and exits 1
                print(e.code, file=sys.stderr)
                code = 1
        except Exception:  # what the interpreter does with it
            traceback.print_exc()
            code = 1
        finally:
            sys.argv = argv
            gc.collect()  # what the command left open (a view's SQLite connection) closes, as at a process's exit
        sys.stdout.flush()
        sys.stderr.flush()
        proc = subprocess.CompletedProcess(["xiezhu", *args], code, stdout.getvalue().decode("utf-8", "replace"),
                                           stderr.getvalue().decode("utf-8", "replace"))
    if check and proc.returncode != 0:
        raise AssertionError(f"xiezhu {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def invoke(app: typer.Typer, args: Sequence[str], *, env: Mapping[str, str] | None = None, obj: Any = None,
           catch_exceptions: bool = True) -> Result:
    """``app ARGS`` in this process (``exit_code``, ``stdout``, ``stderr``, ``output``)."""
    return CliRunner().invoke(app, list(args), env=dict(env or {}), obj=obj, catch_exceptions=catch_exceptions)


def cli(app: typer.Typer, *args: str, env: Mapping[str, str] | None = None, data_dir: Path | None = None,
        obj: Any = None, catch_exceptions: bool = True) -> Result:
    """:func:`invoke` with the arguments spread and, optionally, the data directory."""
    environ = dict(env or {})
    if data_dir is not None:
        environ["XIEZHU_DATA_DIR"] = str(data_dir)
    return invoke(app, args, env=environ, obj=obj, catch_exceptions=catch_exceptions)


def rechain(path: Path, after: int = 0) -> None:
    """Recompute every hash of a SQLite ledger after position ``after`` from the rows as they now are
    (what an insider does after changing one)."""
    import sqlite3
    from contextlib import closing

    from broker.ledger.store import GENESIS, leaf_hash, link

    with closing(sqlite3.connect(path)) as db, db:
        prev = db.execute("SELECT hash FROM entries WHERE pos = ?", (after,)).fetchone()
        head = bytes(prev[0]) if prev else GENESIS
        for pos, arrived, seq, kid, sig, body in db.execute(
                "SELECT pos, arrived_at, stream_seq, kid, sig, body FROM entries WHERE pos > ? ORDER BY pos",
                (after,)).fetchall():
            new = link(head, leaf_hash(pos, arrived, kid, sig, body, stream_seq=seq))
            db.execute("UPDATE entries SET prev_hash = ?, hash = ? WHERE pos = ?", (head, new, pos))
            head = new
