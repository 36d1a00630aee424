"""The author's YAML text kept through builder edits (issue 11, definitions/source.py):
whatever the document becomes, the merged text loads to it; what did not change stays
as written, comments included."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from sluice.definitions.parse import load_documents
from sluice.definitions.source import dump, merge, same

EXAMPLE_TEXTS = {path.name: path.read_text() for path in sorted(EXAMPLES.glob("*.yaml"))}
FLOW_TEXTS = {name: text for name, text in EXAMPLE_TEXTS.items() if "kind: template" not in text}

COMMENTED = """\
# Onboarding, by hand.
key: onboarding
name: Onboarding   # shown in the list
trigger:
  event: $signup
  if: "event.details.plan != 'enterprise'"
steps:
  # Say hello first.
  - id: welcome
    email:
      subject: 'Welcome, {{ visitor.first_name | default: "friend" }}!'
      html: |
        <h1>Hi</h1>
        <p>Thanks for signing up.</p>
  # Give them time.
  - id: settle
    wait: 2d  # two days
  - id: activated
    if: 'visitor.tags contains "activated"'
    then:
      # The happy path.
      - id: mark
        tag: {add: [engaged]}
    else:
      - id: nudge
        email: {template: nudge}
  # Remember when.
  - id: done
    field:
      set: {onboarded_at: '{{ now }}'}
"""


def load(text: str):
    [document] = load_documents(text)
    return document


def comments(text: str) -> list[str]:
    return re.findall(r"#.*", text)


# -- properties --------------------------------------------------------------------------

keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
    st.sampled_from(["on", "yes", "1e3", "2026-01-01", "10:30", "1_000", "0x1F", "<<", "~", ""]),
    st.sampled_from(["a\nb\n", "line\n  indented\n", "trailing\n\n", " lead\n", "x\n"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
documents = st.dictionaries(keys, values, max_size=5)
steps = st.lists(
    st.fixed_dictionaries(
        {"id": st.sampled_from(["welcome", "settle", "mark", "nudge", "done", "new_one"])},
        optional={"wait": st.sampled_from(["1d", "2d"]), "tag": st.just({"add": ["vip"]})},
    ),
    max_size=6,
    unique_by=lambda step: step["id"],
)
texts = st.one_of(
    st.sampled_from([COMMENTED, *EXAMPLE_TEXTS.values()]),
    documents.map(dump),
    documents.map(lambda d: dump(d, indentless=True)),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(text=texts, document=documents)
def test_the_merged_text_loads_to_the_document(text, document):
    merged = merge(text, document)
    assert same(load(merged), document), merged


@FAST
@given(text=texts)
def test_an_unchanged_document_gives_back_the_very_same_text(text):
    [*found] = load_documents(text)
    if len(found) == 1:
        assert merge(text, found[0]) == text


@FAST
@given(old=documents, new=documents, middle=documents)
def test_merging_twice_is_merging_the_last(old, middle, new):
    merged = merge(merge(dump(old), middle), new)
    assert same(load(merged), new)


@FAST
@given(new_steps=steps, description=st.text(max_size=30))
def test_edits_of_steps_keep_the_text_of_the_rest(new_steps, description):
    document = load(COMMENTED)
    document["steps"] = new_steps
    document["description"] = description
    merged = merge(COMMENTED, document)
    assert same(load(merged), document)
    head = COMMENTED[: COMMENTED.index("steps:")]
    assert merged.startswith(head.replace("name: Onboarding", "name: Onboarding"))
    assert "# Onboarding, by hand." in merged and "# shown in the list" in merged


@given(st.data())
@FAST
def test_dump_writes_block_style_with_literal_blocks(data):
    document = data.draw(documents)
    text = dump(document)
    assert same(load(text) if text.strip() not in ("{}",) else {}, document)


def test_dump_writes_multi_line_strings_as_literal_blocks_in_the_documents_order():
    text = dump({"key": "x", "steps": [{"id": "a", "email": {"html": "<p>a</p>\n<p>b</p>\n"}}]})
    assert text == (
        "key: x\nsteps:\n  - id: a\n    email:\n      html: |\n        <p>a</p>\n        <p>b</p>\n"
    )


# -- edits the builder makes, on the examples --------------------------------------------


def edited(text: str, change) -> str:
    document = load(text)
    change(document)
    merged = merge(text, document)
    assert same(load(merged), document)
    return merged


def test_changing_a_subject_changes_that_line_only():
    merged = edited(COMMENTED, lambda d: d["steps"][0]["email"].update(subject="Hello!"))
    assert merged == COMMENTED.replace(
        """'Welcome, {{ visitor.first_name | default: "friend" }}!'""", "'Hello!'"
    )


def test_a_changed_html_stays_a_literal_block():
    def change(document):
        document["steps"][0]["email"]["html"] = "<h1>Hello</h1>\n"

    merged = edited(COMMENTED, change)
    assert "      html: |\n        <h1>Hello</h1>\n  # Give them time.\n" in merged
    assert comments(merged) == comments(COMMENTED)


def test_a_changed_wait_keeps_its_comment():
    merged = edited(COMMENTED, lambda d: d["steps"][1].update(wait="3h"))
    assert merged == COMMENTED.replace("wait: 2d  # two days", "wait: 3h  # two days")


def test_adding_a_step_writes_it_in_block_style_and_keeps_the_rest():
    def change(document):
        document["steps"].insert(1, {"id": "tag_vip", "tag": {"add": ["vip"]}})

    merged = edited(COMMENTED, change)
    assert merged == COMMENTED.replace(
        "  # Give them time.\n",
        "  - id: tag_vip\n    tag:\n      add:\n        - vip\n  # Give them time.\n",
    )


def test_removing_a_step_removes_its_comment_and_keeps_the_others():
    merged = edited(COMMENTED, lambda d: d["steps"].pop(1))
    assert "# Give them time." not in merged and "two days" not in merged
    assert comments(merged) == [
        c for c in comments(COMMENTED) if "time" not in c and "two" not in c
    ]


def test_moving_a_step_moves_its_comments_with_it():
    def change(document):
        document["steps"].append(document["steps"].pop(1))

    merged = edited(COMMENTED, change)
    assert merged.endswith("  # Give them time.\n  - id: settle\n    wait: 2d  # two days\n")
    assert sorted(comments(merged)) == sorted(comments(COMMENTED))


def test_moving_a_step_into_a_branch_reindents_it_with_its_comments():
    def change(document):
        document["steps"][2]["else"].append(document["steps"].pop(1))

    merged = edited(COMMENTED, change)
    assert (
        "        email: {template: nudge}\n"
        "      # Give them time.\n"
        "      - id: settle\n"
        "        wait: 2d  # two days\n"
    ) in merged
    assert sorted(comments(merged)) == sorted(comments(COMMENTED))


def test_adding_a_branch_keeps_the_comments_elsewhere():
    def change(document):
        document["steps"][1] = {
            "id": "settle",
            "wait_for": {"event": "completed_setup", "timeout": "3d"},
            "on_timeout": [{"id": "tag_late", "tag": {"add": ["late"]}}],
        }

    merged = edited(COMMENTED, change)
    assert [c for c in comments(COMMENTED) if c != "# two days"] == comments(merged)


def test_renaming_a_step_keeps_its_comments():
    merged = edited(COMMENTED, lambda d: d["steps"][1].update(id="wait_2d"))
    assert merged == COMMENTED.replace("id: settle", "id: wait_2d")


@pytest.mark.parametrize("name", sorted(FLOW_TEXTS))
def test_every_example_survives_each_kind_of_edit(name):
    text = FLOW_TEXTS[name]
    assert merge(text, load(text)) == text
    merged = edited(text, lambda d: d["steps"].append({"id": "tag_end", "tag": {"add": ["end"]}}))
    assert merged.startswith(text)
    merged = edited(text, lambda d: d["steps"].insert(0, d["steps"].pop()))
    assert sorted(merged.splitlines()) == sorted(text.splitlines())
    merged = edited(text, lambda d: d.update(name="Renamed"))
    assert len(merged.splitlines()) == len(text.splitlines())


def test_a_byte_order_mark_and_the_texts_line_breaks_stay():
    """An editor's file keeps its BOM and its one kind of line break: a step added in
    the builder is written with the same breaks, and the rest stays as written."""

    def change(document):
        document["steps"][1]["wait"] = "3h"
        document["steps"].append({"id": "tag_end", "tag": {"add": ["end"]}})

    expected = edited(COMMENTED, change)
    assert edited("\ufeff" + COMMENTED, change) == "\ufeff" + expected
    for newline in ("\r\n", "\r", "\x85"):
        written = COMMENTED.replace("\n", newline)
        assert edited(written, change) == expected.replace("\n", newline), repr(newline)


def test_steps_added_to_an_empty_branch_are_written_in_block_style():
    text = "key: a\ntrigger: {event: go}\nsteps:\n  - id: vip\n    if: visitor.vip\n    then: []\n"
    merged = edited(text, lambda d: d["steps"][0].update(then=[{"id": "tag_x", "wait": "1d"}]))
    assert merged == text.replace("then: []\n", "then:\n      - id: tag_x\n        wait: 1d\n")
