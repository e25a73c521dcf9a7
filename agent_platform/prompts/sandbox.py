"""The one Jinja2 environment prompts are rendered in: sandboxed, strict, and size-capped.

`ImmutableSandboxedEnvironment` refuses attribute access to Python internals
(`''.__class__.__mro__`) and mutation of inputs; `StrictUndefined` makes a missing variable an
error instead of an empty string. Runs of blank lines are collapsed to one. Output is produced
incrementally and cut off at a size cap so a template cannot loop its way to gigabytes.
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
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from agent_platform.prompts.errors import PromptRenderError

MAX_RENDER_CHARS = 2_000_000
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")  # empty blocks leave blank runs


def make_environment(sources: Mapping[str, str]) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment whose templates (and `{% extends %}` parents) are `sources`."""
    return ImmutableSandboxedEnvironment(
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


def private_accesses(ast: nodes.Template) -> Iterator[tuple[int, str]]:
    """(line, what) for each underscore attribute, key or name: sandbox escapes, statically."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name, nodes.Filter)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            yield node.lineno, f"attribute {node.attr!r}"
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            names = [a.value for a in node.args if isinstance(a, nodes.Const)]
            if any(isinstance(n, str) and n.startswith("_") for n in names):
                yield node.lineno, f"attribute {names[0]!r} (via |attr)"
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and node.arg.value.startswith("_")
        ):
            yield node.lineno, f"item {node.arg.value!r}"
        elif isinstance(node, nodes.Name) and node.name.startswith("_"):
            yield node.lineno, f"name {node.name!r}"


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
