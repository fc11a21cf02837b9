"""`python -m gossipha` is the `gossipha` command."""

from gossipha.cli import main

main()
