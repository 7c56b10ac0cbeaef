"""``python -m guardreasoner_training``: the ``guardreasoner-train`` command line."""

from guardreasoner_training.cli import main

main()
