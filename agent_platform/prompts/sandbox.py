"""The one Jinja2 environment prompts are rendered in: sandboxed, strict and bounded.

`ImmutableSandboxedEnvironment` refuses attribute access to Python internals
(`''.__class__.__mro__`) and mutation of inputs; `StrictUndefined` makes a missing variable an
error instead of an empty string. Runs of blank lines are collapsed to one.

Every render is bounded in time and memory (`limits.py`): the code generator routes loop
iterations, `~` concatenation and all output through the environment, which charges them, with
calls, lookups, operators and filters, to the render's budget, and checks each string as it is
built. `*`, `**`, `+` and `%` are checked before they compute (`'x' * 10**9`, `9 ** 99999`,
`'%1000000000s' % x`), as are the filters and string methods that can multiply a string's size.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import wraps
from typing import Any

from jinja2 import (
    DictLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from agent_platform.prompts import limits
from agent_platform.prompts.errors import PromptRenderError
from agent_platform.prompts.limits import (
    MAX_LIPSUM_PARAGRAPHS,
    MAX_RENDER_CHARS,
    RenderLimitError,
    RenderLimits,
    built,
    check_format,
    check_size,
    check_text,
    max_chars,
    text_size,
    tick,
)

MAX_EXPONENT = 100  # prompts format numbers; they never need big powers
MAX_INT_BITS = 4096  # about 1,200 decimal digits
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")  # empty blocks leave blank runs
_SEQUENCES = (str, bytes, list, tuple)
_BUILTIN_VALUES = (str, bytes, int, float, list, tuple, dict, set, frozenset)
MAX_JSON_INDENT = 16
# filters and str methods whose output is the text of their input: check that text's size first
_TEXT_FILTERS = frozenset(
    [
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "format",
        "indent",
        "join",
        "list",
        "lower",
        "pprint",
        "replace",
        "reverse",
        "safe",
        "string",
        "striptags",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "wordwrap",
        "xmlattr",
    ]
)
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
# unbounded growth (translate, expandtabs), or bytes, which prompts never need (encode)
_REFUSED_METHODS = frozenset({"translate", "maketrans", "expandtabs", "encode"})


class PromptCodeGenerator(CodeGenerator):
    """Compiles templates so the sandbox sees what the stock compiler does inline: each loop
    iteration, each `~` concatenation and each piece of literal template text written."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:  # noqa: N802 (Jinja's name)
        guard = nodes.EnvironmentAttribute("guarded_iter", lineno=node.lineno)
        iterable = nodes.Call(guard, [node.iter], [], None, None, lineno=node.lineno)
        iterable.set_environment(self.environment)
        guarded = nodes.For(
            node.target,
            iterable,
            node.body,
            node.else_,
            node.test,
            node.recursive,
            lineno=node.lineno,
        )
        guarded.set_environment(self.environment)
        super().visit_For(guarded, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802
        self.write("environment.guarded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        return f"environment.literal_output({super()._output_const_repr(group)})"


def _finalize(value: Any) -> str:
    """Every `{{ expression }}` becomes text here: checked before, charged after."""
    check_text(value)
    text = str(value)
    built(len(text))
    return text


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """`lipsum` with at most `MAX_LIPSUM_PARAGRAPHS` paragraphs of at most 100 words."""
    if n > MAX_LIPSUM_PARAGRAPHS or max > 100:
        raise RenderLimitError(
            f"lipsum(n={n}, max={max}) is over the limit of {MAX_LIPSUM_PARAGRAPHS} paragraphs "
            "of 100 words"
        )
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _check_int_args(what: str, args: Iterable[Any]) -> None:
    limit = max_chars()
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > limit:
            raise RenderLimitError(
                f"{what} with an argument of {arg:,}, over the limit of {limit:,}"
            )


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(text) + 1 if old == "" else text.count(old)
        check_size(len(text) + hits * max(len(new) - len(old), 0))


def _check_join(items: list[Any], separator: Any) -> None:
    if isinstance(separator, str):
        limit = max_chars()
        check_size(text_size(items, limit) + len(separator) * len(items), limit)


def _check_sum(start: Any) -> None:
    if not isinstance(start, int | float):
        raise RenderLimitError(
            "|sum with a start that is not a number is not allowed (adding up sequences takes "
            "quadratic time); use |join or a loop"
        )


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` charged to the budget, with its input and size arguments checked first and its
    result checked after."""
    offset = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        value = args[offset] if len(args) > offset else None
        if name == "join" and value is not None and not isinstance(value, list | str):
            value = list(value)  # a generator could be any length: count it before joining
            args = (*args[:offset], value, *args[offset + 1 :])
        extra = [*args[offset + 1 :], *kwargs.values()]
        _check_int_args(f"|{name}", extra)
        if name in _TEXT_FILTERS:
            check_text(value)
        if name == "replace" and len(extra) >= 2:
            _check_replace(value, extra[0], extra[1])
        elif name == "join" and isinstance(value, list):
            _check_join(value, kwargs.get("d", args[offset + 1] if len(args) > offset + 1 else ""))
        elif name == "sum":
            positional = args[offset + 2] if len(args) > offset + 2 else 0
            _check_sum(kwargs.get("start", positional))
        elif name == "tojson":
            indent = kwargs.get("indent", args[offset + 1] if len(args) > offset + 1 else None)
            if isinstance(indent, int) and indent > MAX_JSON_INDENT:
                raise RenderLimitError(f"|tojson indent over {MAX_JSON_INDENT} is not allowed")
        elif name == "format" and isinstance(value, str):
            check_format(value, extra)
        elif name == "indent" and isinstance(value, str):
            width = extra[0] if extra else 4
            size = len(width) if isinstance(width, str) else int(width)
            check_size(len(value) + (value.count("\n") + 1) * size)
        result = func(*args, **kwargs)
        if isinstance(result, str):
            built(len(result))
        elif isinstance(result, list | tuple):
            check_size(len(result))
        return result

    return guarded


class PromptSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every operation charged to the render's budget.

    Intercepted operators are also never constant-folded at compile time, so a literal
    `{{ 'x' * 10**10 }}` fails at render with a clear error instead of exhausting memory while
    the template compiles.
    """

    code_generator_class = PromptCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.globals["lipsum"] = _lipsum

    @property
    def max_sequence_length(self) -> int:
        return max_chars()

    # -- hooks the compiled template calls (see PromptCodeGenerator) --

    def guarded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Each loop iteration costs one operation."""
        for item in iterable:
            tick()
            yield item

    def guarded_concat(self, values: Iterable[Any]) -> str:
        """`a ~ b`: the pieces' sizes are checked before they are joined."""
        tick()
        pieces = []
        for value in values:
            check_text(value)
            pieces.append(value if isinstance(value, str) else str(value))
        built(sum(len(p) for p in pieces))
        return "".join(pieces)

    def literal_output(self, text: str) -> str:
        """Template text written out (in a loop, perhaps many times) counts as built."""
        built(len(text))
        return text

    # -- the sandbox's own interception points --

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        tick()
        owner = getattr(__obj, "__self__", None)
        method = getattr(__obj, "__name__", "")
        if isinstance(owner, _BUILTIN_VALUES):  # `(1).to_bytes(10**9)`, `'x'.ljust(10**9)`
            _check_int_args(f"{type(owner).__name__}.{method}", [*args, *kwargs.values()])
        if isinstance(owner, str | bytes):
            if method == "join" and args and not isinstance(args[0], list):
                args = (list(args[0]), *args[1:])  # count a generator before joining it
            __self._check_str_method(owner, method, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | bytes):
            built(len(result))
        elif isinstance(result, list | tuple):
            check_size(len(result))
        return result

    @staticmethod
    def _check_str_method(text: Any, method: str, args: Any, kwargs: dict[str, Any]) -> None:
        if method in _REFUSED_METHODS:
            raise RenderLimitError(f"str.{method} is not allowed in prompts")
        if method == "replace" and len(args) >= 2:
            _check_replace(text, args[0], args[1])
        elif method == "join" and args and isinstance(text, str):
            _check_join(args[0], text)
        elif method in _WIDTH_METHODS and args and isinstance(args[0], int):
            check_size(args[0])

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        template = value.__self__

        @wraps(wrapper)
        def checked(*args: Any, **kwargs: Any) -> str:
            check_format(template, [*args, *kwargs.values()])
            return wrapper(*args, **kwargs)

        return checked

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        if operator == "*":
            self._check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "+":
            if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
                check_size(len(left) + len(right))
        elif isinstance(left, str):  # "%" formatting
            check_format(left, right)
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, str):
            built(len(result))
        return result

    def _check_repeat(self, left: Any, right: Any) -> None:
        if isinstance(left, int) and isinstance(right, _SEQUENCES):
            left, right = right, left
        if isinstance(left, _SEQUENCES) and isinstance(right, int):
            size = len(left) * right
            if size > self.max_sequence_length:
                raise RenderLimitError(
                    f"{type(left).__name__} repetition (* {right}) would build {size:,} items, "
                    f"over the limit of {self.max_sequence_length:,}"
                )
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise RenderLimitError(f"an integer product over {MAX_INT_BITS} bits is not allowed")


def _check_power(base: Any, exponent: Any) -> None:
    if not isinstance(exponent, int | float) or not isinstance(base, int | float):
        return  # not arithmetic on numbers: the operator itself raises TypeError
    if abs(exponent) > MAX_EXPONENT:
        raise RenderLimitError(f"an exponent over {MAX_EXPONENT} is not allowed")
    bits = base.bit_length() * exponent if isinstance(base, int) else 0
    if isinstance(exponent, int) and bits > MAX_INT_BITS:
        raise RenderLimitError(f"a power over {MAX_INT_BITS} bits (** {exponent}) is not allowed")


def make_environment(sources: Mapping[str, str]) -> PromptSandbox:
    """A sandboxed environment whose templates (and `{% extends %}` parents) are `sources`."""
    return PromptSandbox(
        loader=DictLoader(dict(sources)),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def parse(env: ImmutableSandboxedEnvironment, source: str, name: str) -> nodes.Template:
    """Parse a template to its AST; raises `TemplateSyntaxError` with the line."""
    return env.parse(source, name=name)


_STRING_BUILDERS = (nodes.Concat, nodes.Filter, nodes.Call, nodes.Mod, nodes.CondExpr)


def _builds_string(node: nodes.Node) -> bool:
    """Whether `node` computes a string at render time (`'_' ~ '_class__'`, `'%s' % x`, a
    filter or call): a name built that way cannot be checked statically."""
    if isinstance(node, _STRING_BUILDERS):
        return True
    if isinstance(node, nodes.Add | nodes.Mul):
        return any(
            _builds_string(side) or (isinstance(side, nodes.Const) and isinstance(side.value, str))
            for side in (node.left, node.right)
        )
    return False


def _attr_name(node: nodes.Filter) -> nodes.Node | None:
    if node.args:
        return node.args[0]
    return next((kw.value for kw in node.kwargs if kw.key == "name"), None)


def private_accesses(ast: nodes.Template) -> Iterator[tuple[int, str]]:
    """(line, why) for each underscore attribute, key or name, and each attribute name or key
    computed at render time: sandbox escapes, found statically in every branch."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Filter)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            yield node.lineno, f"access to private attribute {node.attr!r} is not allowed"
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            name = _attr_name(node)
            if not isinstance(name, nodes.Const) or not isinstance(name.value, str):
                yield (
                    node.lineno,
                    (
                        "|attr with a name computed at render time could reach a private "
                        "attribute; use a literal name"
                    ),
                )
            elif name.value.startswith("_"):
                yield (
                    node.lineno,
                    (f"access to private attribute {name.value!r} (via |attr) is not allowed"),
                )
        elif isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                if arg.value.startswith("_"):
                    yield node.lineno, f"access to private item {arg.value!r} is not allowed"
            elif _builds_string(arg):
                yield (
                    node.lineno,
                    (
                        "a subscript with a key computed at render time could reach a private "
                        "attribute; use a literal key or a variable"
                    ),
                )
        elif isinstance(node, nodes.Name) and node.name.startswith("_"):
            yield node.lineno, f"access to private name {node.name!r} is not allowed"


def render(
    env: ImmutableSandboxedEnvironment,
    name: str,
    variables: Mapping[str, Any],
    *,
    max_chars: int = MAX_RENDER_CHARS,
    bounds: RenderLimits | None = None,
) -> str:
    """Render template `name` within `bounds` (the module's limits by default); every failure
    becomes a one-line `PromptRenderError` naming the template and, for a limit, the limit."""
    bounds = bounds or RenderLimits(max_chars=max_chars)
    try:
        with limits.spending(bounds):
            template = env.get_template(name)
            pieces: list[str] = []
            size = 0
            for piece in template.generate(**variables):
                size += len(piece)
                if size > bounds.max_chars:
                    raise PromptRenderError(
                        f"prompt {name!r} renders past {bounds.max_chars:,} characters, the "
                        "output limit; refusing to continue"
                    )
                pieces.append(piece)
        return _BLANK_RUNS.sub("\n\n", "".join(pieces)).strip()
    except RenderLimitError as exc:
        raise PromptRenderError(f"prompt {name!r}: refused, render limit: {exc}") from None
    except SecurityError as exc:
        raise PromptRenderError(f"prompt {name!r}: sandbox violation: {exc}") from exc
    except UndefinedError as exc:
        raise PromptRenderError(f"prompt {name!r}: undefined variable: {exc}") from exc
    except TemplateNotFound as exc:
        raise PromptRenderError(f"prompt {name!r}: unknown template {exc.name!r}") from exc
    except TemplateSyntaxError as exc:
        where = f"{exc.filename or exc.name or name}:{exc.lineno}"
        raise PromptRenderError(f"{where}: syntax error: {exc.message}") from exc
    except TemplateError as exc:
        raise PromptRenderError(f"prompt {name!r}: {exc}") from exc
    except RecursionError:
        raise PromptRenderError(f"prompt {name!r}: refused, recursion too deep") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise PromptRenderError(f"prompt {name!r}: {type(exc).__name__}: {exc}") from exc
    except MemoryError:
        raise PromptRenderError(f"prompt {name!r}: rendering ran out of memory") from None
