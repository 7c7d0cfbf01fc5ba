"""SnapStart: environments restored from one snapshot must not share their random sequence."""

from __future__ import annotations

import random
import sys
import types

import pytest

from halum_payments import snapstart


def test_after_a_restore_each_environment_draws_its_own_random_numbers() -> None:
    draws = []
    for _ in range(2):  # two environments restored from the same snapshot (the same seeded state)
        random.seed(1234)
        snapstart.after_restore()
        draws.append([random.random() for _ in range(4)])
    assert draws[0] != draws[1]


def test_the_hook_is_registered_with_lambdas_runtime_when_it_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    registered = []
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_after_restore = registered.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    assert snapstart.register() is True
    assert registered == [snapstart.after_restore]


def test_without_lambdas_runtime_registering_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # makes the import fail
    assert snapstart.register() is False
