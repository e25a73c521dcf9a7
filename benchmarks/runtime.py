"""Runtime benchmark: per-request overhead of the agent workflow, throughput, full latency.

    .venv/bin/python benchmarks/runtime.py [--requests 300] [--gemma 6] [--skip-gemma]

Setup (not timed): a fresh home, the project's docs/ indexed as tenant `sample` by the real
Dagster knowledge job, the shipped prompts published to MLflow (`grounded_qa_system` promoted).

1. Overhead, with a model that answers instantly (LangChain's FakeListChatModel registered in the
   catalogue as `instant`): per request, `total - model_call - embed_query` (the model call as the
   router times it, and embedding the question with all-MiniLM-L6-v2, are model time). Measured
   serially (`run`) and at concurrency 10 (`abatch`, max_concurrency=10), with requests/second and
   CPU time per request. Every request is real: validation, tenant check, retrieval (vector + BM25
   + RRF over the embedded store), prompt rendering, routing with telemetry, output validation,
   and three SQLite memory writes.
2. Full latency (serial) with the extractive model, and with Gemma 3 270M (CPU, transformers).
Writes benchmarks/results/runtime.json and runtime_latency.png (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_core.language_models.fake_chat_models import FakeListChatModel

from agent_platform.runtime.agent import AgentRuntime
from agent_platform.runtime.catalogue import ModelSpec, default_models
from agent_platform.runtime.config import (
    RateLimitSettings,
    RouteSettings,
    RuntimeSettings,
    TelemetrySettings,
)
from agent_platform.runtime.errors import AgentRunError
from agent_platform.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUESTIONS = [
    "How do I switch from the embedded default to production?",
    "What happens to a corrupted index?",
    "Which fusion does hybrid search use?",
    "How are prompts promoted to production?",
    "How is a tenant's index backed up?",
    "What does the knowledge pipeline do with changed documents?",
    "Which embedding model is used?",
    "How do I roll back a prompt?",
]


def prepare(home: Path) -> Settings:
    from agent_platform.cli.execution import run_tenant_job
    from agent_platform.prompts import (
        ApproverRoles,
        MlflowPromptStore,
        PromotionService,
        PromptRepository,
        ReviewLog,
        publish_prompt,
    )
    from agent_platform.prompts.repository import BUILTIN_PROMPTS_DIR
    from agent_platform.tenants import TenantRegistry

    (home / "dagster").mkdir(parents=True)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    settings = Settings(home=home)
    TenantRegistry(settings.tenant_registry_path).register("sample", ROOT / "docs")
    outcome = run_tenant_job(settings, "knowledge_job", "sample")
    assert outcome.success, outcome.failures
    store = MlflowPromptStore(settings.resolved_mlflow_tracking_uri)
    repo = PromptRepository.from_dirs([BUILTIN_PROMPTS_DIR])
    for name in repo.names():
        publish_prompt(repo, store, name)
    service = PromotionService(
        store,
        ReviewLog.under(home),
        ApproverRoles(approvers={"prompt-owner-lead": ["prompt-owner"], "safety-lead": ["safety"]}),
    )
    for role in ("prompt-owner", "safety"):
        service.approve("grounded_qa_system", 1, role=role, by=f"{role}-lead")
    service.promote("grounded_qa_system", 1, by="bench")
    return settings


def runtime_for(settings: Settings, route: list[str]) -> AgentRuntime:
    instant = ModelSpec(name="instant", provider="fake", model="instant", context_window=32_768)
    config = RuntimeSettings(
        models=[*default_models(), instant],
        routes={"default": RouteSettings(models=route)},
        rate_limits=RateLimitSettings(
            user_requests_per_minute=10**6,
            user_tokens_per_minute=10**9,
            global_requests_per_minute=10**6,
            global_tokens_per_minute=10**9,
            model_requests_per_minute=10**6,
            model_tokens_per_minute=10**9,
        ),
        telemetry=TelemetrySettings(exporter="jsonfile"),
        model_cache_dir=Path.home() / ".cache" / "agent_platform",
    )
    runtime = AgentRuntime.from_settings(settings, runtime_settings=config)
    runtime.catalogue.register_model(
        "instant", FakeListChatModel(responses=["The sources above answer this."])
    )
    return runtime


def request(i: int) -> dict:
    return {"tenant": "sample", "user": f"user-{i % 20}", "input": QUESTIONS[i % len(QUESTIONS)]}


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)} | {
        "mean": round(float(a.mean()), 2),
        "n": len(values),
    }


def overhead(response) -> float:
    lat = response.latency_ms
    return (
        lat["total"]
        - lat.get("execute_model.model_call", 0)
        - lat.get("load_context.embed_query", 0)
    )


def bench_instant(settings: Settings, n: int) -> dict:
    runtime = runtime_for(settings, ["instant"])
    for i in range(20):  # warm up: embedder, prompt cache, SQLite pages
        runtime.run(**request(i))
    cpu, wall = time.process_time(), time.perf_counter()
    serial = [runtime.run(**request(i)) for i in range(n)]
    serial_wall, serial_cpu = time.perf_counter() - wall, time.process_time() - cpu
    cpu, wall = time.process_time(), time.perf_counter()
    batch = asyncio.run(runtime.abatch([request(i) for i in range(n)], max_concurrency=10))
    batch_wall, batch_cpu = time.perf_counter() - wall, time.process_time() - cpu
    runtime.close()
    return {
        "serial": {
            "overhead_ms": pct([overhead(r) for r in serial]),
            "total_ms": pct([r.latency_ms["total"] for r in serial]),
            "embed_ms": pct([r.latency_ms["load_context.embed_query"] for r in serial]),
            "rps": round(n / serial_wall, 1),
            "cpu_ms_per_request": round(serial_cpu / n * 1000, 2),
            "phases_mean_ms": {
                k: round(float(np.mean([r.latency_ms[k] for r in serial])), 3)
                for k in serial[0].latency_ms
            },
        },
        "concurrency_10": {
            "overhead_ms": pct([overhead(r) for r in batch]),
            "total_ms": pct([r.latency_ms["total"] for r in batch]),
            "rps": round(n / batch_wall, 1),
            "cpu_ms_per_request": round(batch_cpu / n * 1000, 2),
        },
        "_totals": {
            "serial": [r.latency_ms["total"] for r in serial],
            "c10": [r.latency_ms["total"] for r in batch],
        },
    }


def bench_model(settings: Settings, model: str, n: int) -> dict:
    runtime = runtime_for(settings, [model])
    runtime.run(**request(0))  # load weights
    totals, models, failures, answers = [], [], 0, []
    for i in range(n):
        try:
            response = runtime.run(**request(i))
        except AgentRunError as exc:
            failures += 1
            answers.append(f"FAILED: {str(exc)[:160]}")
            continue
        totals.append(response.latency_ms["total"])
        models.append(response.latency_ms.get("execute_model.model_call", 0))
        answers.append(response.answer[:160])
    runtime.close()
    return {
        "total_ms": pct(totals) if totals else None,
        "model_call_ms": pct(models) if models else None,
        "failures": failures,
        "sample_answers": answers[:3],
        "_totals": totals,
    }


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    series = {
        "instant model, serial": results["instant"]["_totals"]["serial"],
        "instant model, concurrency 10": results["instant"]["_totals"]["c10"],
        "extractive, serial": results["extractive"]["_totals"],
    }
    if results.get("gemma") and results["gemma"]["_totals"]:
        series["gemma-3-270m, serial"] = results["gemma"]["_totals"]
    for label, values in series.items():
        xs = np.sort(np.asarray(values))
        ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs), label=label)
    ax.set_xscale("log")
    ax.set_xlabel("request latency (ms, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("agent runtime: end-to-end request latency (CDF)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--gemma", type=int, default=6)
    parser.add_argument("--skip-gemma", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = prepare(Path(tmp) / "home")
        results = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "instant": bench_instant(settings, args.requests),
            "extractive": bench_model(settings, "extractive", args.requests),
        }
        if not args.skip_gemma:
            results["gemma"] = bench_model(settings, "gemma-3-270m", args.gemma)
    png = RESULTS / "runtime_latency.png"
    results["plot"] = str(png) if plot(results, png) else None
    for part in ("instant", "extractive", "gemma"):
        if part in results:
            results[part].pop("_totals", None)
    (RESULTS / "runtime.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
