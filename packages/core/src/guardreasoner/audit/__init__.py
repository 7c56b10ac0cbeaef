"""Bulk audit of logged conversations: a folder of verdicts for a file, folder or glob of records.

``guardreasoner.audit(input, output, ...)`` and ``guardreasoner audit INPUT --output OUTPUT``. In-process
by default (any engine, no cluster); ``runner="ray"`` runs a Ray Data actor pool (extra ``ray``).
Reading and writing need pyarrow and fsspec (extra ``audit``); nothing heavy is imported here.
"""

import sys
import types

from guardreasoner.audit.api import audit
from guardreasoner.audit.errors import AuditIncompleteError, AuditInputError
from guardreasoner.audit.rows import row_to_verdict
from guardreasoner.audit.store import OutputStore
from guardreasoner.audit.summary import AuditSummary

__all__ = [
    "AuditIncompleteError",
    "AuditInputError",
    "AuditSummary",
    "OutputStore",
    "audit",
    "row_to_verdict",
]


class _CallableModule(types.ModuleType):
    """Makes ``guardreasoner.audit(...)`` the function while ``guardreasoner.audit`` stays this package, so
    ``import guardreasoner.audit.api`` and friends keep working (a function of the same name would hide it)."""

    def __call__(self, *args, **kwargs):
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
