"""The runtime imports neither Dagster nor (until Gemma is used) torch; settings wire it up."""

from __future__ import annotations

import subprocess
import sys

from agent_platform.runtime.catalogue import ModelCatalogue
from agent_platform.runtime.config import RuntimeSettings
from agent_platform.runtime.router import Router

MODULES = [
    "agent_platform.runtime",
    "agent_platform.runtime.memory",
    "agent_platform.runtime.models",
    "agent_platform.runtime.models.gemma",
    "agent_platform.runtime.context_window",
    "agent_platform.runtime.telemetry",
    "agent_platform.runtime.agent",
    "agent_platform.cli.run",
]


def test_runtime_imports_without_dagster_or_torch() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'dagster', 'torch'})\n"
        "assert not heavy, heavy[:5]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_router_from_settings_applies_per_model_breaker_thresholds(settings) -> None:
    runtime = RuntimeSettings()
    router = Router.from_settings(runtime, ModelCatalogue.from_settings(runtime, settings.home_dir))
    assert router.breakers.get("extractive").config.max_p95_latency_ms == 500
    assert router.breakers.get("gemma-3-270m").config.max_p95_latency_ms == 60_000
    assert router.routes["default"].models == ["extractive", "gemma-3-270m"]
    router.close()
