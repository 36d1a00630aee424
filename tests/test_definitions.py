"""Flow and template definitions: what validates, what is rejected and how (SPEC §2)."""

import json
import re
import time as time_module
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from sluice.definitions.model import (
    EntryRule,
    OnResume,
    RetryPolicy,
    child_lists,
    iter_steps,
)
from sluice.definitions.parse import (
    DefinitionError,
    Problem,
    load_documents,
    validate_documents,
    validate_flow,
    validate_template,
)

EXAMPLES = Path(__file__).parents[1] / "src" / "sluice" / "ui" / "examples"

GUARD_SECONDS = 5
"""What "at once" allows a refusal that guards against an input taking minutes (a
YAML bomb, a condition nested without end): loose, since a CI machine running three
test processes on two cores took 3 s once for what takes 0.4 s alone."""


def flow(*steps, **top):
    """A minimal valid flow document with the given steps and top-level keys."""
    return {"key": "test", "trigger": {"event": "$signup"}, "steps": list(steps)} | top


def problems(doc, **known):
    with pytest.raises(DefinitionError) as excinfo:
        validate_flow(doc, **known)
    return [str(problem) for problem in excinfo.value.problems]


def step(doc):
    """The one step of a flow made of `doc`."""
    return validate_flow(flow(doc)).steps[0]


def example_documents():
    paths = sorted(EXAMPLES.glob("*.yaml"))
    assert paths, f"no examples in {EXAMPLES}"
    return [(path.name, doc) for path in paths for doc in load_documents(path.read_text())]


# The examples


def test_every_example_validates_together():
    flows, templates, _ = validate_documents(example_documents())
    assert {f.key for f in flows} == {"onboarding", "abandoned-cart", "trial-ending"}
    assert [t.key for t in templates] == ["nudge"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_each_example_validates_on_its_own(path):
    for doc in load_documents(path.read_text(), path.name):
        if doc.get("kind") == "template":
            validate_template(doc)
        else:
            validate_flow(doc, known_templates={"nudge"})


def test_onboarding_example_reads_as_written():
    docs = dict(example_documents())
    onboarding = validate_flow(docs["onboarding.yaml"], known_templates={"nudge"})
    assert onboarding.trigger.events == ("$signup",)
    assert onboarding.trigger.condition.source == 'event.details.plan != "enterprise"'
    assert onboarding.entry is EntryRule.ONE_AT_A_TIME
    assert onboarding.on_resume is OnResume.CATCH_UP
    assert onboarding.timezone == "Europe/Berlin"
    assert [rule.event for rule in onboarding.exit_rules] == ["$purchase"]
    assert [s.id for s in iter_steps(onboarding.steps)] == [
        "welcome",
        "settle",
        "activated",
        "mark_engaged",
        "nudge",
        "wait_setup",
        "tell_crm",
        "done",
    ]
    assert onboarding.referenced_templates == {"nudge"}
    assert onboarding.source == docs["onboarding.yaml"]


# Messages the SPEC promises


def test_the_spec_example_messages_are_produced_exactly():
    doc = flow(
        {"id": "welcome", "email": {"subject": "Welcome, {{ } }}!", "html": "<p>Hi</p>"}},
        {"id": "welcome", "wait": "1d"},
        {"wait": "2 days"},
        {"start_flow": "onbaording"},
    )
    assert problems(doc, known_flows={"onboarding"}) == [
        "steps[0].email.subject: Liquid syntax error at 1:13: unexpected '}'",
        "steps[1].id: duplicate id 'welcome'",
        "steps[2].wait: invalid duration '2 days' (use 2d)",
        "steps[3].start_flow: unknown flow 'onbaording'",
    ]


def test_a_definition_with_many_faults_lists_every_one():
    doc = {
        "key": "Not A Slug",
        "tigger": {"event": "$signup"},
        "entry": "sometimes",
        "cooldown": "a while",
        "timezone": "Mars/Olympus",
        "on_resume": "later",
        "exit": [{"if": "x =="}],
        "steps": [
            {"email": {"subject": "Hi"}},
            {"wait": {"at": "25:00", "on": ["mon", "someday"]}},
            {
                "if": "visitor.vip",
                "then": [{"tag": {"add": ["ok", "{{ x | nope }}"]}}],
                "on_timeout": [],
            },
            {"webhook": {"url": "ftp://example.com", "method": "FETCH", "retries": 0}},
            {"split": [{"weight": 0, "steps": []}]},
            {"email": {"template": "missing"}},
            {"exit": False},
            {"subscribe": "yes"},
            {"id": "x", "email": {"subject": "a", "html": "b"}, "wait": "1d"},
            {},
            "not a step",
        ],
    }
    assert problems(doc) == [
        "trigger: missing required key 'trigger'",
        "tigger: unknown key 'tigger' (did you mean 'trigger'?)",
        "key: invalid key 'Not A Slug' (use a-z, 0-9, _ and -, starting with a letter or "
        "digit, at most 64 characters)",
        "entry: invalid value 'sometimes' (use once, one_at_a_time or every_time)",
        "cooldown: invalid duration 'a while' (use e.g. 30s, 15m, 2h, 3d, 1w or ISO 8601 "
        "such as P2D)",
        "exit[0].event: missing required key 'event'",
        "exit[0].if: Liquid syntax error at 1:5: expected a primitive expression, "
        "found end of expression",
        "timezone: unknown time zone 'Mars/Olympus'",
        "on_resume: invalid value 'later' (use catch_up or extend)",
        "steps[0].email: expected 'html' or 'text' (or a 'template')",
        "steps[1].wait.at: invalid time of day '25:00' (use HH:MM, e.g. 09:30)",
        "steps[1].wait.on[1]: invalid weekday 'someday' (use mon, tue, wed, thu, fri, sat, sun)",
        "steps[2].on_timeout: 'on_timeout' only goes with 'wait_for'",
        "steps[2].then[0].tag.add[1]: Liquid syntax error at 1:8: unknown filter 'nope'",
        "steps[3].webhook.url: expected an http:// or https:// URL",
        "steps[3].webhook.method: invalid value 'FETCH' (use GET, POST, PUT, PATCH or DELETE)",
        "steps[3].webhook.retries: must be at least 1",
        "steps[4].split: at least one branch needs a weight above 0",
        "steps[5].email.template: unknown template 'missing'",
        "steps[6].exit: expected true or a mapping with a 'reason'",
        "steps[7].subscribe: expected true",
        "steps[8]: a step has one action, found email, wait",
        "steps[9]: missing action: one of email, webhook, tag, field, subscribe, unsubscribe, "
        "wait, wait_for, if, split, start_flow, track, exit",
        "steps[10]: expected a step: a mapping with one action",
    ]


def test_problems_serialise_as_loc_and_msg():
    problem = Problem("steps[2].wait", "invalid duration '2 days' (use 2d)")
    assert problem.as_dict() == {
        "loc": "steps[2].wait",
        "msg": "invalid duration '2 days' (use 2d)",
    }
    assert str(problem) == "steps[2].wait: invalid duration '2 days' (use 2d)"


# Top level


def test_defaults_for_optional_top_level_keys():
    definition = validate_flow(flow({"exit": True}))
    assert definition.name == "test"
    assert definition.description is None
    assert definition.entry is EntryRule.ONE_AT_A_TIME
    assert definition.cooldown is None
    assert definition.exit_rules == ()
    assert definition.timezone is None
    assert definition.on_resume is OnResume.CATCH_UP


def test_a_timezone_in_another_case_is_read_as_its_iana_name():
    assert validate_flow(flow({"exit": True}, timezone="europe/berlin")).timezone == "Europe/Berlin"
    assert problems(flow({"exit": True}, timezone="Mars/Base")) == [
        "timezone: unknown time zone 'Mars/Base'"
    ]


def test_trigger_takes_one_event_type_or_a_list():
    assert validate_flow(flow({"exit": True})).trigger.events == ("$signup",)
    many = flow({"exit": True}, trigger={"event": ["a", "b"], "if": "event.details.x"})
    assert validate_flow(many).trigger.events == ("a", "b")
    assert problems(flow({"exit": True}, trigger={"event": []})) == [
        "trigger.event: expected an event type or a non-empty list of event types"
    ]


def test_steps_must_not_be_empty():
    assert problems(flow()) == ["steps: expected at least one item"]


def test_source_is_the_document_as_json():
    doc = load_documents(
        "key: a\ntrigger: {event: x}\nsteps:\n  - wait: {until: 2026-12-24T09:00:00Z}\n"
    )
    definition = validate_flow(doc[0])
    assert definition.source["steps"][0]["wait"]["until"] == "2026-12-24T09:00:00+00:00"
    assert json.loads(json.dumps(definition.source)) == definition.source


def test_a_template_document_is_not_a_flow():
    assert problems(flow({"exit": True}, kind="tempalte")) == [
        "kind: unknown kind 'tempalte' (use template, or leave it out for a flow)"
    ]


# Steps and their ids


def test_derived_ids_follow_the_position():
    doc = flow(
        {"tag": {"add": ["a"]}},
        {"wait_for": {"event": "x", "timeout": "1d"}, "on_timeout": [{"exit": True}]},
        {"if": "visitor.vip", "then": [{"exit": True}], "else": [{"tag": {"add": ["b"]}}]},
        {
            "webhook": {
                "url": "https://example.com/hook",
                "on_failure": [{"tag": {"add": ["failed"]}}],
            }
        },
        {"split": [{"weight": 1, "steps": []}, {"weight": 1, "steps": [{"exit": True}]}]},
    )
    steps = list(iter_steps(validate_flow(doc).steps))
    assert [(s.id, s.loc) for s in steps] == [
        ("steps.0", "steps[0]"),
        ("steps.1", "steps[1]"),
        ("steps.1.on_timeout.0", "steps[1].on_timeout[0]"),
        ("steps.2", "steps[2]"),
        ("steps.2.then.0", "steps[2].then[0]"),
        ("steps.2.else.0", "steps[2].else[0]"),
        ("steps.3", "steps[3]"),
        ("steps.3.webhook.on_failure.0", "steps[3].webhook.on_failure[0]"),
        ("steps.4", "steps[4]"),
        ("steps.4.split.1.steps.0", "steps[4].split[1].steps[0]"),
    ]


def test_derived_ids_match_the_model_child_list_names():
    def walk(steps, prefix):
        for i, s in enumerate(steps):
            path = f"{prefix}.{i}"
            assert s.id == path
            for name, children in child_lists(s):
                walk(children, f"{path}.{name}")

    docs = dict(example_documents())
    cart = validate_flow({**docs["abandoned-cart.yaml"], "steps": _without_ids(docs)})
    walk(cart.steps, "steps")


def _without_ids(docs):
    """The abandoned-cart steps with every explicit id removed."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "id"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(docs["abandoned-cart.yaml"]["steps"])


def test_explicit_ids_must_be_slugs_and_unique_across_branches():
    doc = flow(
        {"id": "a", "if": "x", "then": [{"id": "b", "exit": True}]},
        {"id": "b", "exit": True},
        {"id": "Bad Id", "exit": True},
    )
    assert problems(doc) == [
        "steps[1].id: duplicate id 'b'",
        "steps[2].id: invalid id 'Bad Id' (use a-z, 0-9, _ and -, starting with a letter or "
        "digit, at most 64 characters)",
    ]


def test_branch_keys_only_beside_their_action():
    assert problems(flow({"tag": {"add": ["a"]}, "then": []})) == [
        "steps[0].then: 'then' only goes with 'if' or 'wait_for'"
    ]
    assert problems(flow({"tag": {"add": ["a"]}, "colour": "red"})) == [
        "steps[0].colour: unknown key 'colour'"
    ]


# Actions


def test_email_needs_content_unless_it_names_a_template():
    assert problems(flow({"email": {"html": "x"}})) == [
        "steps[0].email.subject: missing required key 'subject'"
    ]
    templated = validate_flow(
        flow({"email": {"template": "nudge", "subject": "Override"}}), known_templates={"nudge"}
    )
    action = templated.steps[0].action
    assert action.template == "nudge"
    assert action.subject.source == "Override"


def test_email_keys_map_onto_the_model():
    action = step(
        {
            "email": {
                "subject": "S",
                "text": "T",
                "from": "Team <team@example.com>",
                "reply_to": "help@example.com",
                "to": "{{ visitor.fields.work_email }}",
                "transactional": True,
                "track": False,
            }
        }
    ).action
    assert action.from_.source == "Team <team@example.com>"
    assert action.to.source == "{{ visitor.fields.work_email }}"
    assert (action.transactional, action.track, action.html) == (True, False, None)


def test_webhook_defaults_and_retry_forms():
    plain = step({"webhook": {"url": "https://example.com/h"}}).action
    assert plain.method == "POST"
    assert plain.timeout == timedelta(seconds=10)
    assert plain.retries == RetryPolicy()
    assert plain.body is None
    assert plain.on_failure is None

    full = step(
        {
            "webhook": {
                "url": "https://example.com/{{ flow.key }}",
                "method": "put",
                "headers": {"X-Flow": "{{ flow.key }}"},
                "body": {"n": 1, "who": "{{ visitor.email }}"},
                "timeout": "30s",
                "retries": {"attempts": 3, "backoff": "1m"},
                "on_failure": [],
            }
        }
    ).action
    assert full.method == "PUT"
    assert full.headers["X-Flow"].source == "{{ flow.key }}"
    assert full.body.render({"visitor": {"email": "a@b.c"}}) == {"n": 1, "who": "a@b.c"}
    assert full.timeout == timedelta(seconds=30)
    assert full.retries == RetryPolicy(attempts=3, backoff=timedelta(minutes=1))
    assert full.on_failure == ()
    assert step({"webhook": {"url": "https://x.io", "retries": 5}}).action.retries.attempts == 5


def test_wait_forms():
    assert step({"wait": "2d"}).action.for_ == timedelta(days=2)
    assert step({"wait": {"for": "PT90M"}}).action.for_ == timedelta(minutes=90)
    until = step({"wait": {"until": "2026-12-24T09:00:00+01:00"}}).action.until
    assert until == datetime(2026, 12, 24, 8, tzinfo=UTC)
    at = step({"wait": {"at": "09:30", "on": ["mon", "fri"]}}).action
    assert (at.at, at.on) == (time(9, 30), frozenset({0, 4}))
    field = step({"wait": {"until_field": "trial_ends_at", "offset": "-3d"}}).action
    assert (field.until_field, field.offset) == ("trial_ends_at", timedelta(days=-3))


def test_wait_needs_exactly_one_mode_and_matching_options():
    assert problems(flow({"wait": {"for": "1d", "at": "09:00"}})) == [
        "steps[0].wait: expected exactly one of for, until, at, until_field, found for, at"
    ]
    assert problems(flow({"wait": {"for": "1d", "on": ["mon"], "offset": "1d"}})) == [
        "steps[0].wait.on: 'on' only goes with 'at'",
        "steps[0].wait.offset: 'offset' only goes with 'until_field'",
    ]
    assert problems(flow({"wait": {"until": "2026-12-24T09:00:00"}})) == [
        "steps[0].wait.until: time '2026-12-24T09:00:00' has no offset: add one, "
        "e.g. Z for UTC or +02:00"
    ]
    assert problems(flow({"wait": 5})) == [
        "steps[0].wait: invalid duration '5' (add a unit: 5s, 5m, 5h, 5d or 5w)"
    ]


def test_yaml_one_point_one_surprises_are_avoided():
    text = "key: a\ntrigger: {event: x}\nsteps:\n  - wait: {at: 10:30, on: [mon]}\n"
    action = validate_flow(load_documents(text)[0]).steps[0].action
    assert (action.at, action.on) == (time(10, 30), frozenset({0}))


def test_wait_for_requires_a_timeout_and_sees_its_branches():
    assert problems(flow({"wait_for": {"event": "x"}})) == [
        "steps[0].wait_for.timeout: missing required key 'timeout'"
    ]
    action = step(
        {
            "wait_for": {"event": "paid", "if": "event.details.ok", "timeout": "3d"},
            "then": [{"exit": True}],
        }
    ).action
    assert (action.event, action.timeout) == ("paid", timedelta(days=3))
    assert action.condition.source == "event.details.ok"
    assert len(action.then) == 1
    assert action.on_timeout is None


def test_if_split_and_start_flow():
    branch = step({"if": "visitor.vip", "else": [{"exit": True}]}).action
    assert (branch.then, len(branch.else_)) == ((), 1)
    split = step({"split": [{"weight": 3, "steps": []}, {"weight": 1, "steps": []}]}).action
    assert [b.weight for b in split.branches] == [3, 1]
    assert problems(flow({"split": []})) == ["steps[0].split: expected at least one item"]
    assert step({"start_flow": "test"}).action.flow == "test"  # a flow may restart itself
    known = validate_flow(flow({"start_flow": "other"}), known_flows={"other"})
    assert known.referenced_flows == {"other"}


def test_data_steps():
    tag = step({"tag": {"add": ["a", "{{ event.type }}"], "remove": ["b"]}}).action
    assert [t.source for t in tag.add] == ["a", "{{ event.type }}"]
    fields = step({"field": {"set": {"n": 1, "when": "{{ now }}"}, "remove": ["old"]}}).action
    assert fields.set["n"].render({}) == 1
    assert fields.set["when"].render({"now": "2026"}) == "2026"
    assert fields.remove == ("old",)
    assert problems(flow({"field": {}})) == ["steps[0].field: expected 'set' or 'remove'"]
    assert step({"unsubscribe": True}).action.subscribe is False
    assert step({"subscribe": True}).action.subscribe is True


def test_track_and_exit():
    track = step({"track": {"type": "nudged", "details": {"via": "{{ flow.key }}"}}}).action
    assert track.type.source == "nudged"
    assert track.details.render({"flow": {"key": "f"}}) == {"via": "f"}
    assert step({"exit": True}).action.reason is None
    assert step({"exit": {"reason": "converted"}}).action.reason == "converted"


def test_templated_values_report_each_bad_string_by_path():
    doc = flow(
        {"webhook": {"url": "https://x.io", "body": {"a": ["{{ }}"], "b": {"c": "{% if %}"}}}}
    )
    assert [p.split(": ")[0] for p in problems(doc)] == [
        "steps[0].webhook.body.a[0]",
        "steps[0].webhook.body.b.c",
    ]


# Loading documents


def test_load_yaml_with_several_documents_and_json():
    docs = load_documents("key: a\n---\nkey: b\n---\n")
    assert [d["key"] for d in docs] == ["a", "b"]
    assert load_documents('{"key": "a", "on": true}') == [{"key": "a", "on": True}]


def test_yaml_syntax_error_is_one_problem_with_a_position():
    with pytest.raises(DefinitionError) as excinfo:
        load_documents("key: a\nsteps: [\n", "flow.yaml")
    [problem] = excinfo.value.problems
    assert problem.loc == "flow.yaml"
    assert problem.msg.startswith("YAML syntax error at 3:1: ")


@pytest.mark.parametrize(
    ("value", "tag", "where"),
    [
        ("!!binary aGVsbG8=", "binary", "2:7"),
        ("!!set {a, b}", "set", "2:7"),
        ("!!omap [{a: 1}]", "omap", "2:7"),
        ("!!pairs [{a: 1}]", "pairs", "2:7"),
    ],
)
def test_yaml_values_no_definition_holds_are_refused_where_written(value, tag, where):
    """Bytes, sets and lists of pairs would reach the checks as Python values that no
    JSON can store (before: "nested too deeply" from the API)."""
    with pytest.raises(DefinitionError) as excinfo:
        load_documents(f"key: a\nname: {value}\n", "flow.yaml")
    [problem] = excinfo.value.problems
    assert problem.loc == "flow.yaml"
    assert problem.msg == (
        f"a !!{tag} value, which definitions cannot hold (text, numbers, true/false, dates,"
        f" lists and mappings) at {where}"
    )


def test_every_document_must_be_a_mapping():
    with pytest.raises(DefinitionError) as excinfo:
        load_documents("key: a\n---\n- 1\n", "flows.yaml")
    assert [str(p) for p in excinfo.value.problems] == ["flows.yaml#2: expected a mapping"]


# Sets of documents


def test_documents_reference_each_other_and_problems_name_their_document():
    docs = [
        ("a.yaml", flow({"start_flow": "b"}, key="a")),
        ("b.yaml", flow({"email": {"template": "welcome"}}, {"start_flow": "c"}, key="b")),
        ("t.yaml", {"kind": "template", "key": "welcome", "subject": "Hi", "html": "<p>Hi</p>"}),
        ("bad.yaml", {"kind": "template", "key": "broken", "subject": "{{"}),
    ]
    with pytest.raises(DefinitionError) as excinfo:
        validate_documents(docs)
    assert [str(p) for p in excinfo.value.problems] == [
        "b.yaml: steps[1].start_flow: unknown flow 'c'",
        "bad.yaml: expected 'html' or 'text'",
        "bad.yaml: subject: Liquid syntax error at 1:1: expected '}}', found end of file",
    ]
    flows, templates, _ = validate_documents(docs[:3], known_flows={"c"})
    assert [f.key for f in flows] == ["a", "b"]
    assert [t.key for t in templates] == ["welcome"]


def test_a_single_document_keeps_plain_locs():
    with pytest.raises(DefinitionError) as excinfo:
        validate_documents([("a.yaml", flow({"wait": "2 days"}))])
    assert [p.loc for p in excinfo.value.problems] == ["steps[0].wait"]


def test_duplicate_keys_across_documents():
    docs = [
        ("a.yaml", flow({"exit": True}, key="same")),
        ("b.yaml", flow({"exit": True}, key="same")),
        ("t.yaml", {"kind": "template", "key": "same", "subject": "s", "text": "t"}),
    ]
    with pytest.raises(DefinitionError) as excinfo:
        validate_documents(docs)
    assert [str(p) for p in excinfo.value.problems] == [
        "b.yaml: key: duplicate flow key 'same' (also in a.yaml)"
    ]


def test_template_documents():
    template = validate_template(
        {"kind": "template", "key": "nudge", "subject": "Hi {{ visitor.first_name }}", "text": "t"}
    )
    assert template.subject.render({"visitor": {"first_name": "Ada"}}) == "Hi Ada"
    assert template.html is None
    with pytest.raises(DefinitionError) as excinfo:
        validate_template({"kind": "template", "key": "x", "subject": "s", "html": "h", "foo": 1})
    assert [str(p) for p in excinfo.value.problems] == ["foo: unknown key 'foo'"]


# Limits: every refusal is one problem at its path, in bounded time (docs/definitions.md)

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
key: laughs
trigger: {event: go}
steps: [{tag: {add: [*i]}}]
"""


def load_problem(text: str, name: str = "flow.yaml") -> Problem:
    """The one problem of loading `text`, which must be refused at once (GUARD_SECONDS)."""
    started = time_module.perf_counter()
    with pytest.raises(DefinitionError) as excinfo:
        load_documents(text, name)
    assert time_module.perf_counter() - started < GUARD_SECONDS
    [problem] = excinfo.value.problems
    return problem


def deep_list_yaml(levels: int) -> str:
    return "key: deep\nx: " + "[" * levels + "]" * levels + "\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (BILLION_LAUGHS, "1:4"),
        # Deeper: each level nine times the one before, far past any memory.
        (
            "a0: &a0 [lol]\n"
            + "".join(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 40))
            + "key: x\n",
            "1:5",
        ),
        ("key: x\nsteps:\n  - &step {wait: 1d}\n  - *step\n", "3:5"),  # an anchor alone too
        ("key: x\nname: *nothing\n", "2:7"),  # an alias of no anchor
        ("key: a\n---\nkey: b\nx: &y 1\n", "4:4"),  # in a later document
    ],
)
def test_yaml_anchors_and_aliases_are_refused_at_once(text, where):
    problem = load_problem(text)
    assert problem.loc == "flow.yaml"
    assert problem.msg == (
        f"YAML anchor or alias at {where}: anchors (&name) and aliases (*name) are not "
        "accepted in definitions; write the value out"
    )


def test_the_billion_laughs_is_702_bytes_refused_in_milliseconds():
    assert len(BILLION_LAUGHS.encode()) < 800
    started = time_module.perf_counter()
    for _ in range(100):
        with pytest.raises(DefinitionError):
            load_documents(BILLION_LAUGHS)
    assert time_module.perf_counter() - started < 1  # 100 refusals: ~milliseconds each


@pytest.mark.parametrize(
    "text",
    [
        deep_list_yaml(65),
        deep_list_yaml(500),
        deep_list_yaml(100_000),
        "key: deep\nx:\n"
        + "".join("  " * n + f"k{n}:\n" for n in range(1, 500))
        + "  " * 500
        + "v",
        "key: deep\nx:\n" + "".join("  " * n + "-\n" for n in range(1, 500)) + "  " * 500 + "v",
    ],
    ids=["flow-65", "flow-500", "flow-100000", "block-mappings-500", "block-lists-500"],
)
def test_yaml_nested_too_deeply_is_one_problem_with_its_position(text):
    problem = load_problem(text)
    assert problem.loc == "flow.yaml"
    assert re.fullmatch(r"YAML nested more than 64 levels deep at \d+:\d+", problem.msg)


def test_yaml_nested_64_levels_deep_is_read():
    [document] = load_documents(deep_list_yaml(63))  # 63 lists in the top mapping
    assert document["key"] == "deep"


@pytest.mark.parametrize("levels", [65, 500, 100_000])
def test_json_nested_too_deeply_is_one_problem_at_its_path(levels):
    text = '{"key": "deep", "x": ' + "[" * levels + "]" * levels + "}"
    problem = load_problem(text, "flow.json")
    assert problem.msg == "nested more than 64 levels deep (at most 64)"
    assert problem.loc.startswith("flow.json")


@pytest.mark.parametrize("levels", [65, 500, 5000])
def test_a_parsed_document_nested_too_deeply_is_refused_at_its_path(levels):
    nested: list = []
    innermost = nested
    for _ in range(levels - 2):
        innermost.append([])
        innermost = innermost[0]
    assert problems({"key": "deep", "x": nested}) == [
        "x" + "[0]" * 63 + ": nested more than 64 levels deep (at most 64)"
    ]


def nested_ifs(levels: int) -> dict:
    step: dict = {"tag": {"add": ["deep"]}}
    for _ in range(levels):
        step = {"if": "visitor.vip", "then": [step]}
    return flow(step)


def test_steps_nested_in_branches_are_bounded_by_the_nesting_limit():
    assert len(list(iter_steps(validate_flow(nested_ifs(25)).steps))) == 26
    [problem] = problems(nested_ifs(40))
    assert (
        problem == "steps[0]" + ".then[0]" * 31 + ": nested more than 64 levels deep (at most 64)"
    )


def test_a_definition_over_1_mib_is_refused_before_it_is_read():
    doc = flow(*[{"tag": {"add": [f"tag-{n}"]}} for n in range(80_000)])
    started = time_module.perf_counter()
    [problem] = problems(doc)
    assert time_module.perf_counter() - started < GUARD_SECONDS
    assert re.fullmatch(r"the definition is 2\.\d MiB as JSON; at most 1 MiB", problem)


def test_a_text_over_1_mib_is_refused_before_it_is_parsed():
    text = "key: big\ntrigger: {event: go}\nsteps:\n" + "  - tag: {add: [a]}\n" * 80_000
    problem = load_problem(text)
    assert (problem.loc, problem.msg) == (
        "flow.yaml",
        "the text is 1.5 MiB; at most 1 MiB can be read at once",
    )


def test_a_flow_has_at_most_1000_steps_branches_included():
    assert len(validate_flow(flow(*[{"wait": "1d"}] * 1000)).steps) == 1000
    assert problems(flow(*[{"wait": "1d"}] * 1001)) == [
        "steps[1000]: more than 1000 steps in the flow"
    ]
    branched = flow(
        {"if": "visitor.vip", "then": [{"wait": "1d"}] * 600, "else": [{"wait": "1d"}] * 600}
    )
    assert problems(branched) == ["steps[0].else[399]: more than 1000 steps in the flow"]


CONDITION_BOMBS = {
    "500 parentheses": "(" * 500 + "visitor.vip" + ")" * 500,
    "500 ands": " and ".join(["visitor.vip"] * 501),
    "2000 nots": "not " * 2000 + "visitor.vip",
    "100000 parentheses": "(" * 100_000 + "a" + ")" * 100_000,
}


@pytest.mark.parametrize("source", CONDITION_BOMBS.values(), ids=CONDITION_BOMBS.keys())
def test_a_condition_nested_too_deeply_is_a_problem_at_its_path(source):
    doc = flow({"if": source, "then": [{"wait": "1d"}]}, trigger={"event": "go", "if": source})
    started = time_module.perf_counter()
    found = problems(doc)
    assert time_module.perf_counter() - started < GUARD_SECONDS
    assert [p.split(": ", 1)[0] for p in found] == ["trigger.if", "steps[0].if"]
    assert all(
        re.search(
            r": Liquid syntax error at 1:\d+: nested more than 50 levels deep \(each open "
            r"parenthesis and each and, or, not counts one; at most 50\)$",
            p,
        )
        for p in found
    )


@pytest.mark.parametrize("source", CONDITION_BOMBS.values(), ids=CONDITION_BOMBS.keys())
def test_a_template_tag_nested_too_deeply_is_a_problem_at_its_path(source):
    subject = "Hi {% if " + source + " %}VIP{% endif %}"
    [problem] = problems(flow({"email": {"subject": subject, "text": "x"}}))
    assert problem.startswith("steps[0].email.subject: Liquid syntax error at 1:")
    assert "nested more than 50 levels deep" in problem


def test_conditions_within_the_nesting_limit_still_work():
    chain = " or ".join(f"visitor.plan == 'p{n}'" for n in range(25))
    condition = step({"if": chain, "then": []}).action.condition
    assert condition.evaluate({"visitor": {"plan": "p24"}}).value is True
    quoted = step({"if": 'visitor.note == "' + " and " * 60 + '"', "then": []}).action.condition
    assert quoted.evaluate({"visitor": {"note": " and " * 60}}).value is True


HUGE_DURATIONS = ["900000000d", "3000000d", "P99999999D", "3651d", "1" * 5000 + "s"]
DURATION_PLACES = {
    "wait": ({"wait": "{d}"}, "steps[0].wait"),
    "wait.for": ({"wait": {"for": "{d}"}}, "steps[0].wait.for"),
    "wait.offset": ({"wait": {"until_field": "ends", "offset": "{d}"}}, "steps[0].wait.offset"),
    "wait.offset negative": (
        {"wait": {"until_field": "ends", "offset": "-{d}"}},
        "steps[0].wait.offset",
    ),
    "wait_for.timeout": (
        {"wait_for": {"event": "paid", "timeout": "{d}"}},
        "steps[0].wait_for.timeout",
    ),
    "webhook.timeout": (
        {"webhook": {"url": "https://example.com", "timeout": "{d}"}},
        "steps[0].webhook.timeout",
    ),
    "retries.backoff": (
        {"webhook": {"url": "https://example.com", "retries": {"attempts": 2, "backoff": "{d}"}}},
        "steps[0].webhook.retries.backoff",
    ),
    "in a branch": ({"if": "visitor.vip", "then": [{"wait": "{d}"}]}, "steps[0].then[0].wait"),
}


def with_duration(template, duration: str):
    return json.loads(json.dumps(template).replace("{d}", duration))


@pytest.mark.parametrize("duration", HUGE_DURATIONS)
@pytest.mark.parametrize("place", DURATION_PLACES.values(), ids=DURATION_PLACES.keys())
def test_a_duration_over_10_years_is_a_problem_at_its_path(place, duration):
    template, loc = place
    written = json.dumps(template).count("-{d}") * "-" + duration
    quoted = (
        repr(written) if len(written) <= 40 else f"{written[:30]!r}… ({len(written)} characters)"
    )
    assert problems(flow(with_duration(template, duration))) == [
        f"{loc}: duration {quoted} is too long: at most 3650d (10 years)"
    ]


@pytest.mark.parametrize("duration", HUGE_DURATIONS)
def test_a_cooldown_over_10_years_is_a_problem(duration):
    [problem] = problems(flow({"wait": "1d"}, cooldown=duration))
    assert problem.startswith("cooldown: duration ")
    assert problem.endswith(" is too long: at most 3650d (10 years)")


def test_durations_up_to_10_years_are_accepted_in_yaml():
    [doc] = load_documents(
        "key: long\ntrigger: {event: go}\ncooldown: 3650d\nsteps:\n"
        "  - wait: P3650D\n  - wait: {until_field: ends, offset: -521w}\n"
        "  - webhook: {url: 'https://example.com', retries: {attempts: 2, backoff: 3650d}}\n"
    )
    flow_def = validate_flow(doc)
    assert flow_def.cooldown == timedelta(days=3650)
    assert flow_def.steps[3 - 1].action.retries.backoff == timedelta(days=3650)


def test_the_backoff_from_the_issue_is_refused_in_yaml():
    [doc] = load_documents(
        "key: hook\ntrigger: {event: go}\nsteps:\n"
        "  - webhook: {url: 'https://example.com', retries: {backoff: 900000000d}}\n"
    )
    assert problems(doc) == [
        "steps[0].webhook.retries.backoff: duration '900000000d' is too long: "
        "at most 3650d (10 years)"
    ]


def test_retries_whose_last_delay_passes_10_years_are_refused():
    def hook(retries):
        return flow({"webhook": {"url": "https://example.com", "retries": retries}})

    # 11 minutes doubled 18 times is 2002 days; doubled 19 times, 4004 days.
    assert validate_flow(hook({"attempts": 20})).steps[0].action.retries.attempts == 20
    assert problems(hook({"attempts": 21})) == [
        "steps[0].webhook.retries: 21 attempts with a backoff of 11m (doubled after each "
        "attempt) would wait more than 3650d (10 years) before the last one: use fewer "
        "attempts or a shorter backoff"
    ]
    assert problems(hook(21)) == problems(hook({"attempts": 21}))
    started = time_module.perf_counter()
    assert problems(hook({"attempts": 10**18, "backoff": "1s"})) == [
        f"steps[0].webhook.retries: {10**18} attempts with a backoff of 1s (doubled after "
        "each attempt) would wait more than 3650d (10 years) before the last one: use fewer "
        "attempts or a shorter backoff"
    ]
    assert problems(hook(10**18))[0].startswith(f"steps[0].webhook.retries: {10**18} attempts")
    assert time_module.perf_counter() - started < GUARD_SECONDS


@pytest.mark.parametrize(
    ("until", "message"),
    [
        ("9999-12-31T23:00:00-05:00", "time '9999-12-31T23:00:00-05:00' is out of range"),
        ("0001-01-01T00:00:00+05:00", "time '0001-01-01T00:00:00+05:00' is out of range"),
        (
            "3000-01-01T00:00:00Z",
            "time '3000-01-01T00:00:00+00:00' is too late: it must come before 3000-01-01",
        ),
    ],
)
def test_an_absolute_time_out_of_range_is_a_problem(until, message):
    assert problems(flow({"wait": {"until": until}})) == [f"steps[0].wait.until: {message}"]


def test_an_absolute_time_before_the_year_3000_is_accepted():
    wait = step({"wait": {"until": "2999-12-31T23:59:59+00:00"}}).action
    assert wait.until == datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_a_split_branch_may_have_weight_0_if_another_has_more():
    split = step({"split": [{"weight": 0, "steps": []}, {"weight": 1, "steps": []}]}).action
    assert [b.weight for b in split.branches] == [0, 1]
    assert problems(flow({"split": [{"weight": 0, "steps": []}, {"weight": 0, "steps": []}]})) == [
        "steps[0].split: at least one branch needs a weight above 0"
    ]
    assert problems(flow({"split": [{"weight": -1, "steps": []}, {"weight": 1, "steps": []}]})) == [
        "steps[0].split[0].weight: must be at least 0"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("key: x\nn: " + "1" * 5000 + "\n", "a number has more than 4300 digits at 2:4"),
        (
            "key: x\nwhen: 2026-02-30\n",
            "a value cannot be read: day is out of range for month at 2:7",
        ),
        (
            "key: x\nsteps: [{wait: {until: 2026-02-30T10:00:00Z}}]\n",
            "a value cannot be read: day is out of range for month at 2:24",
        ),
    ],
)
def test_a_value_python_cannot_build_is_one_problem_at_its_position(text, message):
    problem = load_problem(text)
    assert (problem.loc, problem.msg) == ("flow.yaml", message)


def test_an_integer_beyond_64_bits_is_a_problem_at_its_path():
    doc = flow({"field": {"set": {"n": 2**64, "m": 2**64 - 1, "k": -(2**63)}}})
    assert problems(doc) == [
        "steps[0].field.set.n: integer out of range (at most 64 bits; write it as a string)"
    ]


def test_a_yaml_text_of_more_than_100000_values_is_refused_before_they_are_built():
    text = "key: big\ntrigger: {event: go}\nsteps:\n" + "  - tag: {add: [a]}\n" * 52_000
    assert len(text.encode()) < 1024 * 1024  # within the size limit
    problem = load_problem(text)
    assert (problem.loc, problem.msg) == (
        "flow.yaml",
        "YAML text holds more than 100000 values, keys included (passed at 16669:5)",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1", "expected an http:// or https:// URL (Invalid IPv6 URL)"),
        ("http://::1]/", "expected an http:// or https:// URL (Invalid IPv6 URL)"),
    ],
)
def test_a_url_urlsplit_cannot_read_is_a_problem_at_its_path(url, message):
    assert problems(flow({"webhook": {"url": url}})) == [f"steps[0].webhook.url: {message}"]


def test_a_reader_that_fails_on_odd_input_gives_a_problem_at_its_path():
    """Any ValueError, OverflowError or TypeError a reader meets is a problem at the path
    of the value read (here a YAML datetime on a day the zone cannot reach)."""
    [document] = load_documents(
        "key: t\ntrigger: {event: go}\nsteps:\n"
        "  - wait: {until: 9999-12-31T23:00:00-05:00}\n"
        "  - webhook: {url: 'http://[::1'}\n"
    )
    assert problems(document) == [
        "steps[0].wait.until: time '9999-12-31T23:00:00-05:00' is out of range",
        "steps[1].webhook.url: expected an http:// or https:// URL (Invalid IPv6 URL)",
    ]


def test_a_timezone_is_saved_as_its_canonical_name():
    definition = validate_flow(flow({"exit": True}, timezone="europe/berlin"))
    assert definition.source["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize("name", ["localtime", "posixrules", "Factory", "factory", "Europe"])
def test_a_zone_file_that_names_no_place_is_not_a_timezone(name):
    assert problems(flow({"exit": True}, timezone=name)) == [
        f"timezone: unknown time zone {name!r}"
    ]


@pytest.mark.parametrize(
    ("text", "loc", "message"),
    [
        (
            "key: a\ntrigger: {event: x}\ntrigger: {event: y}\n",
            "f.yaml",
            'duplicate key "trigger" at 3:1',
        ),
        (
            "key: a\nsteps: []\nx: {a: 1, a: 2}\nsteps: []\n",
            "f.yaml",
            'duplicate key "steps" at 4:1',
        ),
        ('{"key": "a", "key": "b"}', "f.yaml", 'duplicate key "key" in a JSON object'),
        (
            '{"key": "a", "n": ' + "1" * 5000 + "}",
            "f.yaml: n",
            "integer out of range (at most 64 bits; write it as a string)",
        ),
        (
            '{"key": "a", "n": 18446744073709551616}',
            "f.yaml: n",
            "integer out of range (at most 64 bits; write it as a string)",
        ),
        (
            '{"key": ' + "[" * 3000 + "]" * 3000 + "}",
            "f.yaml",
            "nested more than 64 levels deep (at most 64)",
        ),
        ('{"key": "a", "n": NaN}', "f.yaml: n", "not a finite number (nan; write it as a string)"),
        (
            '{"key": "a", "n": 1e400}',
            "f.yaml: n",
            "not a finite number (inf; write it as a string)",
        ),
    ],
)
def test_a_text_with_a_key_twice_or_a_number_json_cannot_hold_is_refused(text, loc, message):
    problem = load_problem(text, "f.yaml")
    assert (problem.loc, problem.msg) == (loc, message)


@pytest.mark.parametrize(
    ("value", "shown"), [(".nan", "nan"), (".inf", "inf"), ("-.inf", "-inf"), ("1e400", "inf")]
)
def test_a_yaml_number_that_is_not_finite_is_a_problem_at_its_path(value, shown):
    [document] = load_documents(
        f"key: t\ntrigger: {{event: go}}\nsteps: [{{field: {{set: {{n: {value}}}}}}}]\n"
    )
    assert problems(document) == [
        f"steps[0].field.set.n: not a finite number ({shown}; write it as a string)"
    ]


# A NUL is refused earlier, as no stored text may hold one (the NUL tests below).
@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\x01b", "a\x7f"])
def test_a_literal_header_with_a_control_character_is_a_problem_at_its_path(value):
    hook = {"webhook": {"url": "https://example.com", "headers": {"X-Lit": value, "X-Ok": "a\tb"}}}
    assert problems(flow(hook)) == [
        "steps[0].webhook.headers.X-Lit: a header value may not hold a control character "
        "(a line break, a NUL…): it would end the header or the request"
    ]


def test_integers_read_as_yaml_1_2_writes_them():
    """`010` is ten and `08` eight (YAML 1.2), not octal nor an unreadable value."""
    [document] = load_documents("a: 010\nb: 08\nc: -0x1F\nd: 1_000\ne: 0b101\n")
    assert document == {"a": 10, "b": 8, "c": -31, "d": 1000, "e": 5}


@pytest.mark.parametrize(
    ("text", "loc", "said"),
    [
        ('key: n\nname: "a\\0b"\ntrigger: {event: a}\nsteps: []\n', "name", "NUL"),
        (
            '{"key": "n", "name": "X\\ud800", "trigger": {"event": "a"}, "steps": []}',
            "name",
            "surrogate",
        ),
        ('key: n\nname: n\ntrigger: {event: a}\nsteps: []\n"k\\0": 1\n', "k", "NUL"),
    ],
)
def test_text_that_cannot_be_stored_is_refused_where_it_is(text, loc, said):
    """A NUL (escaped in YAML) or a lone surrogate (escaped in JSON) passes the raw
    text's checks but no database stores it: refused at its loc, nothing saved."""
    with pytest.raises(DefinitionError) as refused:
        validate_documents(
            [("d", d) for d in load_documents(text)], known_flows=set(), known_templates=set()
        )
    [problem] = refused.value.problems
    assert problem.loc.startswith(loc) or loc in problem.loc
    assert said in problem.msg
