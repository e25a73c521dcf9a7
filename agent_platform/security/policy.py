"""The Rego policy bundle and its decisions.

The bundle is every `.rego` file under the policy directory; its content hash (SHA-256 over the
files' relative paths and bytes) names the policy in `GET /v1/agents/{agent}` and in every audit
record. `reload()` picks up changes: a bundle that fails to parse or to answer a probe decision
keeps the last good one and marks the engine not ready (`error`); with no good bundle at all,
every decision fails closed (`PolicyUnavailableError`), never allow-all.

Evaluation is local (regopy, rego-cpp's bindings), in a child process (`policy_worker.py`):
rego-cpp's library aborts a process that loads PyTorch after it, and a crash of its C++ must
cost one restarted worker, not the gateway. A worker that dies is restarted with the last good
bundle; meanwhile decisions fail closed.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess  # nosec B404  # fixed argument lists, never a shell
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_platform.security.errors import PolicyUnavailableError

WORKER = Path(__file__).with_name("policy_worker.py")
STOP_GRACE_S = 1.0
_TEST_RULE = re.compile(r"^(test_\w+)\s+if\b", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_WORKER_ERRORS = (BrokenPipeError, OSError, ValueError)


class PolicyError(ValueError):
    """A bundle that cannot be used: the message names the file or the problem."""


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    missing: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    grantors: tuple[str, ...] = ()
    bundle: str | None = None


def read_bundle(directory: Path) -> tuple[str, dict[str, str]]:
    """The .rego files under `directory` and their content hash."""
    files = {
        str(p.relative_to(directory)): p.read_text(encoding="utf-8")
        for p in sorted(Path(directory).rglob("*.rego"))
    }
    if not files:
        raise PolicyError(f"policy directory {Path(directory).name}: no .rego files")
    digest = hashlib.sha256()
    for name, text in files.items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return "sha256:" + digest.hexdigest(), files


class _Worker:
    """One evaluator process and its pipe."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # nosec B603  # fixed argument list, no shell; no user input in it
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin and self.process.stdout  # nosec B101  # Popen was given PIPE for both; narrows the type for mypy
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise BrokenPipeError("the policy worker exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        """End of input ends the worker's loop, so it exits as a process should (its atexit
        handlers run: coverage, for one); one that does not within a second is killed."""
        if self.process.poll() is None:
            try:
                if self.process.stdin:
                    self.process.stdin.close()
                self.process.wait(timeout=STOP_GRACE_S)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout:
            self.process.stdout.close()


class DecisionCache:
    """Decisions remembered for `ttl_s` per (input, bundle): a request asks the same question
    several times, and one evaluation is enough. A decision of another bundle never answers."""

    MAX_ENTRIES = 10_000

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Decision]] = {}

    @staticmethod
    def key(input_value: dict[str, Any]) -> str:
        return json.dumps(input_value, sort_keys=True, default=str)

    def get(self, key: str, digest: str) -> Decision | None:
        cached = self._entries.get(key)
        if cached and cached[0] > time.monotonic() and cached[1].bundle == digest:
            return cached[1]
        return None

    def put(self, key: str, decision: Decision) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) > self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl_s, decision)

    def clear(self) -> None:
        self._entries.clear()


class PolicyEngine:
    """Decisions from the active bundle; thread-safe (one worker behind a lock)."""

    def __init__(self, directory: Path, *, cache_s: float = 2.0) -> None:
        self.directory = Path(directory)
        self.digest: str | None = None
        self.files: dict[str, str] = {}
        self.error: str | None = None
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._cache = DecisionCache(cache_s)
        self.reload()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send to the worker (under the lock), restarting it once with the good bundle."""
        for attempt in (1, 2):
            if self._worker is None:
                self._worker = _Worker()
                if self.files and request.get("op") != "load":
                    self._worker.call({"op": "load", "files": self.files})
            try:
                return self._worker.call(request)
            except _WORKER_ERRORS:
                self._worker.stop()
                self._worker = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def reload(self) -> bool:
        """Load the directory's bundle if it changed; False when it is unusable (the last
        good bundle stays active and `error` says why)."""
        try:
            digest, files = read_bundle(self.directory)
        except (PolicyError, OSError, UnicodeError) as exc:
            self.error = str(exc)
            return False
        if digest == self.digest:
            self.error = None
            return True
        with self._lock:
            try:
                reply = self._call({"op": "load", "files": files})
            except _WORKER_ERRORS as exc:
                reply = {"ok": False, "error": f"policy worker failed: {exc}"}
            if not reply.get("ok"):
                self.error = str(reply.get("error"))  # the worker keeps the old modules
                return False
            self.digest, self.files, self.error = digest, files, None
            self._cache.clear()
        return True

    def decide(self, input_value: dict[str, Any]) -> Decision:
        """The policy's answer for `input_value`; anything unexpected is a denial."""
        digest = self.digest
        if digest is None:
            raise PolicyUnavailableError(f"no authorization policy is loaded: {self.error}")
        key = DecisionCache.key(input_value)
        cached = self._cache.get(key, digest)
        if cached is not None:
            return cached
        with self._lock:
            try:
                reply = self._call({"op": "decide", "input": input_value})
            except _WORKER_ERRORS as exc:
                raise PolicyUnavailableError("the policy evaluator is unavailable") from exc
        decision = _to_decision(reply.get("decision") if reply.get("ok") else None, digest)
        self._cache.put(key, decision)
        return decision

    def run_tests(self) -> dict[str, bool]:
        """Every `test_` rule of the active bundle: name -> passed (one query per package)."""
        if self.digest is None:
            raise PolicyUnavailableError(f"no authorization policy is loaded: {self.error}")
        results = {}
        with self._lock:
            for text in self.files.values():
                names = list(dict.fromkeys(_TEST_RULE.findall(text)))
                package = _PACKAGE.search(text)
                if not names or not package:
                    continue
                reply = self._call({"op": "query", "query": f"x := data.{package.group(1)}"})
                value = reply.get("value") if reply.get("ok") else None
                for name in names:
                    passed = isinstance(value, dict) and value.get(name) is True
                    results[f"data.{package.group(1)}.{name}"] = passed
        return results

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None


def _to_decision(raw: Any, digest: str) -> Decision:
    if not isinstance(raw, dict) or raw.get("allow") is not True:
        missing = raw.get("missing") if isinstance(raw, dict) else None
        grantors = raw.get("grantors") if isinstance(raw, dict) else None
        return Decision(
            allow=False,
            missing=tuple(missing) if isinstance(missing, list) and missing else ("permission",),
            grantors=tuple(grantors) if isinstance(grantors, list) else (),
            bundle=digest,
        )
    return Decision(
        allow=True,
        roles=tuple(raw.get("roles") or ()),
        grantors=tuple(raw.get("grantors") or ()),
        bundle=digest,
    )
