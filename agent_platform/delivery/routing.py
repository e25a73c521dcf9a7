"""Which version answers a request during a rollout: a stable hash of user and session.

The same (user, session) always lands in the same bucket, so a conversation stays on one version
while the weight grows (a bucket below 10 stays on green at 50 and 100), and every gateway
replica routes a caller the same way without sharing anything but the rollout state. A caller
with neither user nor session has nothing to stay on: each of its requests draws a bucket at
random, so anonymous traffic splits by the weight instead of landing in one bucket together.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from agent_platform.delivery.state import Rollout

BUCKETS = 10_000


def bucket(user: str, session_id: str | None) -> float:
    """A percentage in [0, 100) fixed by the caller's user and session."""
    digest = hashlib.sha256(f"{user}\x00{session_id or ''}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % BUCKETS) * 100 / BUCKETS


def version_for(
    rollout: Rollout,
    user: str | None,
    session_id: str | None,
    draw: Callable[[], float] = random.random,
) -> str:
    """Green's label for a caller whose bucket is under the weight, else blue's; an anonymous
    request (no user, no session) takes `draw()` (uniform in [0, 1)) as its bucket."""
    if not rollout.active:
        return rollout.blue
    position = bucket(user or "", session_id) if user or session_id else draw() * 100
    return rollout.green if position < rollout.weight else rollout.blue
