"""agent-platform: the runtime library and Python API.

This package never imports Dagster: a serving process imports it to answer requests, and the
Dagster assets in `assets/` call into it. The one exception is `agent_platform.definitions`, the
composition root that Dagster loads, and the CLI commands that run materializations.
"""

__version__ = "0.1.0"
