"""Several processes starting at once on a fresh PostgreSQL database migrate it once,
and all of them come up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from conftest import POSTGRES_URL

SLUICE = str(Path(sys.executable).parent / "sluice")


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(postgres_url):
    name = "sluice_fresh_" + postgres_url.rsplit("_", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "SLUICE_DATABASE_URL": POSTGRES_URL.rsplit("/", 1)[0] + "/" + name}
    try:
        starting = [
            subprocess.Popen([SLUICE, "db", "upgrade"], env=env, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        outcomes = [(p.wait(timeout=60), p.stderr.read()) for p in starting]
        assert outcomes == [(0, "")] * 4
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
