"""``python -m bridge.cli``: the ``jobs`` command."""

from bridge.cli.main import main

main()
