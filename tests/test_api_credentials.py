"""Credentials (SPEC §3.2): generated on first start and printed once, secrets stored
hashed, environment values winning, and the commands that change them."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api_support import free_port
from sluice.service import Sluice
from sluice.settings import Settings
from sluice.store.schema import settings_store

SLUICE = str(Path(sys.executable).parent / "sluice")


def stored(app: Sluice) -> dict[str, str]:
    with app.db.read() as conn:
        return dict(conn.execute(sa.select(settings_store.c.key, settings_store.c.value)).all())


def test_the_first_start_generates_everything_once_and_keeps_secrets_hashed(app):
    generated = app.credentials.ensure()
    assert set(generated) == {
        "site_uuid",
        "publishable_key",
        "secret_key",
        "admin_password",
        "webhook_secret",
    }
    assert app.credentials.ensure() == {}
    kept = stored(app)
    assert kept["secret_key_hash"].startswith("scrypt$")
    assert kept["admin_password_hash"].startswith("scrypt$")
    assert generated["secret_key"] not in kept.values()
    assert generated["admin_password"] not in kept.values()
    assert kept["site_uuid"] == generated["site_uuid"]
    secret = generated["webhook_secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert app.secret("webhook_secret") == secret

    assert app.credentials.check_api_key(generated["publishable_key"], generated["secret_key"])
    assert app.credentials.check_api_key(None, generated["secret_key"])
    assert not app.credentials.check_api_key("other", generated["secret_key"])
    assert not app.credentials.check_api_key(None, "wrong")
    assert app.credentials.check_admin_password(generated["admin_password"])
    assert not app.credentials.check_admin_password("wrong")


def test_values_from_the_environment_win_and_are_not_generated(database_url, clock):
    settings = Settings(
        database_url=database_url,
        site_uuid="site-1",
        publishable_key="pub",
        secret_key="sec",
        admin_password="adminpass",
        webhook_secret="whsec_AAAA",
        signing_key="sign",
    )
    app = Sluice(settings, clock)
    try:
        assert app.credentials.ensure() == {}
        assert stored(app) == {}
        assert app.credentials.check_api_key("pub", "sec")
        assert not app.credentials.check_api_key("pub", "other")
        assert app.credentials.check_admin_password("adminpass")
        assert app.secret("site_uuid") == "site-1"
    finally:
        app.close()


@pytest.fixture
def cli(tmp_path, database_url):
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLUICE_")} | {
        "SLUICE_DATABASE_URL": database_url,
        "SLUICE_SIGNING_KEY": "k",
    }

    def run(*args: str, expect: int = 0, extra: dict | None = None, stdin: str | None = None):
        done = subprocess.run(
            [SLUICE, *args],
            cwd=tmp_path,
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
        )
        assert done.returncode == expect, done.stderr + done.stdout
        return done

    run.env = env
    return run


def test_keys_rotate_replaces_the_secret_key_and_admin_set_password(cli, app):
    first = app.credentials.ensure()

    def another_process() -> Sluice:
        """A view of the credentials with nothing cached (processes re-read within 1 s)."""
        return Sluice(app.settings)

    rotated = cli("keys", "rotate").stdout
    new_key = rotated.strip().rsplit(" ", 1)[1]
    view = another_process()
    assert view.credentials.check_api_key(None, new_key)
    assert not view.credentials.check_api_key(None, first["secret_key"])
    view.close()
    shown = cli("keys", "show", "--json").stdout
    assert first["site_uuid"] in shown and first["publishable_key"] in shown

    cli("admin", "set-password", "--password", "correct horse")
    view = another_process()
    assert view.credentials.check_admin_password("correct horse")
    view.close()
    cli("admin", "set-password", stdin="battery staple\nbattery staple\n")
    view = another_process()
    assert view.credentials.check_admin_password("battery staple")
    assert not view.credentials.check_admin_password("correct horse")
    view.close()
    short = cli("admin", "set-password", "--password", "short", expect=1)
    assert short.stderr == "error: the password needs at least 8 characters\n"
    pinned = cli("keys", "rotate", expect=1, extra={"SLUICE_SECRET_KEY": "from-env"})
    assert pinned.stderr == "error: SLUICE_SECRET_KEY is set in the environment; change it there\n"


def test_serve_prints_the_generated_credentials_on_the_first_start_only(cli, tmp_path):
    first = serve_output(cli, tmp_path)
    assert first[0].startswith("Sluice is running at http://127.0.0.1:")
    values = dict(
        line.strip().split(": ", 1) for line in first if line.startswith("  ") and "(" not in line
    )
    assert set(values) == {
        "site uuid",
        "publishable key",
        "secret key",
        "admin password",
        "webhook secret",
    }
    assert values["webhook secret"].strip().startswith("whsec_")
    second = serve_output(cli, tmp_path, check_key=values["secret key"].strip())
    assert len(second) == 1  # only "Sluice is running at …"


def serve_output(cli, tmp_path, check_key: str | None = None) -> list[str]:
    """What `sluice serve` printed before it answered; with `check_key`, also checks
    that the native API takes that secret key."""
    port = free_port()
    errors = tmp_path / "serve-errors.txt"
    process = subprocess.Popen(
        [SLUICE, "serve", "--port", str(port), "--no-worker"],
        cwd=tmp_path,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=errors.open("w"),
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, errors.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        if check_key:
            answer = httpx.get(
                f"http://127.0.0.1:{port}/api/flows",
                headers={"Authorization": f"Bearer {check_key}"},
            )
            assert answer.status_code == 200
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    return [line for line in out.splitlines() if line.strip()]
