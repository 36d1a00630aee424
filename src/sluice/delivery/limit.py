"""How many attempts a dispatcher keeps in flight.

The limit follows the receivers, as TCP Vegas does: from the fastest answer seen and
the latest one it estimates how many of our requests are waiting in a queue rather
than being worked on (`limit × (1 − fastest/latest)`). Few queued: one more in flight;
many queued: one fewer. A receiver that is slow by nature (every answer takes 200 ms)
queues nothing and gets the full cap; a fast one gets just enough to keep it busy.
That spares an overwhelmed receiver, and it bounds what a crash can repeat: only the
attempts in flight when a dispatcher dies are sent again.
"""

from __future__ import annotations

QUEUED_LOW, QUEUED_HIGH = 0.3, 0.5
"""The share of what is in flight we accept to have waiting at the receivers (at least
4 and 8 requests): grow below the first, shrink above the second. A share, not a
number, so that ordinary jitter at hundreds in flight does not read as queueing."""


class AdaptiveLimit:
    def __init__(self, cap: int, *, start: int = 16, floor: int = 4):
        self.cap, self.floor = cap, min(floor, cap)
        self.value = float(min(start, cap))
        self.fastest: float | None = None

    @property
    def allowed(self) -> int:
        return int(self.value)

    def observe(self, seconds: float) -> None:
        """One attempt's time from sending to its answer (or failure)."""
        seconds = max(seconds, 1e-4)
        if self.fastest is None or seconds < self.fastest:
            self.fastest = seconds
        else:
            self.fastest += (seconds - self.fastest) * 0.001  # forget an old best slowly
        queued = self.value * (1 - self.fastest / seconds)
        if queued < max(4, QUEUED_LOW * self.value):
            self.value = min(self.cap, self.value + 1)
        elif queued > max(8, QUEUED_HIGH * self.value):
            self.value = max(self.floor, self.value - 1)
