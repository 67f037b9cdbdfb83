"""``python -m xiezhu``: the same as the ``xiezhu`` command."""
from xiezhu.cli import main

main()
