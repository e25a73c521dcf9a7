"""Rendering untrusted templates in a child process with a hard memory and time limit.

`prompts validate`, `prompts test`, publishing and the Dagster checks render templates that
nobody has reviewed yet. The sandbox bounds each render (`limits.py`), and this module is the
second wall: the test cases of a prompt render in a child Python process whose address space is
capped (`RLIMIT_AS`) and whose run time is capped (`RLIMIT_CPU` and a wall-clock timeout), so a
way around the sandbox's accounting still cannot exhaust the machine. The child imports only
Jinja2 and the sandbox (not MLflow), so it starts in a fraction of a second.

Protocol: the parent writes a pickled request to the child's stdin (the child trusts its parent)
and reads a JSON list back (the parent does not unpickle anything a template influenced).
"""

from __future__ import annotations

import json
import os
import pickle  # nosec B403  # only for the parent-to-child pipe of the render sandbox
import subprocess  # nosec B404  # fixed argument lists, never a shell
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent_platform.prompts.errors import PromptRenderError
from agent_platform.prompts.limits import MAX_RENDER_SECONDS

MEMORY_LIMIT_BYTES = 512 * 2**20
STARTUP_SECONDS = 10.0  # a cold interpreter on a busy machine, plus Jinja2's import
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _megabytes(size: int) -> str:
    return f"{size // 2**20} MB"


def time_limit(cases: int) -> float:
    """Wall-clock seconds a child rendering `cases` test cases may take."""
    return STARTUP_SECONDS + MAX_RENDER_SECONDS * max(cases, 1)


def render_isolated(
    sources: Mapping[str, str],
    name: str,
    inputs: Sequence[Mapping[str, Any]],
    *,
    memory_bytes: int = MEMORY_LIMIT_BYTES,
    timeout: float | None = None,
) -> list[str | PromptRenderError]:
    """Render template `name` once per entry of `inputs` in a resource-limited child process.

    Returns the text or the `PromptRenderError` of each render. Raises `PromptRenderError` (one
    line naming the prompt and the limit) when the child runs out of time or memory as a whole.
    """
    if not inputs:
        return []
    timeout = time_limit(len(inputs)) if timeout is None else timeout
    request = pickle.dumps((dict(sources), name, [dict(i) for i in inputs], memory_bytes, timeout))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_PACKAGE_ROOT), *sys.path])}
    try:
        child = subprocess.run(  # nosec B603  # fixed argument list, no shell; no user input in it
            [sys.executable, "-m", "agent_platform.prompts.isolation"],
            input=request,
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PromptRenderError(
            f"prompt {name!r}: refused, rendering its test cases went past the time limit of "
            f"{timeout:g} s (the renderer process was stopped)"
        ) from None
    if child.returncode != 0:
        raise PromptRenderError(_death(name, child.returncode, child.stderr, memory_bytes))
    try:
        results = json.loads(child.stdout)
    except ValueError:
        raise PromptRenderError(f"prompt {name!r}: the renderer process answered garbage") from None
    return [text if ok else PromptRenderError(text) for ok, text in results]


def _death(name: str, code: int, stderr: bytes, memory_bytes: int) -> str:
    """One line on why the child died: its memory or CPU limit, or its last error line."""
    last = (stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1]
    if "MemoryError" in last or code == -9:
        return (
            f"prompt {name!r}: refused, rendering went past the memory limit of "
            f"{_megabytes(memory_bytes)}"
        )
    if code == -24:  # SIGXCPU
        return f"prompt {name!r}: refused, rendering went past its CPU time limit"
    return f"prompt {name!r}: the renderer process failed (exit {code}): {last[:300]}"


def _limit_resources(memory_bytes: int, seconds: float) -> None:
    try:
        import resource
    except ImportError:  # not on this platform: the sandbox's own limits still hold
        return
    for which, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CPU, seconds)):
        _, hard = resource.getrlimit(which)
        soft = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        resource.setrlimit(which, (soft, hard))


def main() -> None:
    """The child: read the request, cap memory and CPU, render each case, write the results."""
    from agent_platform.prompts.sandbox import make_environment, render

    sources, name, inputs, memory_bytes, seconds = pickle.loads(sys.stdin.buffer.read())  # nosec B301  # the parent platform process wrote this payload to its own child's stdin
    _limit_resources(memory_bytes, seconds)
    env = make_environment(sources)
    results: list[tuple[bool, str]] = []
    for variables in inputs:
        try:
            results.append((True, render(env, name, variables)))
        except PromptRenderError as exc:
            message = str(exc)
            if message.endswith("ran out of memory"):
                message += f" (the limit is {_megabytes(memory_bytes)})"
            results.append((False, message))
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()
