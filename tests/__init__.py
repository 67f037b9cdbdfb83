"""The test suite.

The suite starts ``python -m xiezhu`` and ``nats-server`` processes by the hundred (the demo, the
services of the chaos campaign and of the one-host script, the supervisor's children).  With
``PYTHONDONTWRITEBYTECODE`` set, as some machines set it, every one of them compiled the project's
sources again (about 0.35 s of a 0.7 s start-up): the suite writes and reads the usual
``__pycache__`` (ignored by git) for this process and, through the environment, for those it starts.
"""
import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
