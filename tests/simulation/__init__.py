"""Deterministic simulation testing of the payment lifecycle (issue 12): the real handlers and
layer on moto, in-process, under a seeded scheduler, virtual clock and fault model.

`python -m simulation` (cli.py), `make simulate`. docs/reliability.md describes the fault model,
the invariants and the oracle; docs/history.md what each seed and scenario found.

`simulation.current_function` (a ContextVar) holds the template logical id of the handler running
in the current thread, for recorders that attribute AWS calls to functions.
"""

from typing import Any

__all__ = ["current_function"]


def __getattr__(name: str) -> Any:  # the layer is importable only once sys.path is set up
    if name == "current_function":
        from .functions import current_function

        return current_function
    raise AttributeError(name)
