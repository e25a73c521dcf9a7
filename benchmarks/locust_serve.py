"""Locust user for `benchmarks/serve.py`: each user asks at a constant rate (BENCH_USER_RPS)."""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant_throughput, task

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
_counter = itertools.count()


class Asker(FastHttpUser):
    wait_time = constant_throughput(float(os.environ.get("BENCH_USER_RPS", "1")))

    @task
    def ask(self) -> None:
        n = next(_counter)
        self.client.post(
            "/v1/chat/completions",
            json={
                "model": "grounded-qa",
                "user": f"user-{n % 50}",
                "messages": [{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}],
            },
            headers={"X-Tenant": "sample"},
            name="chat",
        )
