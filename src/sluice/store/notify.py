"""Wake-ups across processes.

On PostgreSQL, `NOTIFY` inside a transaction is delivered when it commits, so a
listener never hears of work it cannot yet see. A notification only shortens the
wait, it is never the guarantee: a sleeping worker also wakes at the next due time,
and after its longest sleep. SQLite has no notifications: a worker watches the file's
`data_version` instead (worker/listener.py), and live streams poll.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

WORK_CHANNEL = "sluice_work"
"""Sessions or deliveries became due now."""
TIMELINE_CHANNEL = "sluice_timeline"
"""Timeline entries or events were written (live streams)."""


def notify(conn: Connection, *channels: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    for channel in channels:
        conn.exec_driver_sql(f"NOTIFY {channel}")
