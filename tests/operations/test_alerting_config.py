"""The alert rules and the Alertmanager routing, checked by Prometheus' own tools: `promtool check
rules` and `promtool test rules` (deploy/prometheus/rules_test.yml), `amtool check-config` and
`amtool config routes test` for each severity."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.operations.conftest import REPO, RULES, quick_rules, require_tool

ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)


def alerts() -> list[dict]:
    return [rule for g in yaml.safe_load(RULES.read_text())["groups"] for rule in g["rules"]]


def test_promtool_accepts_the_rules() -> None:
    result = run(require_tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_the_rules_unit_tests_pass() -> None:
    result = run(require_tool("promtool"), "test", "rules", "rules_test.yml", cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_issue_s_alerts_exist_with_severity_and_runbook() -> None:
    by_name = {rule["alert"]: rule for rule in alerts()}
    assert set(by_name) >= {
        "AgentPlatformHighErrorRate",
        "AgentPlatformHighLatency",
        "AgentPlatformCircuitBreakerOpen",
        "AgentPlatformRateLimitRefusalsSurging",
        "AgentPlatformQualityGateFailed",
        "AgentPlatformBackupStale",
        "AgentPlatformRolloutRolledBack",
        "AgentPlatformCertificateExpiring",
    }
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["runbook_url"].endswith(".md"), name
    # the spec's thresholds
    assert "> 0.01" in by_name["AgentPlatformHighErrorRate"]["expr"]
    assert ") > 2" in by_name["AgentPlatformHighLatency"]["expr"]
    assert "26 * 3600" in by_name["AgentPlatformBackupStale"]["expr"]


def test_quick_rules_only_shorten_the_hold() -> None:
    real = yaml.safe_load(RULES.read_text())
    quick = quick_rules(real)
    pairs = list(zip(alerts(), [r for g in quick["groups"] for r in g["rules"]], strict=True))
    for original, short in pairs:
        assert {k: v for k, v in short.items() if k != "for"} == {
            k: v for k, v in original.items() if k != "for"
        }
        assert short.get("for") in {"2s", "0m", "0s"}


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run(require_tool("amtool"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["severity=critical", "alertname=AgentPlatformHighErrorRate"],
            "pagerduty-oncall,slack-alerts",
        ),
        (
            ["severity=warning", "alertname=AgentPlatformBackupStale"],
            "slack-alerts,email-operations",
        ),
        (["severity=info", "alertname=Anything"], "email-operations"),
        (["alertname=NoSeverity"], "email-operations"),
    ],
)
def test_alerts_route_by_severity(labels: list[str], receivers: str) -> None:
    result = run(
        require_tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_routing_by_time() -> None:
    """amtool's routing test ignores time, so the time-based part is checked on the config:
    Slack hears warnings only in business hours; maintenance mutes warnings, never pages."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    intervals = {i["name"]: i["time_intervals"] for i in config["time_intervals"]}
    assert intervals["business-hours"][0]["weekdays"] == ["monday:friday"]
    assert intervals["business-hours"][0]["times"] == [{"start_time": "08:00", "end_time": "18:00"}]
    routes = config["route"]["routes"]
    slack_warning = next(
        r
        for r in routes
        if r["receiver"] == "slack-alerts" and 'severity="warning"' in r["matchers"]
    )
    assert slack_warning["active_time_intervals"] == ["business-hours"]
    for route in routes:
        if 'severity="critical"' in route["matchers"]:
            assert "mute_time_intervals" not in route and "active_time_intervals" not in route


def test_no_secret_in_the_alertmanager_config() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert config["global"]["slack_api_url_file"].startswith("/etc/alertmanager/secrets/")
    assert config["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    for receiver in config["receivers"]:
        for pager in receiver.get("pagerduty_configs", []):
            assert "routing_key" not in pager and "service_key" not in pager
            assert pager["routing_key_file"].startswith("/etc/alertmanager/secrets/")
        for slack in receiver.get("slack_configs", []):
            assert "api_url" not in slack


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """The dashboard's expressions as recording rules, which `promtool check rules` parses."""
    import json

    dashboard = json.loads((REPO / "deploy" / "grafana" / "agent-platform.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = [
        {"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "5m")}
        for i, e in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run(require_tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout
    broken = tmp_path / "broken.yml"
    rules[0]["expr"] = "sum(rate(agent_platform_model_calls_total[5m]"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert run(require_tool("promtool"), "check", "rules", str(broken)).returncode != 0
