"""Templates and conditions as flow authors write them (SPEC §2.4, §2.5)."""

import json
import time
from datetime import UTC, datetime

import pytest

from sluice.definitions.liquid import (
    Condition,
    Template,
    TemplatedValue,
    TemplatedValueError,
    TemplateError,
)


def context(**overrides):
    """A render context shaped like the engine's (SPEC §2.5)."""
    base = {
        "visitor": {
            "email": "ada@example.com",
            "tags": ["vip", "activated"],
            "fields": {"first_name": "Ada", "plan": "free"},
            "first_name": "Ada",
            "plan": "free",
        },
        "event": {"type": "$purchase", "details": {"amount": 150, "currency": "EUR"}},
        "flow": {"key": "onboarding", "name": "Onboarding", "version": 3},
        "now": "2026-01-05T08:00:00+00:00",
    }
    return base | overrides


def compile_error(source, kind=Template):
    with pytest.raises(TemplateError) as excinfo:
        kind.compile(source)
    return str(excinfo.value)


# Templates


def test_template_renders_context_and_standard_filters():
    template = Template.compile('Welcome, {{ visitor.first_name | default: "friend" }}!')
    assert template.render(context()) == "Welcome, Ada!"
    assert Template.compile("{{ visitor.tags | join: ', ' | upcase }}").render(context()) == (
        "VIP, ACTIVATED"
    )


def test_missing_variables_render_as_empty():
    template = Template.compile("Hi {{ visitor.nickname }}{{ nothing.at.all }}!")
    assert template.render(context()) == "Hi !"
    assert Template.compile('{{ visitor.nickname | default: "friend" }}').render({}) == "friend"


def test_plain_text_renders_as_itself():
    template = Template.compile("You left something behind")
    assert template.is_literal
    assert template.render({}) == "You left something behind"
    assert template.source == "You left something behind"


def test_syntax_error_names_line_and_column_in_the_template():
    assert compile_error("Welcome, {{ } }}!") == "Liquid syntax error at 1:13: unexpected '}'"
    assert compile_error("<p>\n  {{ visitor.name | }}\n</p>").startswith(
        "Liquid syntax error at 2:"
    )


def test_unclosed_block_is_reported_at_the_end():
    message = compile_error("{% for item in items %}{{ item }}")
    assert message == "Liquid syntax error at 1:34: expected tag endfor, found end of expression"


def test_unknown_filter_is_a_compile_error():
    message = compile_error("{{ visitor.first_name | shout }}")
    assert message == "Liquid syntax error at 1:25: unknown filter 'shout'"


def test_partials_are_not_available():
    assert "unexpected tag 'include'" in compile_error("{% include 'footer' %}")
    assert "unexpected tag 'render'" in compile_error("{% render 'footer' %}")


def test_loop_limit_trips_with_a_template_error():
    template = Template.compile("{% for i in (1..100000) %}x{% endfor %}")
    with pytest.raises(TemplateError, match="loop iteration limit reached"):
        template.render({})


def test_output_limit_trips_with_a_template_error():
    template = Template.compile(
        "{% for i in (1..5000) %}{{ big }}{% endfor %}",
    )
    with pytest.raises(TemplateError, match="output stream limit reached"):
        template.render({"big": "x" * 1000})


def test_filter_failure_at_render_is_a_template_error():
    template = Template.compile('{{ visitor.first_name | truncate: "ten" }}')
    with pytest.raises(
        TemplateError, match=r"^Liquid error at 1:\d+: truncate expected an integer"
    ):
        template.render(context())


def test_templates_compare_by_source():
    assert Template.compile("{{ a }}") == Template.compile("{{ a }}")
    assert Template.compile("{{ a }}") != Template.compile("{{ b }}")


# Conditions


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('visitor.tags contains "vip"', True),
        ('visitor.tags contains "churned"', False),
        ('visitor.email contains "@example"', True),
        ("event.details.amount > 100", True),
        ("event.details.amount >= 150", True),
        ("event.details.amount < 150", False),
        ("event.details.amount <= 150", True),
        ('visitor.plan == "free"', True),
        ('visitor.plan != "free"', False),
        ("visitor.nickname == nil", True),
        ("visitor.nickname", False),
        ("visitor.nickname > 3", False),
        ("visitor.tags == empty", False),
        ("event.details.missing == empty", False),
        ('not visitor.plan == "free"', False),
        ('not (visitor.plan == "free")', False),
        ("not false and false", False),
        ("false and false or true", False),
        ("(false and false) or true", True),
        (
            'visitor.tags contains "vip" and '
            '(event.details.amount > 100 or not (visitor.plan == "free"))',
            True,
        ),
    ],
)
def test_conditions_evaluate_like_liquid(source, expected):
    result = Condition.compile(source).evaluate(context())
    assert result.error is None
    assert result.value is expected


def test_blank_and_empty():
    ctx = {"s": "", "spaces": "  ", "items": [], "obj": {}, "word": "x"}
    assert Condition.compile("s == empty and items == empty and obj == empty").evaluate(ctx).value
    assert Condition.compile("spaces == blank and s == blank").evaluate(ctx).value
    assert not Condition.compile("word == blank").evaluate(ctx).value


def test_not_binds_tighter_than_and():
    # (not false) and false: python-liquid's own parser would read not (false and false).
    assert Condition.compile("not false and false").evaluate({}).value is False
    assert Condition.compile("not false and true").evaluate({}).value is True


def test_reads_record_every_path_with_its_value():
    condition = Condition.compile(
        'visitor.tags contains "vip" and (event.details.amount > 100 or visitor.nickname)'
    )
    result = condition.evaluate(context())
    assert result.reads == {
        "visitor.tags": ["vip", "activated"],
        "event.details.amount": 150,
        "visitor.nickname": None,
    }


def test_reads_are_json_serialisable():
    when = datetime(2026, 1, 5, 8, tzinfo=UTC)
    result = Condition.compile("visitor.created_at and visitor.fields").evaluate(
        context(visitor={"created_at": when, "fields": {"score": 3}})
    )
    assert json.loads(json.dumps(result.reads)) == {
        "visitor.created_at": "2026-01-05T08:00:00+00:00",
        "visitor.fields": {"score": 3},
    }


def test_reads_include_paths_inside_brackets():
    result = Condition.compile('visitor.fields[event.details.key] == "x"').evaluate(
        {"visitor": {"fields": {"plan": "x"}}, "event": {"details": {"key": "plan"}}}
    )
    assert result.value is True
    assert result.reads == {"visitor.fields[event.details.key]": "x", "event.details.key": "plan"}


def test_runtime_error_makes_the_condition_false_with_the_error():
    result = Condition.compile("event.details.currency > 100").evaluate(context())
    assert result.value is False
    assert result.error is not None
    assert result.error.startswith("Liquid error at 1:")
    assert "not supported" in result.error
    assert result.reads == {"event.details.currency": "EUR"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("visitor.plan ==", "Liquid syntax error at 1:16: expected a primitive expression"),
        ("(visitor.vip", "Liquid syntax error at 1:13: expected ')'"),
        ("visitor.vip )", "Liquid syntax error at 1:13: unexpected rparen ')'"),
        ("visitor.plan | upcase", "Liquid syntax error at 1:14: unexpected pipe '|'"),
        ("a = 1", "Liquid syntax error at 1:3: unexpected "),
        ("", "Liquid syntax error at 1:1: expected a primitive expression"),
    ],
)
def test_condition_syntax_errors(source, message):
    assert compile_error(source, Condition).startswith(message)


# Templated values


def test_templated_value_keeps_json_types_and_renders_strings():
    value = TemplatedValue.compile(
        {
            "email": "{{ visitor.email }}",
            "amount": 150,
            "ratio": 0.5,
            "vip": True,
            "nothing": None,
            "list": ["{{ flow.key }}", 2, {"nested": "v{{ flow.version }}"}],
        },
        "steps[0].webhook.body",
    )
    assert value.render(context()) == {
        "email": "ada@example.com",
        "amount": 150,
        "ratio": 0.5,
        "vip": True,
        "nothing": None,
        "list": ["onboarding", 2, {"nested": "v3"}],
    }


def test_templated_value_reports_every_bad_leaf_by_path():
    with pytest.raises(TemplatedValueError) as excinfo:
        TemplatedValue.compile({"a": "{{ }}", "b": ["ok", "{{ x | nope }}"]}, "body")
    assert [loc for loc, _ in excinfo.value.problems] == ["body.a", "body.b[1]"]
    assert "unknown filter 'nope'" in excinfo.value.problems[1][1]


def test_templated_value_source_is_json_compatible():
    value = TemplatedValue.compile({"at": datetime(2026, 1, 5, tzinfo=UTC), "n": 1})
    assert value.source == {"at": "2026-01-05T00:00:00+00:00", "n": 1}
    assert value.render({}) == value.source


# Limits on what filters build (ranges, text, lists, numbers, the work of a render)

BIG = "a" * 600_000
LIMIT_CONTEXT = {
    "event": {
        "details": {
            "n": 100_000_000,
            "big": BIG,
            "text": "a" * 100_000,
            "numbers": list(range(5000)),
            "words": ["w" * 1000] * 5000,
        }
    }
}


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            "{{ (1..100000000) | reverse | first }}",
            "loop iteration limit reached: a range of 100000000 items (at most 10000)",
        ),
        (
            "{{ (1..event.details.n) | join | size }}",
            "loop iteration limit reached: a range of 100000000 items",
        ),
        ("{{ (1..3) | concat: (1..event.details.n) }}", "a range of 100000000 items"),
        ("{% for i in (1..event.details.n) %}{{ i }}{% endfor %}", "loop iteration limit"),
        (
            "{{ event.details.big | append: event.details.big }}",
            "output limit reached: append would make 1200000 characters (at most 1048576)",
        ),
        (
            "{{ event.details.big | prepend: event.details.big }}",
            "output limit reached: prepend would make 1200000 characters",
        ),
        (
            '{{ event.details.text | replace: "a", "aaaaaaaaaaaa" }}',
            "output limit reached: replace would make 1200000 characters",
        ),
        (
            "{{ event.details.words | join: '' }}",
            "output limit reached: join would make 5000000 characters",
        ),
        (
            "{{ event.details.numbers | join: event.details.text }}",
            "output limit reached: join would make",
        ),
        (
            "{{ event.details.text | split: '' | size }}",
            "loop iteration limit reached: split would make a list of 100000 items (at most 10000)",
        ),
        (
            "{{ event.details.text | split: 'a' | size }}",
            "split would make a list of 100001 items",
        ),
        (
            "{{ event.details.numbers | concat: event.details.numbers | concat: "
            "event.details.numbers | size }}",
            "concat would make a list of 15000 items",
        ),
        (
            "{% assign x = 2 %}{% for i in (1..64) %}{% assign x = x | times: x %}{% endfor %}",
            "number limit reached: times would make a number of more than 4300 digits",
        ),
        (
            '{% for i in (1..10000) %}{% assign s = s | append: "xxxxxxxxxx" %}{% endfor %}',
            "filter work limit reached: filters read and wrote more than 4194304 characters",
        ),
        (
            '{% for i in (1..10000) %}{{ event.details.text | replace: "a", "b" | size }}'
            "{% endfor %}",
            "filter work limit reached",
        ),
        (
            "{% for i in (1..10000) %}{{ event.details.big | remove: 'a' | size }}{% endfor %}",
            "filter work limit reached",
        ),
        (
            "{% for i in (1..10000) %}{{ event.details.numbers | sort | last }}{% endfor %}",
            "filter work limit reached: filters read and wrote more than 100000 list items",
        ),
    ],
)
def test_filters_are_held_to_the_limits_quickly(source, error):
    template = Template.compile(source)
    started = time.monotonic()
    with pytest.raises(TemplateError) as excinfo:
        template.render(LIMIT_CONTEXT)
    assert time.monotonic() - started < 2
    assert str(excinfo.value).startswith("Liquid error at 1:")
    assert error in str(excinfo.value)


def test_filters_within_the_limits_work_as_in_liquid():
    source = (
        "{{ (1..10000) | reverse | first }} {{ event.details.numbers | sort | last }} "
        "{{ event.details.text | append: '!' | size }} {{ event.details.numbers | size }} "
        "{% for i in (1..100) %}{{ event.details.big | size | minus: 600000 }}{% endfor %}"
    )
    started = time.monotonic()
    assert Template.compile(source).render(LIMIT_CONTEXT) == "10000 4999 100001 5000 " + "0" * 100
    assert time.monotonic() - started < 2


def test_a_limit_error_in_a_webhook_value_names_the_limit():
    value = TemplatedValue.compile({"all": "{{ (1..event.details.n) | join }}"})
    with pytest.raises(TemplateError, match="a range of 100000000 items"):
        value.render(LIMIT_CONTEXT, keep_types=True)


# Lists and objects as text, and the json filter


def test_lists_and_objects_render_as_json_in_text():
    ctx = context(event={"details": {"items": [{"sku": "X1", "qty": 2}], "tags": ["a", "b"]}})
    assert Template.compile("{{ event.details.items }}").render(ctx) == '[{"sku": "X1", "qty": 2}]'
    assert Template.compile("Tags: {{ event.details.tags }}").render(ctx) == 'Tags: ["a", "b"]'
    assert Template.compile("{{ event.details.items | join: '; ' }}").render(ctx) == (
        '{"sku": "X1", "qty": 2}'
    )
    assert (
        Template.compile("{{ event.details | append: '' }}")
        .render(ctx)
        .startswith('{"items": [{"sku": "X1"')
    )


def test_the_json_filter_renders_any_value_as_json():
    ctx = context(event={"details": {"items": [{"sku": "X1"}], "note": 'say "hi"', "n": 1.5}})
    render = lambda source: Template.compile(source).render(ctx)  # noqa: E731
    assert render("{{ event.details.items | json }}") == '[{"sku": "X1"}]'
    assert render("{{ event.details.note | json }}") == '"say \\"hi\\""'
    assert render("{{ event.details.n | json }}") == "1.5"
    assert render("{{ visitor.missing | json }}") == "null"
    assert render("{{ (1..3) | json }}") == "[1, 2, 3]"
    assert render("{{ 'café' | json }}") == '"café"'


# Webhook bodies: a value that is exactly one output keeps its JSON type


def test_a_single_output_keeps_the_json_type_of_its_value():
    ctx = context(
        event={
            "details": {
                "amount": 150,
                "ratio": 0.25,
                "paid": True,
                "items": [{"sku": "X1", "qty": 2}],
                "customer": {"id": 7},
            }
        }
    )
    body = TemplatedValue.compile(
        {
            "amount": "{{ event.details.amount }}",
            "cents": "{{ event.details.amount | times: 100 }}",
            "ratio": "{{ event.details.ratio }}",
            "paid": "{{ event.details.paid }}",
            "missing": "{{ event.details.missing }}",
            "items": "{{ event.details.items }}",
            "customer": " {{- event.details.customer -}} ",
            "skus": "{{ event.details.items | map: 'sku' }}",
            "label": "Order of {{ event.details.amount }}",
            "as_text": "{{ event.details.items | json }}",
            "pair": "{{ event.details.amount }}{{ event.details.ratio }}",
            "tags": "{{ visitor.tags }}",
        }
    )
    assert body.render(ctx, keep_types=True) == {
        "amount": 150,
        "cents": 15000,
        "ratio": 0.25,
        "paid": True,
        "missing": None,
        "items": [{"sku": "X1", "qty": 2}],
        "customer": {"id": 7},
        "skus": ["X1"],
        "label": "Order of 150",
        "as_text": '[{"sku": "X1", "qty": 2}]',
        "pair": "1500.25",
        "tags": ["vip", "activated"],
    }
    # Field values and event details stay text, as documented for them.
    assert body.render(ctx)["amount"] == "150"


# HTML escaping in an email's HTML


def test_data_is_html_escaped_in_html_and_raw_opts_out():
    link = '<a href="https://evil.example/">Claim</a>'
    ctx = context(
        visitor={"first_name": link, "bio": "<b>bold</b>", "tags": ["<i>"], "plan": "a&b"}
    )
    html = Template.compile(
        '<p class="hi">Hi {{ visitor.first_name }}</p>{{ visitor.bio | raw }}'
        "{{ visitor.tags }}{{ visitor.plan | upcase }}",
        html=True,
    )
    assert html.render(ctx) == (
        '<p class="hi">Hi &lt;a href=&#34;https://evil.example/&#34;&gt;Claim&lt;/a&gt;</p>'
        "<b>bold</b>[&#34;&lt;i&gt;&#34;]A&amp;B"
    )
    text = Template.compile("Hi {{ visitor.first_name }}")
    assert text.render(ctx) == f"Hi {link}"


def test_html_written_in_the_template_is_not_escaped_nor_escaped_twice():
    ctx = context(visitor={"first_name": "Ann & Bo", "url": "https://x.example/?a=1&b=2"})
    source = (
        "{% capture greeting %}<b>{{ visitor.first_name }}</b>{% endcapture %}"
        "{{ greeting }} {{ visitor.nickname | default: '<i>friend</i>' }} "
        "{{ visitor.first_name | escape }} {{ '<br>' | append: visitor.first_name }} "
        '<a href="{{ visitor.url }}">go</a>'
    )
    assert Template.compile(source, html=True).render(ctx) == (
        "<b>Ann &amp; Bo</b> <i>friend</i> Ann &amp; Bo <br>Ann &amp; Bo "
        '<a href="https://x.example/?a=1&amp;b=2">go</a>'
    )


# The clock


def test_now_and_today_follow_the_renders_now():
    source = '{{ "now" | date: "%Y-%m-%d %H:%M" }} {{ "today" | date: "%Y" }} {{ today }}'
    ctx = context(now="2031-07-04T09:30:00+00:00")
    assert Template.compile(source).render(ctx) == "2031-07-04 09:30 2031 2031-07-04"
