"""Helpers for the API tests: a client that speaks both dialects with this
installation's credentials, and the API served on a real port."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.service import Sluice


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """Calls the API the way clients do: Bento's routes with HTTP Basic and the
    `site_uuid`, the native ones with a Bearer secret key."""

    def __init__(self, app: Sluice, client: httpx.Client):
        self.app, self.client = app, client
        credentials = app.credentials.ensure()  # the first start generates them
        self.site_uuid = app.secret("site_uuid")
        self.publishable_key = app.secret("publishable_key")
        self.secret_key = credentials.get("secret_key") or app.settings.secret_key
        pair = f"{self.publishable_key}:{self.secret_key}".encode()
        self.basic = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        self.bearer = {"Authorization": f"Bearer {self.secret_key}"}

    # -- Bento ------------------------------------------------------------------------

    def bento_get(self, path: str, **params: Any) -> httpx.Response:
        params.setdefault("site_uuid", self.site_uuid)
        return self.client.get(f"/api/v1{path}", params=params, headers=self.basic)

    def bento_post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(
            f"/api/v1{path}", json={**body, "site_uuid": self.site_uuid}, headers=self.basic
        )

    # -- native -----------------------------------------------------------------------

    def request(self, method: str, path: str, *, headers=None, **kwargs: Any) -> httpx.Response:
        headers = {**self.bearer, **(headers or {})}
        return self.client.request(method, f"/api{path}", headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def put_flow(self, yaml_text: str, *, on: bool = True) -> dict[str, Any]:
        key = next(
            line.split(":", 1)[1].strip()
            for line in yaml_text.splitlines()
            if line.startswith("key:")
        )
        saved = self.put(
            f"/flows/{key}", content=yaml_text, headers={"Content-Type": "application/yaml"}
        )
        assert saved.status_code in (200, 201), saved.text
        if on:
            assert self.post(f"/flows/{key}/on").status_code == 200
        return saved.json()


@contextmanager
def api_in_process(app: Sluice) -> Iterator[Api]:
    """The API in-process (FastAPI's TestClient: real HTTP semantics, no socket)."""
    with TestClient(create_app(app), raise_server_exceptions=True) as client:
        yield Api(app, client)


@contextmanager
def served(web: FastAPI) -> Iterator[str]:
    """The application on a real port, in a thread of this process; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        web,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sse_messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events messages, `{id, event, data}`, from a response's lines."""
    message: dict[str, str] = {}
    for line in lines:
        if not line:
            if message:
                yield message
            message = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")
