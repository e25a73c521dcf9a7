"""Progress reporting for long work: a terminal bar for the CLI, periodic log lines elsewhere."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PROGRESS_BAR_ENV = "AGENT_PLATFORM_PROGRESS_BAR"


def progress_bar_enabled() -> bool:
    """The CLI turns bars on for an interactive terminal; Dagster runs log instead."""
    return os.environ.get(PROGRESS_BAR_ENV) == "1" and sys.stderr.isatty()


@contextmanager
def progress_reporter(
    description: str, log: Callable[[str], None] | None = None, every_percent: int = 10
) -> Iterator[Callable[[int, int], None]]:
    """Yield a `(done, total)` callback that drives a bar and/or logs every N percent."""
    bar = None
    last_logged = -every_percent

    def report(done: int, total: int) -> None:
        nonlocal bar, last_logged
        if progress_bar_enabled():
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=total, desc=description, unit="chunk", file=sys.stderr)
            bar.update(done - bar.n)
        if log and total:
            percent = int(100 * done / total)
            if percent >= last_logged + every_percent or (done == total and last_logged < 100):
                last_logged = percent
                log(f"{description}: {done}/{total} ({percent}%)")

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()
