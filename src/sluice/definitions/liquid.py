"""Liquid templates and conditions, compiled at validation time, rendered in a sandbox.

Templates (SPEC §2.5) and conditions (SPEC §2.4) are python-liquid, rendered in the
environments of `sandbox`: its limits (loops, output, what filters build and do),
its additions (`json`, `raw`, lists and objects written as JSON, `now`/`today` on the
render's clock) and HTML escaping for an email's HTML (`Template.compile(html=True)`).
An unknown filter is a compile error here (python-liquid would only fail at render
time). A missing variable renders as empty and compares as `nil`.
A condition, and the expression of each template tag, nests at most
`limits.MAX_EXPRESSION_DEPTH` levels: checked on the text before it is parsed, since
parsing and evaluating recurse once per level.

The context the engine renders with (SPEC §2.5):

- `visitor`: `email`, `uuid`, `tags`, `fields`, `subscribed`, `created_at`, and every
  field directly (`visitor.first_name`) unless it collides with one of those names;
- `event`: the origin event (`type`, `details`, `date`); in `wait_for`'s `if`, the
  awaited event instead;
- `origin`: the origin event, always;
- `last_event`: the event that last ended a `wait_for`, else nil;
- `flow`: `key`, `name`, `version`;
- `session`: `id`, `started_at`;
- `now`: the current time, ISO 8601 (always supply it: `"now" | date` and `today`
  read it, and without it they read the system clock);
- `unsubscribe_url`: a signed one-click unsubscribe link (emails only).

Conditions are parsed here rather than by python-liquid's `if` tag, for one reason: its
`not` swallows everything to its right (`not a and b` meant `not (a and b)`). Here `not`
binds tighter than `and`/`or` and looser than comparisons, so `not a == 1 and b` means
`(not (a == 1)) and b`. As in Liquid, `and` and `or` have equal precedence and group from
the right: `a and b or c` means `a and (b or c)`; use parentheses to say otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from liquid import RenderContext, TokenStream, is_undefined
from liquid.ast import Node
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions import Path, tokenize
from liquid.builtin.expressions.logical import (
    PRECEDENCE_LOGICAL_OR,
    PRECEDENCE_LOWEST,
    PRECEDENCE_PREFIX,
    PRECEDENCES,
    ContainsExpression,
    EqExpression,
    GeExpression,
    GtExpression,
    LeExpression,
    LogicalAndExpression,
    LogicalNotExpression,
    LogicalOrExpression,
    LtExpression,
    NeExpression,
    is_truthy,
    parse_boolean_primitive,
)
from liquid.builtin.output import OutputNode
from liquid.exceptions import LiquidError, LiquidSyntaxError
from liquid.expression import Expression
from liquid.token import (
    TOKEN_AND,
    TOKEN_CONTAINS,
    TOKEN_EOF,
    TOKEN_EQ,
    TOKEN_EXPRESSION,
    TOKEN_GE,
    TOKEN_GT,
    TOKEN_LE,
    TOKEN_LG,
    TOKEN_LPAREN,
    TOKEN_LT,
    TOKEN_NE,
    TOKEN_NOT,
    TOKEN_OR,
    TOKEN_RPAREN,
    Token,
)

from sluice.definitions import sandbox
from sluice.definitions.limits import expression_problem, template_problem
from sluice.definitions.values import item_loc, key_loc, to_jsonable

_ENV = sandbox.TEXT
_EMPTY = _ENV.from_string("")


class TemplateError(Exception):
    """A template or condition that does not compile, or fails to render."""


def _line_col(err: LiquidError) -> tuple[int, int] | None:
    """Where `err` happened, 1-based, or None when python-liquid does not know."""
    try:
        context = err.context()
    except ValueError:  # an index past the end of the source
        return None
    return (context[0], context[1] + 1) if context else None


def _end_of(source: str) -> tuple[int, int]:
    lines = source.split("\n")
    return len(lines), len(lines[-1]) + 1


def _syntax_error(err: LiquidError, source: str) -> TemplateError:
    """`Liquid syntax error at LINE:COL: DETAIL`; errors without a position are
    reported at the end of the source, where something was expected."""
    line, col = _line_col(err) or _end_of(source)
    return TemplateError(f"Liquid syntax error at {line}:{col}: {err.message}")


def _render_error(err: LiquidError) -> TemplateError:
    where = _line_col(err)
    at = f" at {where[0]}:{where[1]}" if where else ""
    return TemplateError(f"Liquid error{at}: {err.message}")


def _nesting_error(source: str, found: tuple[int, str]) -> TemplateError:
    index, msg = found
    line = source.count("\n", 0, index) + 1
    col = index - (source.rfind("\n", 0, index) + 1) + 1
    return TemplateError(f"Liquid syntax error at {line}:{col}: {msg}")


def _has_markup(source: str) -> bool:
    return "{{" in source or "{%" in source


class Template:
    """A compiled Liquid template; `source` is the text as written, `html` whether
    values output from data are HTML-escaped (an email's HTML)."""

    __slots__ = ("_bound", "html", "source")

    def __init__(self, source: str, bound: Any = None, *, html: bool = False):
        self.source = source
        self.html = html
        self._bound = bound

    @classmethod
    def compile(cls, source: str, *, html: bool = False) -> Template:
        """Compile `source`; `TemplateError` on a syntax error or an unknown filter.
        With `html`, values output from data are HTML-escaped unless `| raw`."""
        if not _has_markup(source):
            return cls(source, html=html)  # plain text: rendering returns it as is
        too_deep = template_problem(source)
        if too_deep:
            raise _nesting_error(source, too_deep)
        env = sandbox.HTML if html else sandbox.TEXT
        try:
            bound = env.from_string(source)
        except LiquidError as err:
            raise _syntax_error(err, source) from err
        for name, spans in bound.analyze(include_partials=False).filters.items():
            if name not in env.filters:
                line, col = spans[0].line_col(source)
                raise TemplateError(
                    f"Liquid syntax error at {line}:{col + 1}: unknown filter '{name}'"
                )
        return cls(source, bound, html=html)

    @property
    def is_literal(self) -> bool:
        """True when the source has no Liquid markup: it renders as itself."""
        return self._bound is None

    @property
    def is_single_output(self) -> bool:
        """True when the source is one output statement (`{{ x }}`, surrounding
        whitespace aside): its value can keep its JSON type (`render_value`)."""
        nodes = self._bound.nodes if self._bound is not None else []
        outputs = [n for n in nodes if not _is_whitespace(n)]
        return len(outputs) == 1 and isinstance(outputs[0], OutputNode)

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with `context`; `TemplateError` when a limit is hit or a filter fails."""
        if self._bound is None:
            return self.source
        return _guarded(lambda: self._bound.render(context))

    def render_value(self, context: Mapping[str, Any]) -> Any:
        """A single output's value as JSON types (SPEC §7: a webhook body value that is
        exactly `'{{ x }}'` keeps the type of `x`); any other template's text."""
        if not self.is_single_output:
            return self.render(context)
        output = next(n for n in self._bound.nodes if not _is_whitespace(n))
        render_context = sandbox.SandboxContext(self._bound, globals=dict(context))
        return _guarded(lambda: sandbox.plain(output.expression.evaluate(render_context)))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Template) and other.source == self.source and other.html == self.html
        )

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _guarded(render: Callable[[], Any]) -> Any:
    """`render()`, its result checked by `_without_nul`; every failure of it as a
    `TemplateError`, since a template is user code over user data: it never raises
    anything else."""
    try:
        return _without_nul(render())
    except TemplateError:
        raise
    except LiquidError as err:
        raise _render_error(err) from err
    except Exception as err:
        raise TemplateError(f"Liquid error: {type(err).__name__}: {err}") from err


def _without_nul(value: Any) -> Any:
    """`value`, unless a string in it holds a NUL character (`url_decode` of `%00`,
    say): PostgreSQL cannot store one in text or JSON, so on both databases the step
    that rendered it fails instead of one database storing it and the other failing
    the whole session's save."""
    if isinstance(value, str):
        if "\x00" in value:
            raise TemplateError("the rendered text contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _without_nul(key)
            _without_nul(item)
    elif isinstance(value, list):
        for item in value:
            _without_nul(item)
    return value


def _is_whitespace(node: Node) -> bool:
    return isinstance(node, ContentNode) and not node.text.strip()


@dataclass(frozen=True)
class ConditionResult:
    value: bool
    reads: dict[str, Any]
    """Every variable path the condition reads, with its value (None when undefined),
    JSON-compatible, so the timeline can show why a visitor went one way."""
    error: str | None = None
    """Why evaluation failed; `value` is then False."""


class Condition:
    """A compiled Liquid boolean expression; `source` is the text as written."""

    __slots__ = ("_expression", "_paths", "source")

    def __init__(self, source: str, expression: Expression):
        self.source = source
        self._expression = expression
        self._paths = _paths_in(expression)

    @classmethod
    def compile(cls, source: str) -> Condition:
        """Compile `source`; `TemplateError` on a syntax error."""
        too_deep = expression_problem(source)
        if too_deep:
            raise _nesting_error(source, too_deep)
        try:
            origin = Token(TOKEN_EXPRESSION, source, 0, source)
            tokens = TokenStream(tokenize(source, parent_token=origin))
            expression = _parse_condition(tokens)
            if tokens.current.kind != TOKEN_EOF:
                token = tokens.current
                raise LiquidSyntaxError(f"unexpected {token.kind} {token.value!r}", token=token)
        except LiquidError as err:
            raise _syntax_error(err, source) from err
        return cls(source, expression)

    def evaluate(self, context: Mapping[str, Any]) -> ConditionResult:
        """Evaluate against `context`. Never raises: an error makes the result false."""
        render_context = sandbox.SandboxContext(_EMPTY, globals=dict(context))
        reads = {str(path): _read(path, render_context) for path in self._paths}
        try:
            value = is_truthy(self._expression.evaluate(render_context))
        except LiquidError as err:
            return ConditionResult(False, reads, str(_render_error(err)))
        except Exception as err:  # the context is arbitrary user data: never raise
            return ConditionResult(False, reads, f"{type(err).__name__}: {err}")
        return ConditionResult(value, reads)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


_INFIX = {
    TOKEN_EQ: EqExpression,
    TOKEN_NE: NeExpression,
    TOKEN_LG: NeExpression,
    TOKEN_LT: LtExpression,
    TOKEN_GT: GtExpression,
    TOKEN_LE: LeExpression,
    TOKEN_GE: GeExpression,
    TOKEN_CONTAINS: ContainsExpression,
    TOKEN_AND: LogicalAndExpression,
    TOKEN_OR: LogicalOrExpression,
}


def _parse_condition(tokens: TokenStream, precedence: int = PRECEDENCE_LOWEST) -> Expression:
    """Precedence climbing over python-liquid's tokens and expression nodes.

    An operator at the same precedence as the caller's is taken by the right operand,
    which makes every operator group from the right, as python-liquid's parser does.
    """
    left = _parse_operand(tokens)
    while (token := tokens.current).kind in _INFIX and PRECEDENCES[token.kind] >= precedence:
        next(tokens)
        right = _parse_condition(tokens, PRECEDENCES[token.kind])
        left = _INFIX[token.kind](token, left, right)
    return left


def _parse_operand(tokens: TokenStream) -> Expression:
    token = tokens.current
    if token.kind == TOKEN_NOT:
        next(tokens)
        return LogicalNotExpression(token, _parse_condition(tokens, PRECEDENCE_LOGICAL_OR))
    if token.kind == TOKEN_LPAREN:
        next(tokens)
        inner = _parse_condition(tokens)
        tokens.eat(TOKEN_RPAREN)
        return inner
    # A literal or a path only: a precedence above every operator stops before them.
    return parse_boolean_primitive(_ENV, tokens, PRECEDENCE_PREFIX + 1)


def _paths_in(expression: Expression) -> list[Path]:
    """The variable paths in an expression, in reading order, once each."""
    found: dict[str, Path] = {}

    def visit(node: Expression) -> None:
        if isinstance(node, Path):
            found.setdefault(str(node), node)
        for child in node.children():
            visit(child)

    visit(expression)
    return list(found.values())


def _read(path: Path, context: RenderContext) -> Any:
    try:
        value = path.evaluate(context)
    except LiquidError:
        return None
    return None if is_undefined(value) else to_jsonable(value)


class TemplatedValueError(TemplateError):
    """Some string leaves of a value are not valid templates; `problems` lists each
    as `(loc, msg)`."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in problems))


class TemplatedValue:
    """A JSON-like value whose strings are templates (webhook bodies, `field.set`
    values, `track` details). Rendering keeps every other leaf's JSON type."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: Any, compiled: Any):
        self.source = source
        self._compiled = compiled

    @classmethod
    def compile(cls, value: Any, loc: str = "") -> TemplatedValue:
        """Compile every string in `value`; `TemplatedValueError` lists every bad one
        by its path below `loc`. Dates and other non-JSON values become strings."""
        source = to_jsonable(value)
        problems: list[tuple[str, str]] = []
        compiled = _compile_leaves(source, loc, problems)
        if problems:
            raise TemplatedValueError(problems)
        return cls(source, compiled)

    def render(self, context: Mapping[str, Any], *, keep_types: bool = False) -> Any:
        """The value with its strings rendered; `TemplateError` as for `Template`.
        With `keep_types` (webhook bodies), a string that is exactly one output keeps
        the JSON type of its value (`Template.render_value`)."""
        return _render_leaves(self._compiled, context, keep_types)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TemplatedValue) and other.source == self.source

    def __hash__(self) -> int:
        return hash(json.dumps(self.source, sort_keys=True))

    def __repr__(self) -> str:
        return f"TemplatedValue({self.source!r})"


def _compile_leaves(value: Any, loc: str, problems: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        try:
            return Template.compile(value)
        except TemplateError as err:
            problems.append((loc, str(err)))
            return None
    if isinstance(value, dict):
        return {k: _compile_leaves(v, key_loc(loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_leaves(v, item_loc(loc, i), problems) for i, v in enumerate(value)]
    return value


def _render_leaves(value: Any, context: Mapping[str, Any], keep_types: bool) -> Any:
    if isinstance(value, Template):
        return value.render_value(context) if keep_types else value.render(context)
    if isinstance(value, dict):
        return {k: _render_leaves(v, context, keep_types) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_leaves(v, context, keep_types) for v in value]
    return value
