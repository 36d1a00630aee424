"""A segment's rules in words, as its page shows them (ui/segment_rules.py): one short
sentence per rule, groups as a heading over their own rules."""

from __future__ import annotations

import pytest
import yaml

from sluice.definitions.segments import validate_segment
from sluice.ui.segment_rules import Said, say


def said(rules_yaml: str, match: str = "all") -> Said:
    rules = yaml.safe_load(rules_yaml)
    segment = validate_segment(
        {"kind": "segment", "key": "s", "name": "S", "match": match, "rules": rules}
    )
    return say(segment.rules)


def sentence(rule_yaml: str) -> str:
    [rule] = said(f"- {rule_yaml}").rules
    return rule.text


def test_the_brief_examples_read_as_sentences():
    whole = said(
        """
        - tag: vip
        - field: plan
          equals: pro
        - event: $purchase
          at_least: 2
          within: 30d
          where: "event.details.amount >= 10"
        """
    )
    assert whole.text == "all of:"
    assert [r.text for r in whole.rules] == [
        "has tag vip",
        'field plan equals "pro"',
        "2 or more $purchase in the last 30 days where event.details.amount >= 10",
    ]


def test_groups_are_headings_over_their_rules_at_any_depth():
    whole = said(
        """
        - subscribed: true
        - any:
            - tag: vip
            - none:
                - tag: churned
                - subscribed: false
        """,
        match="any",
    )
    assert whole == Said(
        "any of:",
        (
            Said("is subscribed"),
            Said(
                "any of:",
                (
                    Said("has tag vip"),
                    Said("none of:", (Said("has tag churned"), Said("is unsubscribed"))),
                ),
            ),
        ),
    )


@pytest.mark.parametrize(
    "rule,words",
    [
        ("{tag: trial, has: false}", "does not have tag trial"),
        ("{field: plan, not_equals: free}", 'field plan does not equal "free"'),
        ("{field: plan, one_of: [pro, team, 3]}", 'field plan is one of "pro", "team", 3'),
        ("{field: seats, greater_than: 10}", "field seats is greater than 10"),
        ("{field: seats, less_than: 2.5}", "field seats is less than 2.5"),
        ("{field: ltv, at_least: 1000}", "field ltv is at least 1000"),
        ("{field: ltv, at_most: 0}", "field ltv is at most 0"),
        ("{field: beta, equals: true}", "field beta equals true"),
        ("{field: city, contains: Zürich}", 'field city contains "Zürich"'),
        ("{field: plan, exists: true}", "field plan is set"),
        ("{field: plan, exists: false}", "field plan is not set"),
        ("{field: trial_ends, before: 2026-03-01}", "field trial_ends is before 2026-03-01"),
        (
            "{field: trial_ends, after: '2026-03-01T09:30:00+02:00'}",
            "field trial_ends is after 2026-03-01 07:30 UTC",
        ),
        ("{field: trial_ends, before: now}", "field trial_ends is before now"),
        ("{field: signed_up, after: -30d}", "field signed_up is after 30 days ago"),
        ("{field: renews, before: +7d}", "field renews is before 7 days from now"),
        ("{field: seen, within: 1d6h}", "field seen is within the last 1 day 6 hours"),
        ("{field: renews, within_next: 2w}", "field renews is within the next 14 days"),
        ("{field: renews, within_next: 90m}", "field renews is within the next 1 hour 30 minutes"),
    ],
)
def test_each_field_test_reads_as_words(rule, words):
    assert sentence(rule) == words


@pytest.mark.parametrize(
    "rule,words",
    [
        ("{event: $signup}", "1 or more $signup"),
        ("{event: opened, at_most: 3, within: 1h}", "at most 3 opened in the last 1 hour"),
        ("{event: opened, exactly: 2}", "exactly 2 opened"),
        ("{event: $purchase, at_most: 0, within: 7d}", "no $purchase in the last 7 days"),
        ("{event: $purchase, exactly: 0}", "no $purchase"),
    ],
)
def test_counted_events_read_as_how_many_of_which_when(rule, words):
    assert sentence(rule) == words
