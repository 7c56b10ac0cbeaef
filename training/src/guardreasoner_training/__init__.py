"""guardreasoner-training: train GuardReasoner guards on your own data.

The stages (each a ``guardreasoner-train`` subcommand, each reading and writing plain files):
``synthesize`` → ``prepare`` → ``rsft`` → ``sample`` → ``mine`` → ``hsdpo``.
"""

__version__ = "0.1.0"
