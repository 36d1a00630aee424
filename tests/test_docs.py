"""The docs keep up with the code: every setting is documented, and the README opens
with the two commands a newcomer needs. These tests need no database."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from sluice.settings import all_env_names

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
TEST_ONLY_SOURCES = (ROOT / "tests" / "conftest.py", ROOT / ".ci" / "run")


def documented_names() -> Counter[str]:
    """The variables named in backticks in the first column of configuration tables."""
    names: Counter[str] = Counter()
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith("|"):
            first_column = line.split("|")[1]
            names.update(re.findall(r"`(SLUICE_\w+)`", first_column))
    return names


def suite_variables() -> set[str]:
    """Variables read by the test suite itself, found where they are read."""
    found = set()
    for path in TEST_ONLY_SOURCES:
        found.update(re.findall(r"SLUICE_TEST_\w+", path.read_text()))
    return found


@pytest.mark.parametrize("name", all_env_names())
def test_every_setting_is_documented_once(name):
    assert documented_names()[name] == 1, f"{name}: one row in docs/configuration.md"


def test_every_test_variable_is_documented():
    names = suite_variables()
    assert {"SLUICE_TEST_POSTGRES_URL", "SLUICE_TEST_REQUIRE_POSTGRES"} <= names
    for name in names:
        assert documented_names()[name] == 1, f"{name}: one row in docs/configuration.md"


def test_no_documented_variable_is_unknown():
    known = set(all_env_names()) | suite_variables()
    assert set(documented_names()) - known == set()


def test_readme_opens_with_make_run_and_make_test():
    opening = README.read_text().splitlines()[:15]
    assert any(line.startswith("make run") for line in opening)
    assert any(line.startswith("make test") for line in opening)


def test_the_readme_tour_uses_only_files_in_the_repository():
    text = README.read_text()
    assert "src/sluice/ui/examples/" in text and "shared/examples" not in text
    for path in re.findall(r"(?<![\w/.])((?:src|docs|tests)/[\w./-]*\w/?)", text):
        assert (ROOT / path).exists(), f"README names {path}, which a clone lacks"
