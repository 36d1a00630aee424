"""When a failed attempt is tried again: exponential backoff with jitter.

The first delay doubles after every attempt, and each delay is spread by ±20 % so
that deliveries that failed together (an endpoint that was down) do not come back
together."""

from __future__ import annotations

import random
from datetime import timedelta

JITTER = 0.2

EMAIL_FIRST_DELAY = timedelta(minutes=11)
"""Emails have no per-step retry setting: the same as a webhook's default, so the
eighth attempt comes about a day after the first (127 × 11 minutes)."""


def delay(first: timedelta, attempts: int, rng: random.Random) -> timedelta:
    """The wait before the next attempt, after `attempts` attempts (1 or more)."""
    return first * (2 ** (attempts - 1)) * rng.uniform(1 - JITTER, 1 + JITTER)
