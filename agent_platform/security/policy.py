"""The Rego policy bundle, evaluated in process with regopy (rego-cpp).

The bundle is every `.rego` file under the policy directory; its content hash (SHA-256 over the
files' relative paths and bytes) names the policy in `GET /v1/agents/{agent}` and in every audit
record. `reload()` picks up changes: a bundle that fails to parse or to answer a probe decision
keeps the last good one and marks the engine not ready; with no good bundle at all, every
decision fails closed (`PolicyUnavailableError`), never allow-all.

rego-cpp does not escape strings in its output, so the policy only ever returns booleans and
fixed codes, and any output that does not parse is a denial.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regopy

from agent_platform.security.errors import PolicyUnavailableError

QUERY = "x := data.agent_platform.authz.decision"
_TEST_RULE = re.compile(r"^(test_\w+)\s+if\b", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_PROBE = {
    "action": "agents.read",
    "profile": "production",
    "auth_required": True,
    "identity": {"subject": "probe", "kind": "user", "verified": True, "roles": [], "tenants": []},
    "resource": {},
}


class PolicyError(ValueError):
    """A bundle that cannot be used: the message names the file or the problem."""


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    missing: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    grantors: tuple[str, ...] = ()
    bundle: str | None = None


@dataclass
class Bundle:
    """Compiled modules of one content hash."""

    digest: str
    files: dict[str, str]
    interpreter: Any = field(repr=False)


def read_bundle(directory: Path) -> tuple[str, dict[str, str]]:
    """The .rego files under `directory` and their content hash."""
    files = {
        str(p.relative_to(directory)): p.read_text(encoding="utf-8")
        for p in sorted(directory.rglob("*.rego"))
    }
    if not files:
        raise PolicyError(f"policy directory {directory.name}: no .rego files")
    digest = hashlib.sha256()
    for name, text in files.items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return "sha256:" + digest.hexdigest(), files


def _query(interpreter: Any, input_value: dict[str, Any] | None, query: str) -> Any:
    if input_value is not None:
        interpreter.set_input(regopy.Input(input_value))
    output = interpreter.query(query)
    if not output.ok() or not output.results:
        return None
    try:
        return output.results[0].bindings.get("x")
    except (AttributeError, IndexError):
        return None


def compile_bundle(directory: Path) -> Bundle:
    digest, files = read_bundle(directory)
    interpreter = regopy.Interpreter()
    for name, text in files.items():
        try:
            interpreter.add_module(name, text)
        except regopy.RegoError as exc:
            raise PolicyError(f"{name}: {str(exc).splitlines()[0][:200]}") from exc
    try:
        interpreter.set_input(regopy.Input(_PROBE))
        output = interpreter.query(QUERY)
        ok = output.ok()
        message = "" if ok else str(output)
    except (regopy.RegoError, ValueError) as exc:  # ValueError: output that is not JSON
        ok, message = False, str(exc)
    if not ok:
        first = next((line for line in message.splitlines() if line.strip()), "does not compile")
        located = re.search(r"-- (\S+:\d+:\d+)", message)
        where = f" at {located.group(1)}" if located else ""
        raise PolicyError(f"policy bundle{where}: {first.strip()[:200]}")
    probe = _query(interpreter, None, QUERY)
    if not isinstance(probe, dict) or probe.get("allow") is not False:
        raise PolicyError("policy bundle: the probe decision must be a denial with allow=false")
    return Bundle(digest, files, interpreter)


class PolicyEngine:
    """Decisions from the active bundle; thread-safe (one interpreter behind a lock)."""

    def __init__(self, directory: Path, *, cache_s: float = 2.0) -> None:
        self.directory = Path(directory)
        self.cache_s = cache_s
        self.bundle: Bundle | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Decision]] = {}
        self.reload()

    @property
    def digest(self) -> str | None:
        return self.bundle.digest if self.bundle else None

    def reload(self) -> bool:
        """Load the directory's bundle if it changed; False when it is unusable (the last
        good bundle stays active and `error` says why)."""
        try:
            digest, _ = read_bundle(self.directory)
            if self.bundle is not None and digest == self.bundle.digest:
                self.error = None
                return True
            bundle = compile_bundle(self.directory)
        except (PolicyError, OSError, UnicodeError) as exc:
            self.error = str(exc)
            return False
        with self._lock:
            self.bundle, self.error = bundle, None
            self._cache.clear()
        return True

    def decide(self, input_value: dict[str, Any]) -> Decision:
        """The policy's answer for `input_value`; anything unexpected is a denial."""
        bundle = self.bundle
        if bundle is None:
            raise PolicyUnavailableError(f"no authorization policy is loaded: {self.error}")
        key = json.dumps(input_value, sort_keys=True, default=str)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and cached[0] > now and cached[1].bundle == bundle.digest:
            return cached[1]
        with self._lock:
            try:
                raw = _query(bundle.interpreter, input_value, QUERY)
            except (regopy.RegoError, ValueError):
                raw = None
        decision = _to_decision(raw, bundle.digest)
        if self.cache_s > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + self.cache_s, decision)
        return decision

    def run_tests(self) -> dict[str, bool]:
        """Every `test_` rule of the bundle: name -> passed."""
        bundle = self.bundle
        if bundle is None:
            raise PolicyUnavailableError(f"no authorization policy is loaded: {self.error}")
        results = {}
        with self._lock:
            for text in bundle.files.values():
                package = _PACKAGE.search(text)
                for name in dict.fromkeys(_TEST_RULE.findall(text)):
                    path = f"data.{package.group(1)}.{name}" if package else name
                    results[path] = _query(bundle.interpreter, None, f"x := {path}") is True
        return results


def _to_decision(raw: Any, digest: str) -> Decision:
    if not isinstance(raw, dict) or raw.get("allow") is not True:
        missing = raw.get("missing") if isinstance(raw, dict) else None
        grantors = raw.get("grantors") if isinstance(raw, dict) else None
        return Decision(
            allow=False,
            missing=tuple(missing) if isinstance(missing, list) else ("permission",),
            grantors=tuple(grantors) if isinstance(grantors, list) else (),
            bundle=digest,
        )
    return Decision(
        allow=True,
        roles=tuple(raw.get("roles") or ()),
        grantors=tuple(raw.get("grantors") or ()),
        bundle=digest,
    )
