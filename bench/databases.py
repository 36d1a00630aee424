"""Scratch databases for the benchmarks: an SQLite file in a temporary directory, and a
PostgreSQL database created for one run and dropped after it."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg

BASE = os.environ.get("SLUICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
T = TypeVar("T")


@contextmanager
def scratch_sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/bench.db"


@contextmanager
def scratch_postgres() -> Iterator[str]:
    name = f"sluice_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(BASE, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield BASE.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(BASE, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


SCRATCH = {"SQLite": scratch_sqlite, "PostgreSQL": scratch_postgres}


def on_each(run: Callable[[str], T], databases=SCRATCH) -> dict[str, T]:
    """`run(url)` on a scratch database of each kind, by the kind's name."""
    results = {}
    for name, scratch in databases.items():
        with scratch() as url:
            results[name] = run(url)
    return results
