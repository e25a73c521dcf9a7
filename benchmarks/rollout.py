"""Rollout benchmark: time to recover from a bad agent version (MTTR) and the requests users saw
fail, under steady load through a real gateway; then a healthy version's time to 100%.

    .venv/bin/python benchmarks/rollout.py [--tick-s 15] [--fail-every 20] [--threads 4]

Setup (not timed): a fresh home with tenant `handbook` indexed by the real Dagster knowledge job,
the shipped prompts published, three versions of grounded-qa registered (tests/delivery/harness.py):
blue (champion, embedded extractive model), `flaky` (a local OpenAI-compatible server failing
every `--fail-every`-th call: 5% by default) and `healthy`. `agent-platform serve` on loopback.

1. Fault, `--repeats` times: `--threads` callers send requests without pause; `flaky` is
   deployed (10% first) and the controller ticks every `--tick-s` (the sensor's interval).
   MTTR = from the model's first injected failure to the rollback (all traffic on blue); also
   the last answer green gave.
2. Healthy: `healthy` is deployed and ticked to 100% and completion; failed and dropped requests
   must be 0. Steps are held `--step-hold-s` (default 15 s here; the setting's default is 60 s).
Writes benchmarks/results/rollout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = ROOT / "benchmarks" / "results"


def controller_for(home: Path, url: str, args):
    from agent_platform.delivery.controller import RolloutController
    from agent_platform.settings import DeliverySettings, Settings
    from tests.delivery.harness import TENANT

    delivery = DeliverySettings(
        gateway_url=url,
        smoke_tenant=TENANT,
        step_hold_s=args.step_hold_s,
        max_p95_latency_ms=args.max_p95_ms,
    )  # window, min requests and error rate: the defaults (60 s, 50, 1%)
    return RolloutController(Settings(home=home, delivery=delivery))


def tick_until(controller, stages: set[str], every_s: float, timeout_s: float):
    from tests.delivery.harness import AGENT

    deadline = time.monotonic() + timeout_s
    while True:
        outcome = controller.tick(AGENT)
        if outcome is None or str(outcome.rollout.stage) in stages:
            return outcome, time.time()
        if time.monotonic() > deadline:
            return outcome, time.time()
        time.sleep(every_s)


def fault(home: Path, url: str, model, versions: dict, args) -> dict:
    from tests.delivery.harness import AGENT, Load, approve

    controller = controller_for(home, url, args)
    green = str(versions["flaky"])
    approve(controller, versions["flaky"])
    with Load(url, threads=args.threads) as load:
        time.sleep(3)
        deployed_at = time.time()
        rollout = controller.deploy(int(green), actor={"subject": "bench"}, agent=AGENT)
        assert rollout.stage == "deployment", rollout.reason
        outcome, rolled_back_at = tick_until(
            controller, {"rolled_back", "completed"}, args.tick_s, args.timeout_s
        )
        time.sleep(3)
    answers = [a for a in load.answers if a.at >= deployed_at]
    on_green = [a for a in answers if a.version == green]
    failed = [a for a in answers if a.status != 200]
    blue_answers = [a for a in answers if a.version == str(versions["blue"])]
    first_failure = model.first_failure_at
    return {
        "stage": str(outcome.rollout.stage),
        "reason": outcome.rollout.reason,
        "green_traffic_at_rollback_percent": max(
            e["weight"] for e in outcome.rollout.events if e["event"] == "deployment"
        ),
        "mttr_s": round(rolled_back_at - first_failure, 2) if first_failure else None,
        "last_green_answer_after_first_failure_s": round(
            max(a.at for a in on_green) - first_failure, 2
        )
        if first_failure and on_green
        else None,
        "deploy_to_rollback_s": round(rolled_back_at - deployed_at, 2),
        "requests": len(answers),
        "requests_on_green": len(on_green),
        "failed_requests": len(failed),
        "dropped_requests": sum(a.status == 0 for a in answers),
        "injected_failures": model.failures,
        "client_p95_ms": {"blue": p95(blue_answers), "green": p95(on_green)},
        "throughput_rps": round(len(answers) / max(answers[-1].at - deployed_at, 1e-9), 1),
    }


def healthy(home: Path, url: str, versions: dict, args) -> dict:
    from tests.delivery.harness import AGENT, Load, approve

    controller = controller_for(home, url, args)
    approve(controller, versions["healthy"])
    with Load(url, threads=args.threads) as load:
        time.sleep(3)
        deployed_at = time.time()
        rollout = controller.deploy(versions["healthy"], actor={"subject": "bench"}, agent=AGENT)
        assert rollout.stage == "deployment", rollout.reason
        outcome, done_at = tick_until(
            controller, {"rolled_back", "completed"}, args.tick_s, args.timeout_s
        )
        time.sleep(3)
    answers = [a for a in load.answers if a.at >= deployed_at]
    blue = str(versions["blue"])
    at_100 = [e["at"] for e in outcome.rollout.events if e.get("weight") == 100]
    return {
        "stage": str(outcome.rollout.stage),
        "reason": outcome.rollout.reason,
        "client_p95_ms": {
            "blue": p95([a for a in answers if a.version == blue]),
            "green": p95([a for a in answers if a.version != blue]),
        },
        "steps": [e["weight"] for e in outcome.rollout.events if e["event"] == "deployment"],
        "deploy_to_100_percent_s": round(at_100[0] - deployed_at, 2) if at_100 else None,
        "deploy_to_completed_s": round(done_at - deployed_at, 2),
        "requests": len(answers),
        "failed_requests": sum(a.status not in (0, 200) for a in answers),
        "dropped_requests": sum(a.status == 0 for a in answers),
    }


def p95(answers) -> float | None:
    """Client-side p95 latency (what the caller waited), in ms."""
    latencies = sorted(a.latency_s for a in answers)
    return round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1) if latencies else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tick-s", type=float, default=15.0, help="controller tick (sensor)")
    parser.add_argument("--fail-every", type=int, default=20, help="green's model: 1 in N fails")
    parser.add_argument("--threads", type=int, default=4, help="concurrent callers")
    parser.add_argument("--step-hold-s", type=float, default=15.0)
    parser.add_argument("--max-p95-ms", type=float, default=500.0)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--repeats", type=int, default=3, help="fault-injection runs")
    args = parser.parse_args()

    from tests.delivery.harness import FlakyModel, gateway_env, prepare_home, start_gateway

    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        home = Path(tmp) / "home"
        os.environ["DAGSTER_HOME"] = str(home / "dagster")
        print("setup: indexing, prompts, versions …", flush=True)
        versions = prepare_home(home)
        model = FlakyModel(fail_every=args.fail_every)
        process, url = start_gateway(home, Path(tmp) / "gateway.log", gateway_env(model.base_url))
        try:
            faults = []
            for run in range(args.repeats):
                print(f"1. fault injection, run {run + 1} …", flush=True)
                model.calls, model.failures, model.first_failure_at = 0, 0, None
                faults.append(fault(home, url, model, versions, args))
                print(json.dumps(faults[-1], indent=2), flush=True)
            print("2. healthy version …", flush=True)
            good = healthy(home, url, versions, args)
            print(json.dumps(good, indent=2), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
            model.close()
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.python_version()}",
        "settings": vars(args),
        "fault": faults,
        "healthy": good,
    }
    mttrs = [f["mttr_s"] for f in faults if f["mttr_s"] is not None]
    failed = [f["failed_requests"] for f in faults]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rollout.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(
        f"MTTR {mttrs} s (goal <= 60 s), failed requests {failed}; healthy: "
        f"{good['deploy_to_completed_s']} s to completed, {good['failed_requests']} failed, "
        f"{good['dropped_requests']} dropped"
    )


if __name__ == "__main__":
    main()
