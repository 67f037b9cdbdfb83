"""The one way tests run the command line: as a person does (a process), or in this process (faster).

``xiezhu(...)`` runs ``python -m xiezhu`` with a clean environment (no ``XIEZHU_*`` of the
caller's), a wide terminal and the data directory given; ``cli(app, ...)`` invokes a Typer app
here and returns the result with ``exit_code``, ``stdout`` and ``stderr``.
"""
from __future__ import annotations

import os
import subprocess
import sys
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


def _command_of(app: typer.Typer) -> Any:
    built = _BUILT.get(id(app))
    if built is None or built[0] is not app:
        built = _BUILT[id(app)] = (app, typer.main.get_command(app))
    return built[1]


typer.testing._get_command = _command_of  # type: ignore[attr-defined,assignment]  # what CliRunner.invoke builds with


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
