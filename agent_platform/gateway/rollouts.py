"""The gateway's view of blue/green rollouts: which version a caller of `agent` (champion)
gets while one is in progress, re-read from the rollout state every `state_ttl_s`.

Both versions stay loaded side by side; a request keeps the runtime it resolved, so a weight
change never drops one in flight. When a rollout changes, the cached `champion` alias of its
agent is dropped, so a rollback that restored the alias is served at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from agent_platform.delivery.routing import version_for
from agent_platform.delivery.state import Rollout, RolloutStore

logger = logging.getLogger(__name__)
STATE_TTL_S = 1.0


class RolloutView:
    def __init__(
        self,
        store: RolloutStore,
        on_change: Callable[[str], None],
        ttl_s: float = STATE_TTL_S,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self.on_change, self.ttl_s = store, on_change, ttl_s
        self.rng = rng or random.Random()  # nosec B311  # traffic split, not a secret (seeded in tests)
        self._seen: dict[str, tuple[Rollout | None, float]] = {}

    def fresh(self, agent: str) -> bool:
        entry = self._seen.get(agent)
        return entry is not None and entry[1] > time.monotonic()

    def refresh(self, agent: str) -> Rollout | None:
        """Re-read the newest rollout of `agent` (blocking: SQLite); a store that cannot be read
        keeps the last view rather than guessing."""
        previous = self._seen.get(agent, (None, 0.0))[0]
        try:
            latest = self.store.latest(agent)
        except Exception as exc:
            logger.warning("rollout state of %s unreadable, keeping the last view: %s", agent, exc)
            latest = previous
        self._seen[agent] = (latest, time.monotonic() + self.ttl_s)
        if latest is not None and (previous is None or previous.updated_at != latest.updated_at):
            if previous is None or (previous.stage, previous.weight) != (
                latest.stage,
                latest.weight,
            ):
                logger.info("rollout: %s", latest.summary())
            self.on_change(agent)
        return latest

    def version(self, agent: str, user: str | None, session_id: str | None) -> str | None:
        """The version label for this caller during an active rollout, else None (no I/O);
        without user and session, drawn per request."""
        rollout = self._seen.get(agent, (None, 0.0))[0]
        if rollout is None or not rollout.active:
            return None
        return version_for(rollout, user, session_id, self.rng.random)
