"""How many attempts a dispatcher keeps in flight.

The limit grows while answers come back about as fast as the fastest one seen, and
shrinks when they slow down: a receiver that is slow by nature (every answer takes
200 ms) lets it grow to the cap, while one that is queueing our requests gets fewer
at once. That spares an overwhelmed receiver, and it bounds what a crash can repeat:
only attempts in flight when a dispatcher dies are sent again.
"""

from __future__ import annotations


class AdaptiveLimit:
    def __init__(self, cap: int, *, start: int = 32, floor: int = 32):
        self.cap, self.floor = cap, min(floor, cap)
        self.value = float(min(start, cap))
        self.fastest: float | None = None

    @property
    def allowed(self) -> int:
        return int(self.value)

    def observe(self, seconds: float) -> None:
        """One attempt's time from sending to its answer (or failure)."""
        if self.fastest is None or seconds < self.fastest:
            self.fastest = seconds
        else:
            self.fastest += (seconds - self.fastest) * 0.001  # forget an old best slowly
        # Ordinary jitter (a busy machine, a slower path) is tolerated; queueing is not.
        if seconds <= 4 * self.fastest + 0.02:
            self.value = min(self.cap, self.value + 1)
        else:
            self.value = max(self.floor, self.value * 0.9)
