"""Prometheus metrics.

Counts that live in the database (sessions by status, due backlog, claim lag,
deliveries) are read when scraped, so every process reports the same truth. What only
a worker process sees (batches and steps it ran, how long they took) is counted in the
process: `sluice serve` exposes its embedded worker's, and `sluice worker
--metrics-port` exposes its own.

Who may scrape `/metrics` of `sluice serve` (`refusal`): with SLUICE_METRICS_TOKEN set,
whoever sends it as a bearer token; without it, only clients on this machine (a
loopback address), so that a fresh installation does not show its numbers to the
internet.
"""

from __future__ import annotations

import hmac
import ipaddress
from datetime import datetime

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from sluice.records import RUNNABLE, FlowStatus
from sluice.store.db import Database
from sluice.store.schema import deliveries, flows, sessions

BATCH_SECONDS = Histogram(
    "sluice_worker_batch_seconds",
    "Time from claiming a batch of sessions to applying its results.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SESSIONS_ADVANCED = Counter(
    "sluice_worker_sessions_advanced", "Sessions advanced by this process's worker."
)
STEPS_RUN = Counter("sluice_worker_steps", "Steps begun by this process's worker.")
STALE_RESULTS = Counter(
    "sluice_worker_stale_results",
    "Results discarded because the session changed while they were computed.",
)


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, db: Database, now):
        self.db, self.now = db, now

    def collect(self):
        now: datetime = self.now()
        with self.db.read() as conn:
            by_status = conn.execute(
                sa.select(sessions.c.status, sa.func.count()).group_by(sessions.c.status)
            ).all()
            claimable = sa.and_(
                sessions.c.due_at <= now,
                sessions.c.status.in_([s.value for s in RUNNABLE]),
                sessions.c.flow_key.in_(
                    sa.select(flows.c.key).where(flows.c.status == FlowStatus.ON)
                ),
            )
            due, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(sessions.c.due_at)).where(claimable)
            ).one()
            by_delivery = conn.execute(
                sa.select(
                    deliveries.c.kind,
                    deliveries.c.state,
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(deliveries.c.attempts), 0),
                ).group_by(deliveries.c.kind, deliveries.c.state)
            ).all()
        status = GaugeMetricFamily("sluice_sessions", "Sessions by status.", labels=["status"])
        for name, count in by_status:
            status.add_metric([name], count)
        yield status
        yield GaugeMetricFamily(
            "sluice_sessions_due", "Sessions due now, waiting for a worker.", value=due
        )
        lag = (now - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "sluice_claim_lag_seconds", "How long the oldest due session has waited.", value=lag
        )
        count = GaugeMetricFamily(
            "sluice_deliveries", "Deliveries by kind and state.", labels=["kind", "state"]
        )
        attempts = GaugeMetricFamily(
            "sluice_delivery_attempts",
            "Delivery attempts made, by kind and the delivery's state.",
            labels=["kind", "state"],
        )
        for kind, state, n, tries in by_delivery:
            count.add_metric([kind, state], n)
            attempts.add_metric([kind, state], tries)
        yield count
        yield attempts


class _ThisProcess(Collector):
    """The process's own counters, for a registry that also reads the database."""

    def collect(self):
        yield from REGISTRY.collect()


def registry_for(db: Database, now) -> CollectorRegistry:
    """This process's counters and the database's gauges, as one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ThisProcess())
    registry.register(DatabaseCollector(db, now))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def refusal(request: Request, token: str | None) -> PlainTextResponse | None:
    """None when `request` may read the metrics; else the answer: 401 without the
    right bearer token when `token` is set, 403 for a remote client when it is not."""
    if token:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return None
        return PlainTextResponse(
            "metrics need the token of SLUICE_METRICS_TOKEN: Authorization: Bearer <token>\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if _is_loopback(request.client.host if request.client else ""):
        return None
    return PlainTextResponse(
        "metrics answer only to this machine; set SLUICE_METRICS_TOKEN to scrape them "
        "from elsewhere (see docs/deployment.md)\n",
        status_code=403,
    )


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # e.g. a Unix socket, or the test client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback
