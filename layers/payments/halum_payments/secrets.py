"""Secret values, and keeping them current after a rotation without a deploy.

In AWS the template passes `<NAME>_SECRET_ID` (a Secrets Manager name) and the value is read at cold
start (an unreadable secret fails the cold start). With SnapStart that read happens once, when the
version is published, and the value lives on in every environment restored from the snapshot; without
it an environment lives for hours. So a value read from Secrets Manager is read again:

- at its first use after it is `max_age` seconds old (SECRETS_MAX_AGE_SECONDS, 300 by default), which
  bounds how long a revoked value keeps working, SnapStart or not (the age is wall-clock time: a
  snapshot restored a day later is a day old);
- at its first use after a SnapStart restore (snapstart.py), whatever its age;
- when a caller's check failed with it (a webhook signature, a token, Stripe refusing the key), at
  most once every REFUSAL_REREAD_SECONDS per environment (a stream of forged signatures cannot turn
  into a stream of Secrets Manager calls); the caller checks again only if the value changed.

A read that fails later keeps the last value (logged, never the value) and is tried again after
RETRY_SECONDS. Values from the environment (local runs, sam local, tests) never change.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from .errors import ConfigError

DEFAULT_MAX_AGE_SECONDS = 300
REFUSAL_REREAD_SECONDS = 30
RETRY_SECONDS = 30
T = TypeVar("T")
Reader = Callable[[str], str]  # a secret's current value by its Secrets Manager name (repositories/secrets_manager.py)

clock: Callable[[], float] = time.time  # wall clock: right after a SnapStart restore too


class Secret:
    """A secret's value, as configured: the same for the life of the process."""

    def __init__(self, value: str) -> None:
        self._value = value

    def value(self) -> str:
        return self._value

    def reread_after_refusal(self) -> bool:
        """Read the value again because a check failed with it; True if it changed."""
        return False


class RotatingSecret(Secret):
    """A value read from Secrets Manager, read again as the module docstring says."""

    def __init__(self, setting: str, reference: str, value: str, *, max_age: float, read: Reader) -> None:
        super().__init__(value)
        self.setting = setting
        self.reference = reference
        self.max_age = max_age
        self._reader = read
        self._read_at = clock()
        self._next_try = 0.0  # after a failed read: not before
        self._last_refusal_read = float("-inf")
        self._stale = False
        _ROTATING.add(self)

    def value(self) -> str:
        now = clock()
        if (self._stale or now - self._read_at >= self.max_age) and now >= self._next_try:
            self._read(now)
        return self._value

    def reread_after_refusal(self) -> bool:
        now = clock()
        if now - self._last_refusal_read < REFUSAL_REREAD_SECONDS:
            return False
        self._last_refusal_read = now
        return self._read(now)

    def mark_stale(self) -> None:
        self._stale = True

    def _read(self, now: float) -> bool:
        try:
            fresh = self._reader(self.reference)
        except Exception as exc:  # noqa: BLE001 - keep serving with the last value; say so
            from .observability import logger

            self._next_try = now + RETRY_SECONDS
            logger.warning(
                "could not read a secret again; keeping the last value",
                extra={"setting": self.setting.upper(), "secret": self.reference, "error": type(exc).__name__},
            )
            return False
        changed = fresh != self._value
        self._value, self._read_at, self._stale = fresh, now, False
        return changed


_ROTATING: weakref.WeakSet[RotatingSecret] = weakref.WeakSet()


def mark_all_stale() -> None:
    """After a SnapStart restore: every value read before the snapshot is read again at its next use."""
    for secret in list(_ROTATING):
        secret.mark_stale()


def checked_with(
    secret: Secret, check: Callable[[str], T], refused: type[BaseException] | tuple[type[BaseException], ...]
) -> T:
    """`check(value)`; if it is refused, and the secret read again has changed, `check` once more
    with the new value (the sender may already use a rotated secret)."""
    try:
        return check(secret.value())
    except refused:
        if not secret.reread_after_refusal():
            raise
    return check(secret.value())


def split_values(text: str) -> list[str]:
    """Several values in one secret (comma-separated, as during a rotation): each, stripped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def fetch_secrets(references: dict[str, str], read: Reader) -> dict[str, str]:
    """Map setting name -> secret value; a reference is a Secrets Manager secret name (the template
    accepts names only: its IAM grants are for `<name>-??????`).

    Fails the cold start with a clear message (never the value) when a secret cannot be read.
    """
    values: dict[str, str] = {}
    for name, reference in references.items():
        try:
            values[name] = read(reference)
        except ConfigError as exc:
            raise ConfigError(f"Secret for {name.upper()} at {reference} {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any failure here is a deployment error
            raise ConfigError(f"Cannot read secret for {name.upper()} from {reference}: {type(exc).__name__}") from None
    return values


def rotating(
    references: dict[str, str], values: dict[str, str], max_age: float, read: Reader
) -> dict[str, RotatingSecret]:
    return {
        name: RotatingSecret(name, references[name], values[name], max_age=max_age, read=read) for name in references
    }
