"""A real Prometheus scraping a real gateway: an alert rule reaches `firing` under injected errors,
every rule evaluates without error, and the dashboard's queries parse and name metrics the gateway
really exports (compared with a real /metrics scrape)."""

from __future__ import annotations

import json
import re
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.operations.conftest import REPO, RULES, TENANT, Prometheus

DASHBOARD = REPO / "deploy" / "grafana" / "agent-platform.json"
METRIC = re.compile(r"\bagent_platform_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def exported(gateway) -> set[str]:
    """The sample names a real scrape of the gateway's /metrics offers (families without samples
    yet included, with the suffixes their type gives their samples)."""
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]


def test_an_alert_fires_under_injected_errors(gateway, prometheus: Prometheus) -> None:
    """Requests for a tenant without an index are answered 503: the 5xx share goes to 100 %, and
    AgentPlatformHighErrorRate (the real expression, its `for:` cut to 2 s) goes pending, then
    firing, with its severity and runbook."""
    states: list[str] = []
    deadline = time.monotonic() + 90
    body = {"model": "grounded-qa", "messages": [{"role": "user", "content": "hi"}], "user": "u"}
    with httpx.Client(base_url=gateway.url, headers={"X-Tenant": TENANT}, timeout=30) as client:
        while time.monotonic() < deadline:
            assert client.post("/v1/chat/completions", json=body).status_code == 503
            alerts = prometheus.get("/api/v1/alerts")["data"]["alerts"]
            mine = [a for a in alerts if a["labels"]["alertname"] == "AgentPlatformHighErrorRate"]
            states += [a["state"] for a in mine]
            if "firing" in states:
                break
            time.sleep(0.3)
    assert "firing" in states, (states, prometheus.log.read_text()[-2000:])
    firing = next(a for a in mine if a["state"] == "firing")
    assert firing["labels"]["severity"] == "critical"
    assert firing["labels"]["job"] == "gateway"
    assert firing["annotations"]["runbook_url"].endswith("docs/runbooks/high-error-rate.md")
    assert firing["annotations"]["summary"] == (
        "More than 1% of agent requests fail with a 5xx (100%)"
    )


def test_every_rule_evaluates_on_the_real_metrics(prometheus: Prometheus) -> None:
    time.sleep(2)  # at least one evaluation after start-up
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert len(rules) == RULES.read_text().count("- alert:")
    unhealthy = {name: r.get("lastError") for name, r in rules.items() if r["health"] != "ok"}
    assert not unhealthy


def test_the_rules_name_only_exported_metrics(gateway) -> None:
    names = exported(gateway)
    used = set(METRIC.findall(RULES.read_text()))
    assert used and used <= names, sorted(used - names)


def test_dashboard_queries_parse_and_name_exported_metrics(gateway, prometheus: Prometheus) -> None:
    names = exported(gateway)
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    for topic in ("latency", "error", "tokens", "cost", "circuit", "rollback", "gate"):
        assert any(topic in title.lower() for title in titles), topic
    for title, expr in dashboard_queries():
        used = set(METRIC.findall(expr))
        assert used and used <= names, (title, sorted(used - names))
        query = expr.replace("$__rate_interval", "1m")
        answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": query}, timeout=10)
        assert answer.status_code == 200, (title, answer.text)
        assert answer.json()["status"] == "success", (title, answer.text)


def test_a_query_that_does_not_parse_is_refused(prometheus: Prometheus) -> None:
    """The parse check above can fail: Prometheus answers 400 to a malformed expression."""
    answer = httpx.get(
        f"{prometheus.url}/api/v1/query",
        params={"query": "sum by (model (rate(agent_platform_model_calls_total[1m]))"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["errorType"] == "bad_data"


def test_a_certificate_due_in_days_fires_its_alert(gateway, prometheus: Prometheus) -> None:
    """The gateway reports the expiry of its monitored certificate; the real rule fires on it."""
    deadline, mine = time.monotonic() + 30, []
    while time.monotonic() < deadline and not mine:
        alerts = prometheus.get("/api/v1/alerts")["data"]["alerts"]
        mine = [
            a
            for a in alerts
            if a["labels"]["alertname"] == "AgentPlatformCertificateExpiring"
            and a["state"] == "firing"
        ]
        time.sleep(0.5)
    assert mine, prometheus.get("/api/v1/alerts")
    assert mine[0]["labels"]["file"] == str(gateway.certificate)
    assert mine[0]["annotations"]["summary"].startswith(
        f"Certificate {gateway.certificate} expires in 4d 23h"
    )
