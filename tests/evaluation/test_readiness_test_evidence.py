"""The readiness items `implementation.tests` and `implementation.static_analysis` read what real
pytest (with pytest-cov), behave and mypy runs wrote, on a tiny project of their own."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent_platform.evaluation.gates import GateThresholds
from agent_platform.readiness import suite
from agent_platform.readiness.checklist import ChecklistInputs, evaluate_checklist
from agent_platform.settings import Settings

CODE = """def sign(x):
    if x < 0:
        return -1
    if x == 0:
        return 0
    return 1
"""
TESTS = "from calc import sign\n\ndef test_positive():\n    assert sign(3) == 1\n"
FEATURE = """Feature: Signs
  Scenario: a positive number
    Given the number 3
    Then its sign is 1
  Scenario: a negative number
    Given the number -2
    Then its sign is {negative}
"""
STEPS = """from behave import given, then
from calc import sign

@given("the number {n:d}")
def number(context, n):
    context.n = n

@then("its sign is {s:d}")
def its_sign(context, s):
    assert sign(context.n) == s
"""


def _run(project: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONPATH"] = str(project)  # the outer suite's coverage must not follow these runs
    subprocess.run([sys.executable, "-m", *args], cwd=project, env=env, capture_output=True)


def _project(tmp_path: Path, *, fail_under: int, negative: int) -> Path:
    project = tmp_path / "project"
    (project / "features" / "steps").mkdir(parents=True, exist_ok=True)
    (project / "pyproject.toml").write_text(
        f"[tool.coverage.run]\nbranch = true\n[tool.coverage.report]\nfail_under = {fail_under}\n"
    )
    (project / "calc.py").write_text(CODE)
    (project / "test_calc.py").write_text(TESTS)
    (project / "features" / "signs.feature").write_text(FEATURE.format(negative=negative))
    (project / "features" / "steps" / "signs.py").write_text(STEPS)
    return project


def _items(settings: Settings, project: Path) -> dict[str, object]:
    inputs = ChecklistInputs(
        settings=settings,
        project_root=project,
        tenant="none",
        champion=None,
        gates=GateThresholds(),
        dataset_version="none",
        run_tools=False,
    )
    return {i.key: i for i in evaluate_checklist(inputs)}


@pytest.mark.timeout(300)
def _behave(project: Path, reports: Path) -> None:
    """The project's scenarios, with one JUnit file per feature under the reports."""
    _run(project, "behave", "--format", "null", "--junit", "--junit-directory",
         str(reports / suite.ACCEPTANCE_DIR), "features")  # fmt: skip


def _mypy(project: Path, reports: Path, tmp_path: Path, code: str) -> None:
    """mypy over `code`, its JUnit result where the readiness item reads it."""
    _run(project, "mypy", "--cache-dir", str(tmp_path / "mypy-cache"), "--junit-xml",
         str(reports / suite.TYPES), "-c", code)  # fmt: skip


def test_tests_item_reads_junit_coverage_and_scenarios(settings: Settings, tmp_path: Path) -> None:
    reports = settings.home_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    project = _project(tmp_path, fail_under=90, negative=1)  # a wrong expectation: 1 fails
    items = _items(settings, project)
    assert items["implementation.tests"].status == "missing"
    assert "run `make test`" in items["implementation.tests"].detail
    assert items["implementation.static_analysis"].status == "missing"

    _run(
        project,
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--junitxml={reports / suite.JUNIT}",
        "--cov=calc",
        f"--cov-report=json:{reports / suite.COVERAGE}",
        "test_calc.py",
    )
    _behave(project, reports)
    _mypy(project, reports, tmp_path, "x: int = 'one'")

    items = _items(settings, project)
    tests = items["implementation.tests"]
    assert tests.status == "fail"  # 5 of 8 lines and branches: below 90, and a scenario failed
    assert tests.evidence["tests"] == 1 and tests.evidence["failed"] == 0
    assert tests.evidence["coverage_percent"] < 90 and tests.evidence["coverage_threshold"] == 90
    assert tests.evidence["scenarios"] == 2 and tests.evidence["scenarios_failed"] == 1
    assert "BELOW the threshold 90%" in tests.detail and "2 scenarios, 1 failed" in tests.detail
    types = items["implementation.static_analysis"]
    assert types.status == "fail" and types.evidence["errors"] == 1
    assert "Incompatible types in assignment" in types.detail

    project = _project(tmp_path, fail_under=50, negative=-1)  # a lower gate, a right expectation
    _behave(project, reports)
    _mypy(project, reports, tmp_path, "x: int = 1")
    items = _items(settings, project)
    tests = items["implementation.tests"]
    assert tests.status == "pass", tests.detail
    assert (
        "at or above the threshold 50%" in tests.detail and "2 scenarios, 0 failed" in tests.detail
    )
    assert items["implementation.static_analysis"].status == "pass"

    (reports / suite.COVERAGE).write_text("{not json")
    items = _items(settings, project)
    assert items["implementation.tests"].status == "fail"
    assert "not a coverage.py JSON report" in items["implementation.tests"].detail


def test_package_table_sums_lines_and_branches_per_package() -> None:
    def entry(lines: int, covered: int, branches: int, taken: int) -> dict[str, object]:
        summary = {
            "num_statements": lines,
            "covered_lines": covered,
            "num_branches": branches,
            "covered_branches": taken,
        }
        return {"summary": summary}

    report = {
        "files": {
            "agent_platform/gateway/app.py": entry(10, 9, 4, 2),
            "agent_platform/gateway/auth.py": entry(10, 10, 0, 0),
            "agent_platform/settings.py": entry(4, 4, 0, 0),
            "assets/knowledge.py": entry(6, 3, 2, 1),
        },
        "totals": {"num_statements": 30, "num_branches": 6, "percent_covered": 80.56},
    }
    rows = {p: pct for p, _, _, pct in suite.package_table(report)}
    assert rows == {
        "agent_platform/gateway": pytest.approx(100 * 21 / 24),
        "agent_platform/*.py": 100.0,
        "assets": 50.0,
    }
    table = suite.format_table(report).splitlines()
    assert table[0].split() == ["package", "lines", "branches", "cover"]
    assert table[-1].split() == ["TOTAL", "30", "6", "80.6%"]
