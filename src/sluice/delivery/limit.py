"""How many attempts a dispatcher keeps in flight.

The limit follows the receivers, as TCP Vegas does: from the fastest answer seen and
the latest one it estimates how many of the requests in flight were waiting in a
queue rather than being worked on (`in_flight × (1 − fastest/latest)`). Few queued:
one more in flight; many queued: one fewer. A receiver that is slow by nature (every
answer takes 200 ms) queues nothing and gets the full cap; a fast one gets just enough
to keep it busy. That spares an overwhelmed receiver, and it bounds what a crash can
repeat: only the attempts in flight when a dispatcher dies are sent again.

The limit grows only while it is used: a dispatcher that has little to send keeps its
limit, so a sudden backlog is not all sent at once.
"""

from __future__ import annotations

QUEUED_LOW, QUEUED_HIGH = 0.5, 0.75
"""The share of what is in flight we accept to have waiting at the receivers (or two
requests): grow below the first, shrink above the second. In answer times,
grow while the latest answer takes less than twice the fastest, shrink when it takes
over four times as long. A busy machine makes answer times jitter by two or three
times without any receiver queueing; tighter bounds would read that as queueing and
starve the dispatcher."""


FLOOR = 16
"""Never fewer in flight. At this level answer times say more about how busy our own
machine is than about the receiver (they jitter two- to fourfold on a loaded
machine), and a dispatcher held lower lets bursts wait: at 500 webhooks a second a
floor of 4 made the p99 latency 0.7 s instead of 0.14 s (docs/benchmarks.md). A
receiver that cannot take this many at once answers with errors, which are retried
with backoff."""


class AdaptiveLimit:
    def __init__(self, cap: int, *, floor: int = FLOOR):
        self.cap, self.floor = cap, min(floor, cap)
        self.value = float(self.floor)
        self.fastest: float | None = None

    @property
    def allowed(self) -> int:
        return int(self.value)

    def observe(self, seconds: float, in_flight: int) -> None:
        """One attempt's time from sending to its answer (or failure), and how many
        attempts were in flight when it was sent (itself included)."""
        seconds = max(seconds, 1e-4)
        if self.fastest is None or seconds < self.fastest:
            self.fastest = seconds
        elif in_flight <= self.floor:
            # An answer with next to nothing of ours queued ahead of it shows the
            # receiver's own speed, which may have changed: forget an old best slowly.
            # Answers under load cannot tell that apart from our own queueing.
            self.fastest += (seconds - self.fastest) * 0.01
        queued = in_flight * (1 - self.fastest / seconds)
        if queued > max(2, QUEUED_HIGH * in_flight):
            self.value = max(self.floor, self.value - 1)
        elif queued < max(2, QUEUED_LOW * in_flight) and in_flight * 2 >= self.value:
            self.value = min(self.cap, self.value + 1)
