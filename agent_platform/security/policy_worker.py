"""The Rego evaluator process: regopy (rego-cpp) behind a JSON-lines pipe.

Run by `PolicyEngine` as `python policy_worker.py`, never imported by the platform: rego-cpp's
shared library aborts a process that loads PyTorch after it, and a crash in its C++ must not
take the gateway down. It imports nothing of the platform. Requests and replies, one JSON
object a line:

    {"op": "load", "files": {"a.rego": "..."}}  -> {"ok": true} | {"ok": false, "error": "..."}
    {"op": "decide", "input": {...}}            -> {"ok": true, "decision": {...} | null}
    {"op": "query", "query": "x := data..."}    -> {"ok": true, "value": ...}

A load that fails keeps the previous modules. rego-cpp does not escape strings in its output,
so output that does not parse is returned as null (the engine treats it as a denial).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import regopy

DECISION = "x := data.agent_platform.authz.decision"
PROBE = {
    "action": "agents.read",
    "profile": "production",
    "auth_required": True,
    "identity": {"subject": "probe", "kind": "user", "verified": True, "roles": [], "tenants": []},
    "resource": {},
}


def _binding(output: Any) -> Any:
    if not output.ok() or not output.results:
        return None
    return output.results[0].bindings.get("x")


def query(interpreter: Any, query_text: str) -> Any:
    """An ad-hoc query (compiles every time: seconds; for tests, not decisions)."""
    try:
        return _binding(interpreter.query(query_text))
    except (regopy.RegoError, ValueError):
        return None


def describe_error(message: str, files: dict[str, str]) -> str:
    """`file:line: message` from rego-cpp's error tree (its first error)."""
    located = re.search(r"\(error \d+:([^|]+)\|(\d+)\|", message)
    text = re.search(r"\(errormsg \d+:([^)\n]*)\)", message)
    what = text.group(1).strip() if text else message.strip().splitlines()[0]
    if not located:
        return f"policy bundle: {what[:200]}"
    name, offset = located.group(1), int(located.group(2))
    line = files.get(name, "")[:offset].count("\n") + 1
    return f"{name}:{line}: {what[:200]}"


def is_test_module(name: str, text: str) -> bool:
    """OPA's convention: `*_test.rego` files, packages ending in `_test`."""
    package = re.search(r"^package\s+([\w.]+)", text, re.MULTILINE)
    return name.endswith("_test.rego") or bool(package and package.group(1).endswith("_test"))


class Compiled:
    """The modules (for ad-hoc queries) and the decision compiled once into a bundle.

    The bundle is built from the policy modules only: with the unit tests' modules in it, each
    decision costs about 25 ms instead of 1 (rego-cpp evaluates what the bundle holds)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.interpreter = regopy.Interpreter()
        decisions = regopy.Interpreter()
        for name, text in files.items():
            try:
                self.interpreter.add_module(name, text)
                if not is_test_module(name, text):
                    decisions.add_module(name, text)
            except regopy.RegoError as exc:
                raise ValueError(describe_error(str(exc), files)) from exc
        try:
            self.bundle = decisions.build(DECISION)
            ok = self.bundle.ok()
            message = "" if ok else "does not compile"
        except (regopy.RegoError, ValueError) as exc:
            ok, message = False, str(exc)
        if not ok:
            lines = [line.strip() for line in message.splitlines() if line.strip()]
            first = lines[1] if len(lines) > 1 and lines[0] == "Errors:" else (lines or ["?"])[0]
            located = re.search(r"-- (\S+:\d+:\d+)", message)
            where = f" at {located.group(1)}" if located else ""
            raise ValueError(f"policy bundle{where}: {first[:200]}")
        self.runner = regopy.Interpreter()
        probe = self.decide(PROBE)
        if not isinstance(probe, dict) or probe.get("allow") is not False:
            raise ValueError("policy bundle: the probe decision must be a denial with allow=false")

    def decide(self, input_value: Any) -> Any:
        try:
            self.runner.set_input(regopy.Input(input_value))
            return _binding(self.runner.query_bundle(self.bundle))
        except (regopy.RegoError, ValueError):
            return None


def main() -> None:
    # rego-cpp prints compile errors on file descriptor 1: keep the protocol on a duplicate of
    # it and point 1 at stderr, so nothing but replies ever reaches the engine's pipe.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    compiled = None
    for line in sys.stdin:
        request = json.loads(line)
        reply: dict[str, object]
        op = request.get("op")
        if op == "load":
            try:
                compiled = Compiled(request["files"])
                reply = {"ok": True}
            except ValueError as exc:
                reply = {"ok": False, "error": str(exc)}
        elif compiled is None:
            reply = {"ok": False, "error": "no policy loaded"}
        elif op == "decide":
            reply = {"ok": True, "decision": compiled.decide(request["input"])}
        elif op == "query":
            reply = {"ok": True, "value": query(compiled.interpreter, request["query"])}
        else:
            reply = {"ok": False, "error": f"unknown op {op!r}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
