"""The request path's non-model hot spots, old and new side by side in one process.

    .venv/bin/python benchmarks/request_hotspots.py [--calls 3000] [--rounds 5]

- Rate limits: `RateLimiter.acquire` (six limits: global, user and model, requests and tokens)
  over `limits`' `MemoryStorage` (a `threading.Timer` per hit once the last has fired) and over
  `LocalWindowStorage`; CPU µs per call (`time.process_time`, which counts the timer threads'
  CPU too) and threads started.
- Token counting: the regex `findall` the runtime used before, and `count_tokens` (alphanumeric
  fast path and a per-text memo), over a rendered prompt's parts as one request counts them
  (each source once, the whole prompt twice), every text new to the memo.
Rounds alternate old and new, so a noisy neighbour hurts both alike; the best round is reported.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from limits.storage import MemoryStorage

from agent_platform.runtime.config import RateLimitSettings
from agent_platform.runtime.rate_limit import RateLimiter
from agent_platform.runtime.tokens import count_tokens
from agent_platform.runtime.window_counters import LocalWindowStorage

KINDS = ("requests", "tokens")
_OLD = re.compile(r"\w+|[^\w\s]")
DOCS = Path(__file__).resolve().parents[1] / "docs"


def limiter_us(storage_factory, calls: int) -> tuple[float, int]:
    counted = 0
    original = threading.Thread.start

    def counting_start(self) -> None:  # type: ignore[no-untyped-def]
        nonlocal counted
        counted += 1
        original(self)

    threading.Thread.start = counting_start  # type: ignore[method-assign]
    try:
        big = 10**9  # never refuse: the cost of admitting is what is measured
        limits = RateLimitSettings(
            **{f"{s}_{k}_per_minute": big for s in ("global", "user", "model") for k in KINDS}
        )
        limiter = RateLimiter(limits, storage=storage_factory())
        cpu = time.process_time()
        for i in range(calls):
            limiter.acquire(user=f"user-{i % 20}", model="extractive", tokens=300)
            if i % 50 == 0:
                time.sleep(0.012)  # requests arrive spaced out, so the timer fires between them
        spent = time.process_time() - cpu
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
    return spent / calls * 1e6, counted


def prompt_parts() -> list[str]:
    texts = [p.read_text() for p in sorted(DOCS.rglob("*.md"))][:8]
    return [t[:1500] for t in texts]


def tokens_us(count, parts: list[str], repeats: int) -> float:
    cpu = time.process_time()
    for r in range(repeats):
        # one request: each source while packing, then the whole prompt twice (router, usage);
        # every text is new to the memo (conservative: real requests often repeat sources)
        fresh = [f"{part} {r}" for part in parts]
        whole = "\n\n".join(fresh)
        for part in fresh:
            count(part)
        count(whole)
        count(whole)
    return (time.process_time() - cpu) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    old_limit, new_limit, old_tok, new_tok = [], [], [], []
    old_threads = new_threads = 0
    parts = prompt_parts()
    for _ in range(args.rounds):
        us, old_threads = limiter_us(MemoryStorage, args.calls)
        old_limit.append(us)
        us, new_threads = limiter_us(LocalWindowStorage, args.calls)
        new_limit.append(us)
        old_tok.append(tokens_us(lambda t: len(_OLD.findall(t)), parts, 200))
        count_tokens.cache_clear()  # the memo starts empty each round, as for a new text
        new_tok.append(tokens_us(count_tokens, parts, 200))
    print("| measure | before | after |\n|---|---|---|")
    print(f"| RateLimiter.acquire, CPU µs/call | {min(old_limit):.1f} | {min(new_limit):.1f} |")
    print(f"| threads started per {args.calls} calls | {old_threads} | {new_threads} |")
    print(f"| token counts of one request, CPU µs | {min(old_tok):.0f} | {min(new_tok):.0f} |")


if __name__ == "__main__":
    main()
