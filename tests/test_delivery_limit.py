"""The dispatcher's in-flight limit: up to the cap for a receiver that is slow by
nature, down for one that is queueing requests."""

from __future__ import annotations

from sluice.delivery.limit import AdaptiveLimit


def test_a_steadily_slow_receiver_gets_the_full_cap():
    limit = AdaptiveLimit(500)
    for _ in range(600):
        limit.observe(0.2)
    assert limit.allowed == 500


def test_a_receiver_that_queues_requests_gets_fewer_at_once():
    limit = AdaptiveLimit(500)
    for _ in range(600):
        limit.observe(0.002)
    assert limit.allowed == 500
    for n in range(200):  # answers slow down as its queue grows
        limit.observe(0.002 * (1 + n))
    assert limit.allowed == 32


def test_the_limit_never_exceeds_the_cap():
    limit = AdaptiveLimit(5)
    assert limit.allowed == 5
