"""``python -m guardreasoner``: the command line."""

from guardreasoner.cli import main

main()
