"""`PromptRegistry`: the runtime's view of registered prompts, cached with a TTL.

A request never waits on the MLflow store while its prompt is cached; entries expire after
`ttl_seconds` so a promotion reaches every process within that time. If the store cannot be
reached when an entry expires, the stale entry keeps serving (and a warning is logged): an
MLflow outage must not take answering down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from agent_platform.prompts.ab import AB_TRAFFIC_TAG, AbSplit, Variant
from agent_platform.prompts.contract import effective_variables, prepare_inputs
from agent_platform.prompts.errors import PromptNotFoundError
from agent_platform.prompts.sandbox import make_environment, render
from agent_platform.prompts.spec import PromptFile, parse_prompt_source
from agent_platform.prompts.store import CHALLENGER, PRODUCTION, MlflowPromptStore

logger = logging.getLogger(__name__)
DEFAULT_TTL_SECONDS = 60.0
T = TypeVar("T")  # what one cache key holds


@dataclass(frozen=True)
class RenderedPrompt:
    """Rendered text and the identifiers to record with the request's metrics."""

    text: str
    name: str
    version: int
    semver: str
    variant: Variant | None = None

    def metrics_tags(self) -> dict[str, str]:
        """Tags to attach to the request's trace or metrics (variant only during an A/B test)."""
        tags = {"prompt.name": self.name, "prompt.version": str(self.version)}
        tags["prompt.semver"] = self.semver
        if self.variant is not None:
            tags["prompt.variant"] = self.variant
        return tags


@dataclass(frozen=True)
class LoadedPrompt:
    """A registered version with its ancestors' pinned versions, ready to render."""

    name: str
    version: int
    semver: str
    chain: list[PromptFile] = field(default_factory=list)

    @property
    def declared(self) -> dict[str, Any]:
        return effective_variables(self.chain)

    def render(self, inputs: Mapping[str, Any], variant: Variant | None = None) -> RenderedPrompt:
        """Validate `inputs` against the declared variables, then render in the sandbox."""
        prepared = prepare_inputs(self.name, self.declared, inputs)
        env = make_environment({p.name: p.source for p in self.chain})
        return RenderedPrompt(
            render(env, self.name, prepared), self.name, self.version, self.semver, variant
        )


class PromptRegistry:
    """Fetch prompts by name and alias or version, cached with a TTL, and render them."""

    def __init__(
        self,
        store: MlflowPromptStore,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self.store_fetches = 0

    @classmethod
    def from_settings(
        cls, settings: Any, *, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> PromptRegistry:
        """A registry over the MLflow store that `Settings` resolves."""
        return cls(
            MlflowPromptStore(settings.resolved_mlflow_tracking_uri), ttl_seconds=ttl_seconds
        )

    def _cached(self, key: tuple[str, str], fetch: Callable[[], T]) -> T:
        """`fetch()`, cached for the TTL; the key's kind (a version, `@latest`, `@ab`) fixes the
        type of what the cache holds under it."""
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and entry[0] > now:
            return cast(T, entry[1])
        try:
            self.store_fetches += 1
            value = fetch()
        except PromptNotFoundError:
            raise
        except Exception:
            if entry is None:
                raise
            logger.warning("prompt store unreachable; serving cached %s", key, exc_info=True)
            return cast(T, entry[1])
        with self._lock:
            self._cache[key] = (now + self.ttl_seconds, value)
        return value

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached entries (all, or one prompt's): the next fetch goes to the store."""
        with self._lock:
            for key in [k for k in self._cache if name is None or k[0] == name]:
                del self._cache[key]

    def get(
        self, name: str, *, alias: str = PRODUCTION, version: int | None = None
    ) -> LoadedPrompt:
        """A prompt by alias (default `production`) or exact version, with its ancestors."""
        ref = str(version) if version is not None else f"@{alias}"
        return self._cached((name, ref), lambda: self._fetch(name, alias, version))

    def _fetch(self, name: str, alias: str, version: int | None) -> LoadedPrompt:
        stored = (
            self.store.get(name, version)
            if version is not None
            else self.store.by_alias(name, alias)
        )
        if stored is None:
            raise PromptNotFoundError(f"prompt {name!r} has no version with alias {alias!r}")
        chain = [
            parse_prompt_source(stored.template, Path(f"mlflow:{name}/{stored.version}"), name)
        ]
        if stored.parent is not None:  # ancestors at the versions this one was built against
            chain = [*self.get(stored.parent[0], version=stored.parent[1]).chain, *chain]
        return LoadedPrompt(name, stored.version, stored.semver, chain)

    def latest_version(self, name: str) -> int:
        """The newest registered version number of `name` (cached like prompts)."""
        return self._cached((name, "@latest"), lambda: self._fetch_latest(name))

    def _fetch_latest(self, name: str) -> int:
        latest = self.store.latest(name)
        if latest is None:
            raise PromptNotFoundError(f"prompt {name!r} has no registered version")
        return latest.version

    def ab_split(self, name: str) -> AbSplit | None:
        """The running A/B test of `name`, if any (cached like prompts)."""
        return self._cached((name, "@ab"), lambda: self._fetch_split(name))

    def _fetch_split(self, name: str) -> AbSplit | None:
        challenger = self.store.by_alias(name, CHALLENGER)
        production = self.store.by_alias(name, PRODUCTION)
        if challenger is None or production is None:
            return None
        traffic = float(self.store.prompt_tags(name).get(AB_TRAFFIC_TAG, "0"))
        return AbSplit(name, production.version, challenger.version, traffic)

    def render(
        self,
        name: str,
        inputs: Mapping[str, Any],
        *,
        subject_id: str | None = None,
        alias: str = PRODUCTION,
        version: int | None = None,
    ) -> RenderedPrompt:
        """Render the version a request should see: the A/B variant of `subject_id` if a test
        runs on the production alias, else the alias or version asked for."""
        if version is None and alias == PRODUCTION and subject_id is not None:
            split = self.ab_split(name)
            if split is not None:
                variant, chosen = split.assign(subject_id)
                return self.get(name, version=chosen).render(inputs, variant)
        return self.get(name, alias=alias, version=version).render(inputs)
