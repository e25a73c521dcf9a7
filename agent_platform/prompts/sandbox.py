"""The one Jinja2 environment prompts are rendered in: sandboxed, strict, and size-capped.

`ImmutableSandboxedEnvironment` refuses attribute access to Python internals
(`''.__class__.__mro__`) and mutation of inputs; `StrictUndefined` makes a missing variable an
error instead of an empty string. Runs of blank lines are collapsed to one. Output is produced
incrementally and cut off at a size cap so a template cannot loop its way to gigabytes, and the
`*` and `**` operators are intercepted so one expression cannot build a huge value either
(`'x' * 10**9`, `9 ** 99999`). Running out of memory anyway is a render error, not a crash.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from agent_platform.prompts.errors import PromptRenderError

MAX_RENDER_CHARS = 2_000_000
MAX_EXPONENT = 100  # prompts format numbers; they never need big powers
MAX_INT_BITS = 4096  # about 1,200 decimal digits
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")  # empty blocks leave blank runs
_SEQUENCES = (str, list, tuple)


class PromptSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with `*` and `**` checked before they compute.

    Intercepted operators are also never constant-folded at compile time, so a literal
    `{{ 'x' * 10**10 }}` fails at render with a clear error instead of exhausting memory while
    the template compiles.
    """

    intercepted_binops = frozenset({"*", "**"})
    max_sequence_length = MAX_RENDER_CHARS

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            self._check_repeat(left, right)
        else:
            _check_power(left, right)
        return super().call_binop(context, operator, left, right)

    def _check_repeat(self, left: Any, right: Any) -> None:
        if isinstance(left, int) and isinstance(right, _SEQUENCES):
            left, right = right, left
        if isinstance(left, _SEQUENCES) and isinstance(right, int):
            size = len(left) * right
            if size > self.max_sequence_length:
                raise SecurityError(
                    f"{type(left).__name__} repetition (* {right}) would build {size} items, "
                    f"over the limit of {self.max_sequence_length}"
                )
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise SecurityError(f"an integer product over {MAX_INT_BITS} bits is not allowed")


def _check_power(base: Any, exponent: Any) -> None:
    if not isinstance(exponent, int | float) or not isinstance(base, int | float):
        return  # not arithmetic on numbers: the operator itself raises TypeError
    if abs(exponent) > MAX_EXPONENT:
        raise SecurityError(f"an exponent over {MAX_EXPONENT} is not allowed")
    bits = base.bit_length() * exponent if isinstance(base, int) else 0
    if isinstance(exponent, int) and bits > MAX_INT_BITS:
        raise SecurityError(f"a power over {MAX_INT_BITS} bits (** {exponent}) is not allowed")


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
) -> str:
    """Render template `name`; every failure becomes a `PromptRenderError` saying why."""
    try:
        template = env.get_template(name)
        pieces: list[str] = []
        size = 0
        for piece in template.generate(**variables):
            size += len(piece)
            if size > max_chars:
                raise PromptRenderError(
                    f"prompt {name!r} renders past {max_chars} characters; refusing to continue"
                )
            pieces.append(piece)
        return _BLANK_RUNS.sub("\n\n", "".join(pieces)).strip()
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
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise PromptRenderError(f"prompt {name!r}: {type(exc).__name__}: {exc}") from exc
    except MemoryError as exc:
        raise PromptRenderError(f"prompt {name!r}: rendering ran out of memory") from exc
