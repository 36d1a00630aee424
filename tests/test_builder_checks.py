"""The builder checks values as they are typed (ui/frontend/src/builder/checks.js) and
writes conditions from rows (conditions.js); the examples it is tested with
(checks.examples.json) are checked here against the server: the same messages for the
same values, and every condition it writes compiles and means what the example says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.definitions.liquid import Condition
from sluice.definitions.problems import Checker

EXAMPLES = json.loads(
    (Path(__file__).parent.parent / "ui/frontend/src/builder/checks.examples.json").read_text()
)


@pytest.mark.parametrize("example", EXAMPLES["durations"], ids=lambda e: e["text"])
def test_a_duration_gets_the_message_the_builder_shows(example):
    check = Checker()
    check.duration(example["text"], "wait", signed=example["signed"])
    assert [p.msg for p in check.problems] == ([example["message"]] if example["message"] else [])


@pytest.mark.parametrize("example", EXAMPLES["ids"], ids=lambda e: e["text"])
def test_an_id_gets_the_message_the_builder_shows(example):
    check = Checker()
    check.slug(example["text"], "id", "id")
    assert [p.msg for p in check.problems] == ([example["message"]] if example["message"] else [])


@pytest.mark.parametrize("example", EXAMPLES["conditions"], ids=lambda e: e["text"])
def test_a_condition_the_builder_writes_means_what_it_says(example):
    result = Condition.compile(example["text"]).evaluate(example["context"])
    assert result.error is None
    assert result.value is example["result"]
