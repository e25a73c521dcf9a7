"""Gateway benchmark: the highest sustained request rate at p95 <= 250 ms and errors <= 0.1 %,
for 1 and 2 workers, against calling `AgentRuntime.run` in process.

    .venv/bin/python benchmarks/serve.py [--step-s 15] [--start-rps 4] [--workers 1 2]

Setup (not timed): a fresh home, the project's docs/ indexed as tenant `sample` by the real
Dagster knowledge job, the shipped prompts published (`grounded_qa_system` promoted). Rate limits
are raised so they never refuse. The extractive model answers over real hybrid retrieval.

1. In process: `AgentRuntime.run` serially (latency, CPU time per request), after a warm-up.
2. For each worker count: `agent-platform serve --workers N` on a loopback port; locust
   (headless, FastHttpUser, constant throughput per user) offers a rate for `--step-s` seconds,
   stepping the rate up by `--factor` until p95 > 250 ms, errors > 0.1 % or the achieved rate
   falls below 90 % of the offered one (but at least `--min-steps` steps, for the plot).
   Server CPU time (all its processes) per request from psutil.
Warm-up, excluded from every measurement: calls (in process) or requests (to the server, from
2 x workers threads so every worker gets some) go on until the CPU time per call of the last
`WARM_WINDOW` is within `WARM_TOLERANCE` of the window before, between `--warm-min` and
`--warm-max` calls. The warm-up's windows are reported, so a cost that never settles shows.
Prints a table; writes benchmarks/results/serve.json and docs/images/serve_latency.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
LIMITS = {
    f"AGENT_PLATFORM_RUNTIME_RATE_LIMITS__{k}": str(v)
    for k, v in {
        "USER_REQUESTS_PER_MINUTE": 10**7,
        "USER_TOKENS_PER_MINUTE": 10**10,
        "GLOBAL_REQUESTS_PER_MINUTE": 10**7,
        "GLOBAL_TOKENS_PER_MINUTE": 10**10,
        "MODEL_REQUESTS_PER_MINUTE": 10**7,
        "MODEL_TOKENS_PER_MINUTE": 10**10,
    }.items()
}
RESULTS = ROOT / "benchmarks" / "results"
PLOT = ROOT / "docs" / "images" / "serve_latency.png"
P95_TARGET_MS, ERROR_TARGET = 250.0, 0.001
QUESTIONS_FOR_WARMUP = ("Which embedding model is used?", "How do I roll back a prompt?") * 2
WARM_WINDOW, WARM_TOLERANCE = 10, 0.25


def warm_up(call: Callable[[int], None], cpu: Callable[[], float], lo: int, hi: int) -> dict:
    """Call `call(i)` in windows of `WARM_WINDOW` until the CPU seconds per call (`cpu()` is a
    running total) of a window is within `WARM_TOLERANCE` of the window before (at least `lo`,
    at most `hi` calls). Returns the windows' CPU ms per call and whether it settled."""
    windows: list[float] = []
    done = 0
    while done < hi:
        before = cpu()
        for i in range(done, done + WARM_WINDOW):
            call(i)
        done += WARM_WINDOW
        windows.append((cpu() - before) / WARM_WINDOW * 1000)
        settled = len(windows) > 1 and abs(windows[-1] - windows[-2]) <= WARM_TOLERANCE * max(
            windows[-2], 1e-9
        )
        if settled and done >= lo:
            return {"calls": done, "cpu_ms_per_call_by_window": windows, "settled": True}
    return {"calls": done, "cpu_ms_per_call_by_window": windows, "settled": False}


def prepare(home: Path):
    from benchmarks.runtime import prepare as prepare_home

    return prepare_home(home)


def in_process(home: Path, n: int, warm: tuple[int, int], omp_threads: str | None = None) -> dict:
    """Measured in a fresh process: the setup process carries Dagster's and MLflow's threads,
    whose CPU time `process_time` would otherwise charge to the runtime. `omp_threads` sets
    OMP_NUM_THREADS there (None: the default, one OpenMP thread per core)."""
    threads = {} if omp_threads is None else {"OMP_NUM_THREADS": omp_threads}
    command = [sys.executable, __file__, "--in-process-only", str(home), "--in-process", str(n)]
    command += ["--warm-min", str(warm[0]), "--warm-max", str(warm[1])]
    out = subprocess.run(
        command,
        env={**os.environ, **LIMITS, "AGENT_PLATFORM_HOME": str(home), **threads},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_in_process(home: Path, n: int, warm: tuple[int, int]) -> dict:
    from agent_platform.runtime.agent import AgentRuntime
    from agent_platform.settings import Settings
    from benchmarks.runtime import QUESTIONS  # the locust user asks the same ones

    runtime = AgentRuntime.from_settings(Settings(home=home))
    try:
        warmed = warm_up(
            lambda i: runtime.run(
                tenant="sample", user=f"warm-{i % 50}", input=QUESTIONS[i % len(QUESTIONS)]
            ),
            time.process_time,
            *warm,
        )
        latencies, cpu0, wall0 = [], time.process_time(), time.perf_counter()
        for i in range(n):
            started = time.perf_counter()
            runtime.run(tenant="sample", user=f"user-{i % 50}", input=QUESTIONS[i % len(QUESTIONS)])
            latencies.append((time.perf_counter() - started) * 1000)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        runtime.close()
    a = np.asarray(latencies)
    return {
        "requests": n,
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "cpu_ms_per_request": cpu / n * 1000,
        "rps_serial": n / wall,
        "warm_up": warmed,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    home: Path, workers: int, log: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, **LIMITS, "AGENT_PLATFORM_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.update(extra_env or {})
    env["AGENT_PLATFORM_SERVING_MAX_CONCURRENT_REQUESTS"] = "256"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_platform.cli.main", "serve", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    ready = 0
    deadline = time.monotonic() + 300
    while ready < workers * 3 and time.monotonic() < deadline:  # several hits: every worker ready
        try:
            ready += httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            time.sleep(0.5)
    if ready < workers * 3:
        process.kill()
        raise RuntimeError(f"server not ready: {log.read_text()[-2000:]}")
    return process, url


def server_cpu(process: subprocess.Popen) -> float:
    proc = psutil.Process(process.pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def warm_server(process: subprocess.Popen, url: str, workers: int, warm: tuple[int, int]) -> dict:
    """`warm_up` over HTTP: 2 x workers concurrent askers, CPU of all server processes."""
    from benchmarks.runtime import QUESTIONS

    client = httpx.Client(base_url=url, headers={"X-Tenant": "sample"}, timeout=60)
    pool = ThreadPoolExecutor(max_workers=2 * workers)

    def ask(i: int) -> None:
        question = QUESTIONS[i % len(QUESTIONS)]
        body = {
            "model": "grounded-qa",
            "user": f"warm-{i % 50}",
            "messages": [{"role": "user", "content": question}],
        }
        client.post("/v1/chat/completions", json=body).raise_for_status()

    batch: list[int] = []

    def call(i: int) -> None:  # the window's calls run concurrently, in groups of the pool size
        batch.append(i)
        if len(batch) == 2 * workers or i % WARM_WINDOW == WARM_WINDOW - 1:
            list(pool.map(ask, batch))
            batch.clear()

    try:
        return warm_up(call, lambda: server_cpu(process), *warm)
    finally:
        pool.shutdown()
        client.close()


def locust_step(url: str, rate: float, seconds: int, workdir: Path) -> dict:
    users = max(2, math.ceil(rate / 2))
    prefix = workdir / f"step_{rate:.1f}"
    env = {**os.environ, "BENCH_USER_RPS": str(rate / users)}
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "benchmarks" / "locust_serve.py"),
         "--headless", "-u", str(users), "-r", str(users), "--run-time", f"{seconds}s",
         "--host", url, "--csv", str(prefix), "--only-summary", "--stop-timeout", "10",
         "--loglevel", "WARNING"],
        env=env, check=False, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    count = int(row["Request Count"])
    return {
        "offered_rps": rate,
        "achieved_rps": float(row["Requests/s"]),
        "requests": count,
        "failures": int(row["Failure Count"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
    }


def sweep(home: Path, workers: int, args, workdir: Path) -> dict:
    process, url = start_server(home, workers, workdir / f"server_{workers}.log")
    try:
        warmed = warm_server(process, url, workers, (args.warm_min, args.warm_max))
        print(f"  workers={workers} warm-up: {json.dumps(warmed)}", flush=True)
        steps = step_up(url, [process], args, workdir, f"workers={workers}")
    finally:
        process.terminate()
        process.wait(timeout=60)
    best = max((s for s in steps if s["sustained"]), key=lambda s: s["achieved_rps"], default=None)
    return {"workers": workers, "warm_up": warmed, "steps": steps, "max_sustained": best}


def step_up(url: str, processes: list, args, workdir: Path, label: str) -> list[dict]:
    """Offer rising rates to `url` until a step misses the targets; server CPU is the sum over
    `processes` (and their children)."""
    steps: list[dict] = []
    locust_step(url, args.start_rps, 5, workdir)  # warm up every worker
    rate = args.start_rps
    for _ in range(args.max_steps):
        cpu0 = sum(server_cpu(p) for p in processes)
        step = locust_step(url, rate, args.step_s, workdir)
        step["server_cpu_ms_per_request"] = (
            (sum(server_cpu(p) for p in processes) - cpu0) / max(step["requests"], 1) * 1000
        )
        step["error_rate"] = step["failures"] / max(step["requests"], 1)
        step["sustained"] = (
            step["p95_ms"] <= P95_TARGET_MS
            and step["error_rate"] <= ERROR_TARGET
            and step["achieved_rps"] >= 0.9 * rate
        )
        steps.append(step)
        print(f"  {label} offered {rate:6.1f} rps: {json.dumps(step)}", flush=True)
        if not step["sustained"] and len(steps) >= args.min_steps:
            break
        rate = round(rate * args.factor, 1)
    return steps


def sweep_replicas(home: Path, replicas: int, args, workdir: Path) -> dict:
    """`replicas` one-worker gateways, each on a copy of the home, behind HAProxy; rate limits
    and memory shared through Redis and PostgreSQL (benchmarks/replicas.py)."""
    from agent_platform.security.crypto.factory import open_key_ring
    from agent_platform.settings import Settings
    from benchmarks.replicas import drop_shared_state, shared_state_env, start_haproxy

    namespace = f"ap-bench-{uuid.uuid4().hex[:8]}"
    open_key_ring(Settings(home=home)).current("sample")  # one data key, copied to every replica
    servers: list[tuple[subprocess.Popen, str]] = []
    proxy = None
    try:
        for i in range(replicas):
            copy = workdir / f"replicas{replicas}" / f"home{i}"
            shutil.copytree(home, copy, ignore=shutil.ignore_patterns("requests.jsonl"))
            log = copy.parent / f"replica{i}.log"
            servers.append(start_server(copy, 1, log, shared_state_env(namespace)))
        for _, url in servers:  # a replica's first requests take seconds (cold caches)
            for question in QUESTIONS_FOR_WARMUP:
                httpx.post(
                    f"{url}/v1/agents/grounded-qa/runs",
                    json={"input": question, "user": "warm-up"},
                    headers={"X-Tenant": "sample"},
                    timeout=120,
                )
        proxy = start_haproxy([url.removeprefix("http://") for _, url in servers], copy.parent)
        steps = step_up(proxy.url, [p for p, _ in servers], args, workdir, f"replicas={replicas}")
    finally:
        if proxy is not None:
            proxy.stop()
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=60)
        drop_shared_state(namespace)
    best = max((s for s in steps if s["sustained"]), key=lambda s: s["achieved_rps"], default=None)
    return {"replicas": replicas, "workers": 1, "steps": steps, "max_sustained": best}


def plot(runs: list[dict], baseline: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for run, color in zip(runs, ("tab:blue", "tab:orange"), strict=False):
        x = [s["achieved_rps"] for s in run["steps"]]
        for key, style in (("p50_ms", ":"), ("p95_ms", "-"), ("p99_ms", "--")):
            ax.plot(x, [s[key] for s in run["steps"]], style, marker="o", color=color,
                    label=f"{run['workers']} worker(s) {key[:3]}")  # fmt: skip
    ax.axhline(P95_TARGET_MS, color="red", linewidth=1, label="p95 target 250 ms")
    ax.axhline(baseline["p50_ms"], color="grey", linewidth=1, linestyle=":",
               label="in-process run p50 (OMP 1)")  # fmt: skip
    ax.set_xlabel("achieved requests/s")
    ax.set_ylabel("latency (ms, log)")
    ax.set_yscale("log")
    ax.set_title("Gateway latency vs load (extractive model, loopback, 2 shared vCPUs)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step-s", type=int, default=15)
    parser.add_argument("--start-rps", type=float, default=4.0)
    parser.add_argument("--factor", type=float, default=1.4)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument(
        "--min-steps", type=int, default=4, help="Steps run even past a failed one (the plot)."
    )
    parser.add_argument("--in-process", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--replicas",
        type=int,
        nargs="*",
        default=[],
        help="Also: this many one-worker replicas behind HAProxy (Redis + PostgreSQL state).",
    )
    parser.add_argument("--warm-min", type=int, default=30, help="Warm-up calls at least.")
    parser.add_argument("--warm-max", type=int, default=200, help="Warm-up calls at most.")
    parser.add_argument("--in-process-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(LIMITS)
    if args.in_process_only:
        warm = (args.warm_min, args.warm_max)
        print(json.dumps(measure_in_process(args.in_process_only, args.in_process, warm)))
        return
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        home = workdir / "home"
        os.environ["AGENT_PLATFORM_HOME"] = str(home)
        prepare(home)
        warm = (args.warm_min, args.warm_max)
        default_threads = in_process(home, args.in_process, warm)
        print(f"in process: {json.dumps(default_threads)}", flush=True)
        # serial calls with torch's default OpenMP team cost ~10x the CPU of the same calls with
        # one thread (BENCHMARKS.md, "Serving"); the gateway's cost is compared to the latter
        baseline = in_process(home, args.in_process, warm, omp_threads="1")
        print(f"in process, OMP_NUM_THREADS=1: {json.dumps(baseline)}", flush=True)
        runs = [sweep(home, w, args, workdir) for w in args.workers]
        replica_runs = [sweep_replicas(home, r, args, workdir) for r in args.replicas]
    cores = psutil.cpu_count()
    print(f"\n{'run':<28}{'rps':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'cpu ms/req':>12}"
          f"{'rps/cpu-s':>11}{'cost x':>8}")  # fmt: skip
    print(f"{'run in process, OMP default':<28}{default_threads['rps_serial']:8.1f}"
          f"{default_threads['p50_ms']:8.1f}{default_threads['p95_ms']:8.1f}"
          f"{default_threads['p99_ms']:8.1f}{default_threads['cpu_ms_per_request']:12.1f}"
          f"{1000 / default_threads['cpu_ms_per_request']:11.1f}")  # fmt: skip
    print(f"{'run in process, OMP 1':<28}{baseline['rps_serial']:8.1f}"
          f"{baseline['p50_ms']:8.1f}{baseline['p95_ms']:8.1f}{baseline['p99_ms']:8.1f}"
          f"{baseline['cpu_ms_per_request']:12.1f}{1000 / baseline['cpu_ms_per_request']:11.1f}"
          f"{1.0:8.2f}")  # fmt: skip
    for run in runs:
        best = run["max_sustained"]
        if best is None:
            print(f"{run['workers']} worker(s): no step met the targets")
            continue
        cpu = best["server_cpu_ms_per_request"]
        print(f"{str(run['workers']) + ' worker(s), max sustained':<28}{best['achieved_rps']:8.1f}"
              f"{best['p50_ms']:8.1f}{best['p95_ms']:8.1f}{best['p99_ms']:8.1f}{cpu:12.1f}"
              f"{1000 / cpu:11.1f}{cpu / baseline['cpu_ms_per_request']:8.2f}")  # fmt: skip
    for run in replica_runs:
        best = run["max_sustained"]
        label = f"{run['replicas']} replica(s) + HAProxy"
        if best is None:
            print(f"{label}: no step met the targets")
            continue
        cpu = best["server_cpu_ms_per_request"]
        print(f"{label:<28}{best['achieved_rps']:8.1f}{best['p50_ms']:8.1f}{best['p95_ms']:8.1f}"
              f"{best['p99_ms']:8.1f}{cpu:12.1f}{1000 / cpu:11.1f}"
              f"{cpu / baseline['cpu_ms_per_request']:8.2f}")  # fmt: skip
    print(f"\nmachine: {cores} logical CPUs; target 125 requests/s per core (1000 rps on 8 cores)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(
        json.dumps(
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": cores,
                    "platform": platform.platform(),
                    "load_average": os.getloadavg(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                },
                "in_process": baseline,
                "in_process_omp_default": default_threads,
                "runs": runs,
                "replicas": replica_runs,
            },
            indent=2,
        )
    )
    plot(runs, baseline)
    print(f"wrote {RESULTS / 'serve.json'} and {PLOT}")


if __name__ == "__main__":
    main()
