"""The ``xiezhu`` console entry point: it builds only what the run needs (see ``xiezhu.cli.root``)."""
from __future__ import annotations

import sys

from xiezhu.cli.common import one_line_errors
from xiezhu.cli.root import SERVICE_COMMANDS, command_of, root_app


def main() -> None:
    """Console entry point: a mistake becomes one clear line and a non-zero exit, never a traceback."""
    if command_of(sys.argv[1:]) in SERVICE_COMMANDS:
        from xiezhu.cli.services import app as services_app

        app = root_app()
        app.add_typer(services_app)
    else:
        from xiezhu.cli.main import app
    one_line_errors(app)
