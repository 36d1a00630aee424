"""How many attempts a dispatcher keeps in flight.

The limit follows the receivers, as TCP Vegas does: from the fastest answer seen and
the latest one it estimates how many of the requests in flight were waiting in a
queue rather than being worked on (`in_flight × (1 − fastest/latest)`). Few queued:
one more in flight; many queued: one fewer. A receiver that is slow by nature (every
answer takes 200 ms) queues nothing and gets the full cap; a fast one gets just enough
to keep it busy. That spares an overwhelmed receiver, and it bounds what a crash can
repeat: only the attempts in flight when a dispatcher dies are sent again.

The limit changes only while it is used: a dispatcher that has little to send keeps
its limit, so a sudden backlog is not all sent at once, and jitter at a handful in
flight does not wear it down.
"""

from __future__ import annotations

QUEUED_LOW, QUEUED_HIGH = 0.33, 0.75
"""The share of what is in flight we accept to have waiting at the receivers (or two
requests): grow below the first, shrink above the second. In answer times: grow while
the latest answer takes less than 1.5 times the fastest, shrink when it takes over
four times as long. A busy machine makes answer times jitter two- to fourfold without
any receiver queueing. Shrinking at twice the fastest held dispatchers at about 11 in
flight, below the bursts, and made the p99 event-to-webhook latency 1.2–1.7 s instead
of about 0.1 s (docs/benchmarks.md). Growing up to twice the fastest let the limit run
up on a busy machine, and a killed worker repeated 16–32 webhooks instead of 1–14."""

FLOOR = 4
"""Where the limit starts, and how low it goes. Every place above it is one more
attempt a crash may repeat."""


MAX_DESTINATIONS = 1000
"""Fastest answers kept, one per destination; the least recently heard from is
forgotten first."""


class AdaptiveLimit:
    def __init__(self, cap: int, *, floor: int = FLOOR):
        self.cap, self.floor = cap, min(floor, cap)
        self.value = float(self.floor)
        self._fastest: dict[str, float] = {}

    @property
    def allowed(self) -> int:
        return int(self.value)

    def observe(
        self, seconds: float, in_flight: int, destination: str = "", there: int | None = None
    ) -> None:
        """One attempt's time from sending to its answer (or failure), how many
        attempts were in flight when it was sent (itself included), and of those how
        many went to the same destination (`there`, all of them by default).

        Answers are compared with the fastest from the same destination: an endpoint
        that always takes 200 ms is not queueing because another answers in 2 ms."""
        seconds = max(seconds, 1e-4)
        in_flight_there = in_flight if there is None else there
        fastest = self._fastest.pop(destination, None)
        if fastest is None or seconds < fastest:
            fastest = seconds
        elif in_flight_there <= 2 * self.floor:
            # An answer with next to nothing of ours queued ahead of it shows the
            # receiver's own speed, which may have changed: forget an old best slowly.
            # Answers under load cannot tell that apart from our own queueing. (At
            # twice the floor, so that a limit pushed down to the floor by a receiver
            # that became slower still sees such answers after its first step back up.)
            fastest += (seconds - fastest) * 0.01
        self._fastest[destination] = fastest  # now the most recently heard from
        if len(self._fastest) > MAX_DESTINATIONS:
            del self._fastest[next(iter(self._fastest))]
        if in_flight * 2 < self.value:
            return  # the limit was not in use: this answer says nothing about it
        queued = in_flight_there * (1 - fastest / seconds)
        if queued > max(2, QUEUED_HIGH * in_flight_there):
            self.value = max(self.floor, self.value - 1)
        elif queued < max(2, QUEUED_LOW * in_flight_there):
            self.value = min(self.cap, self.value + 1)
