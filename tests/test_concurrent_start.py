"""Several processes starting at once on a fresh PostgreSQL database migrate it once,
and all of them come up."""

from __future__ import annotations

import threading

import psycopg

from conftest import POSTGRES_URL
from sluice.store.db import Database


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(postgres_url):
    name = "sluice_fresh_" + postgres_url.rsplit("_", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    errors = []

    def start():
        db = Database(url)
        try:
            db.upgrade()
        except Exception as error:
            errors.append(error)
        finally:
            db.dispose()

    try:
        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
