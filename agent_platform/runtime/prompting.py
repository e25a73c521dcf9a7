"""Resolve and render the agent's prompts from the prompt registry, fast.

Which version serves: a version pinned in the `AgentConfig`; else its alias (`production`) with
the A/B variant of the user when a test runs on it. When the prompt has no version under that
alias yet, what happens is the resolver's `unpromoted_fallback` policy (the setting
`prompts.unpromoted_fallback`; unset, on in the `local` profile, off in `production`): on,
`candidate` serves, else the newest version; off, the request fails with an error naming the
prompt and the command that promotes it, so nothing unapproved reaches production traffic.
`PromptUsed.alias` records which it was. A failed alias lookup (and the newest version) is
remembered for the registry's TTL, so an unpromoted prompt does not cost a store round trip per
request.

A prompt with no registered version at all is published on first use when the resolver has a
`publisher` (setting `prompts.publish_on_first_use`: unset, on in `local`, off in `production`);
without one the error names the command that publishes it.

Rendering uses the registry's sandbox and contract checks; the compiled Jinja environment of each
(name, version) is kept, since compiling the template chain dominates the cost of a render.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from agent_platform.prompts import (
    CANDIDATE,
    PRODUCTION,
    LoadedPrompt,
    PromptNotFoundError,
    PromptRegistry,
    RenderedPrompt,
)
from agent_platform.prompts.contract import prepare_inputs
from agent_platform.prompts.sandbox import make_environment, render
from agent_platform.runtime.agent_config import PromptRef
from agent_platform.runtime.response import PromptUsed

LATEST = "latest"


class PromptResolver:
    """`PromptRef` → the `LoadedPrompt` a request should use, and its rendering."""

    def __init__(
        self,
        registry: PromptRegistry,
        *,
        unpromoted_fallback: bool,
        publisher: Callable[[str], object] | None = None,
    ) -> None:
        """`unpromoted_fallback`: `Settings.prompt_fallback_allowed` (see the module docstring);
        required, so production never serves an unapproved prompt by default. `publisher`
        registers a prompt that has no version yet (`FirstUsePublisher`)."""
        self.registry = registry
        self.unpromoted_fallback = unpromoted_fallback
        self.publisher = publisher
        self._known: set[str] = set()  # prompts known to have a registered version
        self._lock = threading.Lock()
        self._fallback: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._envs: dict[tuple[str, int], ImmutableSandboxedEnvironment] = {}

    def resolve(
        self, ref: PromptRef, subject_id: str | None = None
    ) -> tuple[LoadedPrompt, str, str | None]:
        """(prompt, alias used, A/B variant) for `ref` and the request's subject (user)."""
        try:
            return self._resolve(ref, subject_id)
        except PromptNotFoundError:
            if self._registered(ref.name):
                raise  # registered, just not under the alias or version asked for
            if self.publisher is None:
                raise self._unpublished(ref.name) from None
        self.publisher(ref.name)  # the first request of a fresh home
        self.registry.invalidate()
        with self._lock:
            self._fallback.clear()
        return self._resolve(ref, subject_id)

    def _registered(self, name: str) -> bool:
        """Whether `name` has any version (a yes is remembered: versions are never deleted)."""
        if name in self._known:
            return True
        if self.registry.store.latest(name) is None:
            return False
        self._known.add(name)
        return True

    def _resolve(
        self, ref: PromptRef, subject_id: str | None
    ) -> tuple[LoadedPrompt, str, str | None]:
        if ref.version is not None:
            return self.registry.get(ref.name, version=ref.version), f"v{ref.version}", None
        alias = self._serving_alias(ref.name, ref.alias)
        if alias == ref.alias == PRODUCTION and subject_id:
            split = self.registry.ab_split(ref.name)
            if split is not None:
                variant, version = split.assign(subject_id)
                return self.registry.get(ref.name, version=version), alias, variant
        if alias == LATEST:
            version = self.registry.latest_version(ref.name)
            return self.registry.get(ref.name, version=version), alias, None
        return self.registry.get(ref.name, alias=alias), alias, None

    def _serving_alias(self, name: str, alias: str) -> str:
        """`alias` if it resolves; else candidate, else latest, when the fallback is allowed.
        The choice (or the refusal) is remembered for the TTL."""
        now = time.monotonic()
        with self._lock:
            cached = self._fallback.get((name, alias))
        if cached is None or cached[0] <= now:
            options = (alias, CANDIDATE, LATEST) if self.unpromoted_fallback else (alias,)
            chosen = next((o for o in options if o == LATEST or self._resolves(name, o)), None)
            cached = (now + self.registry.ttl_seconds, chosen)
            with self._lock:
                self._fallback[(name, alias)] = cached
        if cached[1] is None:
            raise self._not_served(name, alias)
        return cached[1]

    def _resolves(self, name: str, alias: str) -> bool:
        try:
            self.registry.get(name, alias=alias)
        except PromptNotFoundError:
            return False
        return True

    def _unpublished(self, name: str) -> PromptNotFoundError:
        then = (
            ""
            if self.unpromoted_fallback
            else f", then approve a version and run: agent-platform prompts promote {name} VERSION"
        )
        return PromptNotFoundError(
            f"prompt {name!r} has no registered version (publishing on first use is off: "
            f"setting prompts.publish_on_first_use); publish the prompts with: "
            f"agent-platform prompts publish{then}"
        )

    @staticmethod
    def _not_served(name: str, alias: str) -> PromptNotFoundError:
        if alias != PRODUCTION:
            return PromptNotFoundError(f"prompt {name!r} has no version with alias {alias!r}")
        return PromptNotFoundError(
            f"prompt {name!r} has no version with alias 'production', and serving an unpromoted "
            "version is disabled (setting prompts.unpromoted_fallback, off in the production "
            f"profile); approve a version, then run: agent-platform prompts promote {name} VERSION"
        )

    def render(
        self, prompt: LoadedPrompt, inputs: Mapping[str, Any], variant: str | None = None
    ) -> RenderedPrompt:
        """Validate `inputs` against the prompt's contract and render it in the sandbox."""
        prepared = prepare_inputs(prompt.name, prompt.declared, inputs)
        key = (prompt.name, prompt.version)
        with self._lock:
            env = self._envs.get(key)
        if env is None:
            env = make_environment({p.name: p.source for p in prompt.chain})
            with self._lock:
                self._envs[key] = env
        text = render(env, prompt.name, prepared)
        return RenderedPrompt(text, prompt.name, prompt.version, prompt.semver, variant)  # type: ignore[arg-type]

    @staticmethod
    def declared_default(prompt: LoadedPrompt, variable: str) -> Any:
        spec = prompt.declared.get(variable)
        return None if spec is None else spec.default

    @staticmethod
    def used(rendered: RenderedPrompt, alias: str) -> PromptUsed:
        return PromptUsed(
            name=rendered.name,
            version=rendered.version,
            semver=rendered.semver,
            variant=rendered.variant,
            alias=alias,
        )
