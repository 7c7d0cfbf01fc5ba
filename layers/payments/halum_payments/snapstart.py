"""Lambda SnapStart: every environment restored from one snapshot starts from the same memory.

What was created during init is shared by all of them, so nothing created then may need to be
unique per environment. Init's only network use is reading the secrets from Secrets Manager (a
client not used again); the DynamoDB and Stripe clients are made on first use, after the restore.
The one random state made at init is `random`'s seed, renewed by the hook below so that retry
jitter differs between environments. Ids come from DynamoDB counters, idempotency keys and
request ids from the request, uuid4 and `secrets` from the OS. Secrets read at init are in the
snapshot too: the hook marks them stale, so each restored environment reads them again at their
first use (halum_payments/secrets.py), and a rotation needs no new version.
"""

from __future__ import annotations

import random


def after_restore() -> None:
    random.seed()  # from os.urandom: each restored environment its own sequence
    from .secrets import mark_all_stale

    mark_all_stale()  # no network here: read again at first use, within a request's own deadline


def register() -> bool:
    """Register the restore hook with Lambda's runtime; False where there is none (tests, local)."""
    try:
        from snapshot_restore_py import register_after_restore  # provided by Lambda's Python runtime
    except ImportError:
        return False
    register_after_restore(after_restore)
    return True
