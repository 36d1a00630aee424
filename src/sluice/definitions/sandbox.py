"""The python-liquid environments templates render in: limits, filters, output rules.

Two environments share everything but escaping: `TEXT` (subjects, text parts, headers,
webhook fields, tags and fields) and `HTML` (an email's HTML), where python-liquid's
`autoescape` HTML-escapes every value output from data while the template's own text
and string literals stay as written (SPEC §7). Both differ from stock Liquid in these
ways, documented in docs/definitions.md ("Conditions and templates"):

- No `include` or `render` tags: there are no partial templates to load.
- A list or object output as text is written as JSON, never as Python's repr; so are
  the objects in `join`'s list and the list or object given to a string filter.
- Added filters: `json` (any value as JSON) and `raw` (a trusted value, not escaped).
- `"now" | date` and `today` read the render's `now`, not the system clock, so the
  virtual clock of simulate and tests holds for them too.
- Limits (`LOOP_LIMIT`, `OUTPUT_LIMIT`, ...). python-liquid bounds loop iterations
  (nested loops multiply), output and `assign`/`capture` data, but not what filters
  build: `(1..100000000) | reverse` allocates gigabytes and `append` or `replace` in a
  loop grow a string quadratically. So every filter runs in a guard (`_Guarded`): a
  range it is given counts against the loop limit; its result is held to the output
  limit (text), the loop limit (lists) and the number limit, checked before the
  result is built where it can grow beyond its inputs (`append`, `replace`, `join`,
  `split`, `concat`, `times`...); and what all the filters of one render read and
  write is bounded (`TEXT_WORK_LIMIT`, `ITEM_WORK_LIMIT`), which bounds its time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from liquid import Environment, Markup, RenderContext, is_undefined
from liquid.builtin.filters.misc import date as liquid_date
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import (
    FilterArgumentError,
    LiquidError,
    ResourceLimitError,
)
from liquid.stringify import to_liquid_string
from liquid.template import BoundTemplate
from liquid.token import Token
from liquid.utils import ReadOnlyChainMap

LOOP_LIMIT = 10_000
"""Iterations of nested loops (multiplied), items of a range, items of a filter's list."""
OUTPUT_LIMIT = 1024 * 1024
"""Characters of rendered output, and of any text a filter makes."""
NAMESPACE_LIMIT = 1024 * 1024
"""Bytes of `assign`/`capture` data, as python-liquid measures them."""
NESTING_LIMIT = 20
"""Levels of nested blocks."""
NUMBER_LIMIT = 4300
"""Digits of a number a filter makes: Python's own limit for writing an int as text."""
TEXT_WORK_LIMIT = 4 * OUTPUT_LIMIT
"""Characters all the filters of one render read and write together."""
ITEM_WORK_LIMIT = 10 * LOOP_LIMIT
"""List items all the filters of one render read and write together."""


class FilterLimitError(FilterArgumentError, ResourceLimitError):
    """A filter went over a limit. A `FilterArgumentError` so that python-liquid gives
    it the filter's position in the template."""


# -- values as text and as JSON ---------------------------------------------------


def plain(value: Any) -> Any:
    """`value` as JSON types: undefined is null, a range its list of numbers (at most
    `LOOP_LIMIT`), dates ISO 8601, Decimals numbers, NaN and infinities null."""
    if is_undefined(value) or value is None:
        return None
    if isinstance(value, str):
        return str(value)  # a Markup is a plain string again
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else plain(float(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, range):
        _check_range(value)
        return list(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def json_text(value: Any) -> str:
    """`value` as JSON text, non-ASCII characters as themselves."""
    return json.dumps(plain(value), ensure_ascii=False)


def _is_structure(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) and not hasattr(value, "__html__")


def to_text(value: Any, autoescape: bool) -> str:
    """`value` as output text: Liquid's rules, except that lists and objects are JSON;
    HTML-escaped when `autoescape` and `value` is not `Markup`."""
    if _is_structure(value):
        value = json_text(value)
    return to_liquid_string(value, autoescape)


class _TextOutput:
    """Output and `echo` nodes that write their value with `to_text`."""

    __slots__ = ()

    def render_to_output(self, context: RenderContext, buffer) -> int:
        return buffer.write(to_text(self.expression.evaluate(context), context.autoescape))


class _OutputNode(_TextOutput, OutputNode):
    __slots__ = ()


class _EchoNode(_TextOutput, EchoNode):
    __slots__ = ()


class _Output(Output):
    node_class = _OutputNode


class _Echo(EchoTag):
    node_class = _EchoNode


# -- the render context: its clock and what its filters have done ------------------


class RenderWork:
    """What the filters of one render have read and written so far."""

    __slots__ = ("items", "text")

    def __init__(self) -> None:
        self.text = 0
        self.items = 0

    def spend(self, value: Any) -> None:
        """Count `value` (characters of text, items of a list, object or range)."""
        if isinstance(value, str):
            self.text += len(value)
            if self.text > TEXT_WORK_LIMIT:
                raise FilterLimitError(
                    f"filter work limit reached: filters read and wrote more than "
                    f"{TEXT_WORK_LIMIT} characters",
                    token=None,
                )
        elif isinstance(value, list | tuple | dict | range):
            self.items += _size(value)
            if self.items > ITEM_WORK_LIMIT:
                raise FilterLimitError(
                    f"filter work limit reached: filters read and wrote more than "
                    f"{ITEM_WORK_LIMIT} list items",
                    token=None,
                )


def _size(value: list | tuple | dict | range) -> int:
    # len() of a range past sys.maxsize raises OverflowError; its arithmetic does not.
    return max(0, value.stop - value.start) if isinstance(value, range) else len(value)


def clock_of(context: Mapping[str, Any]) -> datetime:
    """The render's time: its `now` (ISO 8601 text or a datetime), else the system's."""
    now = context.get("now")
    if isinstance(now, datetime):
        return now
    if isinstance(now, str):
        try:
            return datetime.fromisoformat(now)
        except ValueError:
            pass
    return datetime.now(UTC)


class SandboxContext(RenderContext):
    """A render context whose `now`/`today` keywords follow the render's `now`, and
    which counts its filters' work."""

    __slots__ = ("clock", "work")

    def __init__(self, template: BoundTemplate, **kwargs: Any):
        super().__init__(template, **kwargs)
        self.clock = clock_of(self.globals)
        self.work = RenderWork()
        builtin = {"now": self.clock, "today": self.clock.date()}
        self.scope = ReadOnlyChainMap(self.locals, self.globals, builtin, self.counters)


class _BoundTemplate(BoundTemplate):
    context_class = SandboxContext


# -- filters -----------------------------------------------------------------------


def _check_range(value: range) -> None:
    if _size(value) > LOOP_LIMIT:
        raise FilterLimitError(
            f"loop iteration limit reached: a range of {_size(value)} items (at most {LOOP_LIMIT})",
            token=None,
        )


def _text_of(value: Any) -> str:
    """`value` as a string filter sees it (lists and objects as JSON)."""
    if value is None or is_undefined(value):
        return ""
    return json_text(value) if _is_structure(value) else str(value)


def _digits(value: Any) -> int:
    """About how many digits the number `value` has (text of digits included)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value.bit_length() * math.log10(2)) + 1  # str() refuses huge ints
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return len(value.strip())
    return 0  # floats and Decimals have a fixed size


def _items_of(value: Any) -> list | range:
    """The items a sequence filter sees: lists flattened, anything else one item."""
    if isinstance(value, range):
        return value
    if isinstance(value, list | tuple):
        flat: list = []
        stack = [iter(value)]
        while stack:
            for item in stack[-1]:
                if isinstance(item, list | tuple):
                    stack.append(iter(item))
                    break
                flat.append(item)
            else:
                stack.pop()
        return flat
    return [value]


def _text_limit(name: str, size: int) -> None:
    if size > OUTPUT_LIMIT:
        raise FilterLimitError(
            f"output limit reached: {name} would make {size} characters (at most {OUTPUT_LIMIT})",
            token=None,
        )


def _items_limit(name: str, size: int) -> None:
    if size > LOOP_LIMIT:
        raise FilterLimitError(
            f"loop iteration limit reached: {name} would make a list of {size} items "
            f"(at most {LOOP_LIMIT})",
            token=None,
        )


def _number_limit(name: str, digits: int) -> None:
    if digits > NUMBER_LIMIT:
        raise FilterLimitError(
            f"number limit reached: {name} would make a number of more than {NUMBER_LIMIT} digits",
            token=None,
        )


def _concatenated(name: str, left: Any, arg: Any = "", *_: Any) -> None:
    _text_limit(name, len(_text_of(left)) + len(_text_of(arg)))


def _replaced(name: str, left: Any, old: Any = "", new: Any = "", *_: Any) -> None:
    text, old, new = _text_of(left), _text_of(old), _text_of(new)
    count = text.count(old) if old else len(text) + 1
    if name != "replace":
        count = min(count, 1)
    _text_limit(name, len(text) + count * max(0, len(new) - len(old)))


def _joined(name: str, left: Any, separator: Any = " ", *_: Any) -> None:
    items = _items_of(left)
    size = sum(len(_text_of(item)) for item in items)
    _text_limit(name, size + max(0, len(items) - 1) * len(_text_of(separator)))


_WHITESPACE = re.compile(r"\s+")


def _split(name: str, left: Any, separator: Any = "", *_: Any) -> None:
    text, separator = _text_of(left), _text_of(separator)
    if not separator:
        count = len(text)
    elif separator == " ":  # Liquid splits on runs of whitespace
        count = sum(1 for _ in _WHITESPACE.finditer(text)) + 1
    else:
        count = text.count(separator) + 1
    _items_limit(name, count)


def _concat(name: str, left: Any, arg: Any = None, *_: Any) -> None:
    _items_limit(name, len(_items_of(left)) + len(_items_of(arg)))


def _multiplied(name: str, left: Any, arg: Any = 0, *_: Any) -> None:
    _number_limit(name, _digits(left) + _digits(arg))


_PREDICTIONS: dict[str, Callable[..., None]] = {
    "append": _concatenated,
    "prepend": _concatenated,
    "replace": _replaced,
    "replace_first": _replaced,
    "replace_last": _replaced,
    "join": _joined,
    "split": _split,
    "concat": _concat,
    "times": _multiplied,
}
"""For filters whose result can outgrow their inputs: raise before it is built."""

_CONSTANT_TIME = frozenset({"size", "first", "last", "default"})
"""Filters that do not read all of their input, which is therefore not counted."""


def _check_result(name: str, result: Any) -> None:
    if isinstance(result, str):
        _text_limit(name, len(result))
    elif isinstance(result, list | tuple):
        _items_limit(name, len(result))
    else:
        _number_limit(name, _digits(result))


class _Guarded:
    """A filter run within the limits (see the module's docstring)."""

    with_context = True

    def __init__(self, name: str, func: Callable[..., Any]):
        self.name = name
        self.func = func
        # String filters would write a list or object given to them as Python's repr.
        self.jsonify = getattr(func, "__module__", "") == "liquid.builtin.filters.string"

    def __call__(self, left: Any, *args: Any, context: SandboxContext, **kwargs: Any) -> Any:
        name = self.name
        for value in (left, *args, *kwargs.values()):
            if isinstance(value, range):
                _check_range(value)
        if self.jsonify:
            left, args = _jsonified(left), tuple(_jsonified(a) for a in args)
        elif name == "join" and isinstance(left, list | tuple):
            left = [json_text(item) if isinstance(item, dict) else item for item in left]
        if name not in _CONSTANT_TIME:
            context.work.spend(left)
        if name in _PREDICTIONS:
            _PREDICTIONS[name](name, left, *args, **kwargs)
        if getattr(self.func, "with_context", False):
            kwargs["context"] = context
        if getattr(self.func, "with_environment", False):
            kwargs["environment"] = context.env
        try:
            result = self.func(left, *args, **kwargs)
        except (LiquidError, TypeError):
            raise  # python-liquid reports these with the filter's name and position
        except Exception as err:  # arithmetic and conversions of arbitrary data
            raise FilterArgumentError(f"{name}: {err}", token=None) from err
        _check_result(name, result)
        context.work.spend(result)
        return result


def _jsonified(value: Any) -> Any:
    return json_text(value) if _is_structure(value) else value


def _json(value: Any) -> str:
    """`{{ x | json }}`: any value as JSON."""
    return json_text(value)


def _raw(value: Any, *, context: RenderContext) -> str:
    """`{{ x | raw }}`: a trusted value, written into HTML as it is."""
    text = to_text(value, autoescape=False)
    return Markup(text) if context.autoescape else text


_raw.with_context = True  # type: ignore[attr-defined]


def _date(value: Any, *args: Any, context: SandboxContext, **kwargs: Any) -> str:
    """Liquid's `date`, with `"now"` and `"today"` read from the render's clock."""
    if isinstance(value, str) and value in ("now", "today"):
        value = context.clock
    return liquid_date(value, *args, environment=context.env, **kwargs)


_date.with_context = True  # type: ignore[attr-defined]


class _Sandbox(Environment):
    logical_not_operator = True
    logical_parentheses = True
    loop_iteration_limit = LOOP_LIMIT
    output_stream_limit = OUTPUT_LIMIT
    local_namespace_limit = NAMESPACE_LIMIT
    context_depth_limit = 10
    block_nesting_limit = NESTING_LIMIT
    template_class = _BoundTemplate

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        del self.tags["include"], self.tags["render"]
        self.add_tag(_Output)
        self.add_tag(_Echo)
        self.filters.update(json=_json, raw=_raw, date=_date)
        for name, func in list(self.filters.items()):
            self.filters[name] = _Guarded(name, func)

    def error(self, exc, msg=None, token=None) -> None:
        """Raise `exc`, first giving it the position of the markup being parsed or
        rendered when it has none of its own (errors at the end of an expression)."""
        if isinstance(exc, LiquidError) and not _has_position(exc.token) and _has_position(token):
            exc.token = token
        super().error(exc, msg, token)


def _has_position(token: Token | None) -> bool:
    return token is not None and token.start_index >= 0


TEXT = _Sandbox()
HTML = _Sandbox(autoescape=True)
