"""The dispatcher's in-flight limit: up to the cap for a receiver that is slow by
nature, down for one that is queueing requests."""

from __future__ import annotations

from sluice.delivery.limit import FLOOR, AdaptiveLimit


def test_a_steadily_slow_receiver_gets_the_full_cap():
    limit = AdaptiveLimit(500)
    for _ in range(600):
        limit.observe(0.2, limit.allowed)
    assert limit.allowed == 500


def test_a_receiver_that_queues_requests_gets_few_at_once():
    """Its answers take 2 ms of work each, one at a time: latency grows with what is
    in flight, and the limit settles where little waits."""
    limit = AdaptiveLimit(500)
    for _ in range(2000):
        limit.observe(0.002 * max(1, limit.allowed), limit.allowed)
    assert limit.allowed <= 64  # of a cap of 500


def test_the_limit_never_exceeds_the_cap():
    limit = AdaptiveLimit(5)
    for _ in range(100):
        limit.observe(0.2, limit.allowed)
    assert limit.allowed == 5


def test_a_receiver_that_becomes_slow_for_good_gets_the_cap_back():
    """Its answers take 10 ms, then 200 ms whatever is in flight: at first that reads
    as queueing, and the limit drops to its floor; answers at the floor show the new
    speed, and the limit grows back."""
    limit = AdaptiveLimit(500)
    for _ in range(600):
        limit.observe(0.01, limit.allowed)
    assert limit.allowed == 500
    seen = []
    for _ in range(2000):
        limit.observe(0.2, limit.allowed)
        seen.append(limit.allowed)
    assert min(seen) == FLOOR
    assert limit.allowed == 500


def test_a_dispatcher_with_little_to_send_keeps_its_limit():
    """Few in flight says nothing about what more would do: the limit does not grow,
    so a sudden backlog is not sent all at once."""
    limit = AdaptiveLimit(500)
    for _ in range(1000):
        limit.observe(0.01, 1)
    assert limit.allowed == FLOOR


def test_a_slow_endpoint_beside_a_fast_one_is_not_read_as_queueing():
    """One endpoint answers in 2 ms, another always in 200 ms, half of what is in
    flight going to each: neither queues, and the limit reaches the cap. (Against the
    fast one's answers, the slow one's would read as a long queue.)"""
    limit = AdaptiveLimit(500)
    for n in range(2000):
        half = max(1, limit.allowed // 2)
        if n % 2:
            limit.observe(0.002, limit.allowed, "fast.example", half)
        else:
            limit.observe(0.2, limit.allowed, "slow.example", half)
    assert limit.allowed == 500
