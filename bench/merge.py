"""How long one builder edit takes on a flow of 100 steps (issue 11: each edit
re-validates in under 100 ms): `definitions.source.merge` alone, and the whole round
trip of `POST /ui/flows/{key}/document` (merge, then the editor's check) in-process
on a fresh SQLite file. Prints the median and slowest of 21 runs of each edit.

Run: `PYTHONPATH=src python bench/merge.py`.
"""

from __future__ import annotations

import copy
import re
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.definitions.parse import load_documents
from sluice.definitions.source import merge
from sluice.service import Sluice
from sluice.settings import Settings

STEPS = 100
REPEAT = 21


def flow_text(steps: int = STEPS) -> str:
    """A flow of `steps` steps (emails with literal HTML, waits, tags, an `if` every
    tenth), each with a comment above it."""
    lines = ["# A long flow.", "key: long", "name: Long flow", "trigger:", "  event: $signup"]
    lines.append("steps:")
    for i in range(steps):
        lines.append(f"  # Step {i}.")
        if i % 10 == 9:
            lines += [
                f"  - id: check_{i}",
                "    if: 'visitor.tags contains \"vip\"'",
                "    then:",
                f"      - id: vip_{i}",
                "        tag: {add: [seen]}",
            ]
        elif i % 3 == 0:
            lines += [
                f"  - id: email_{i}",
                "    email:",
                f"      subject: 'Hello {i}, {{{{ visitor.first_name | default: \"friend\" }}}}'",
                "      html: |",
                "        <h1>Hi {{ visitor.first_name }}</h1>",
                f"        <p>Message {i}.</p>",
            ]
        elif i % 3 == 1:
            lines += [f"  - id: wait_{i}", "    wait: 2d  # a pause"]
        else:
            lines += [f"  - id: tag_{i}", "    tag: {add: [step_" + str(i) + "]}"]
    return "\n".join(lines) + "\n"


def edits(document: dict) -> dict[str, dict]:
    def changed(change) -> dict:
        edited = copy.deepcopy(document)
        change(edited)
        return edited

    return {
        "change a subject": changed(lambda d: d["steps"][51]["email"].update(subject="Changed")),
        "add a step": changed(lambda d: d["steps"].insert(50, {"id": "new", "wait": "1h"})),
        "move a step": changed(lambda d: d["steps"].append(d["steps"].pop(10))),
        "delete a step": changed(lambda d: d["steps"].pop(30)),
    }


def timed(run) -> tuple[float, float]:
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def main() -> None:
    text = flow_text()
    [document] = load_documents(text)
    print(f"{STEPS} steps, {len(text.splitlines())} lines, {len(text)} bytes")
    for name, edited in edits(document).items():
        median, slowest = timed(lambda edited=edited: merge(text, edited))
        print(f"merge, {name}: median {median:.1f} ms, slowest {slowest:.1f} ms")
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
            signing_key="bench",
            admin_password="bench",
        )
        sluice = Sluice(settings)
        sluice.db.upgrade()
        sluice.apply([("long.yaml", document)])
        with TestClient(create_app(sluice)) as client:
            page = client.get("/login").text
            token = re.search(r'name="login_token" value="([^"]+)"', page).group(1)
            client.post(
                "/login",
                data={"username": "admin", "password": "bench", "login_token": token},
            )
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)
            for name, edited in edits(document).items():

                def round_trip(edited=edited):
                    answer = client.post(
                        "/ui/flows/long/document",
                        json={"text": text, "document": edited},
                        headers={"X-CSRF-Token": csrf},
                    )
                    assert answer.status_code == 200 and answer.json()["problems"] == []

                median, slowest = timed(round_trip)
                print(f"POST …/document, {name}: median {median:.1f} ms, slowest {slowest:.1f} ms")
        sluice.close()


if __name__ == "__main__":
    main()
