"""Deterministic simulation testing of the payment lifecycle (issue 12): the real handlers and
layer on moto, in-process, under a seeded scheduler, virtual clock and fault model.

`python -m simulation` (see cli.py), `make simulate`. README.md in this folder describes the
fault model, the invariants and what each seed and scenario finds.
"""

from .functions import current_function

__all__ = ["current_function"]
