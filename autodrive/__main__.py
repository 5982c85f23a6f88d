"""Allow ``python -m autodrive``."""

from autodrive.cli import main

main()
