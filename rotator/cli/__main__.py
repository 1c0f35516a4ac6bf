"""``python -m rotator.cli``: the same as the ``rotator`` console script."""

from rotator.cli import main

main()
