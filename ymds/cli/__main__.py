"""``python -m ymds.cli``: the ``ymds`` command without the console script."""

from ymds.cli import main

main()
