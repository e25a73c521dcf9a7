"""The evidence `make test` leaves under the home's reports: the pytest JUnit file, the coverage
JSON reports (unit suite and acceptance scenarios), the behave JUnit files and mypy's JUnit file.
The readiness items read these instead of trusting that a suite was run; `python
agent_platform/readiness/suite.py table COVERAGE_JSON` prints the per-package coverage table
(run as a script: it needs nothing but the standard library)."""

from __future__ import annotations

import json
import sys
import tomllib
import xml.etree.ElementTree as ET  # nosec B405  # parses the project's own JUnit reports
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

JUNIT = "junit.xml"
COVERAGE = "coverage.json"
ACCEPTANCE_DIR = "behave"
ACCEPTANCE_COVERAGE = "coverage-acceptance.json"
TYPES = "mypy.xml"
SPEC_UNIT_COVERAGE = 95.0


@dataclass(frozen=True)
class JUnitCounts:
    """Totals of one or more JUnit files (pytest, behave, mypy all write the same shape)."""

    tests: int
    failed: int  # failures + errors
    skipped: int
    written_at: str
    messages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failed == 0


@dataclass(frozen=True)
class CoverageTotals:
    percent: float  # lines and branches together, as coverage.py's total
    lines: int
    branches: int
    written_at: str


def _stamp(paths: list[Path]) -> str:
    latest = max(p.stat().st_mtime for p in paths)
    return datetime.fromtimestamp(latest, tz=UTC).isoformat(timespec="seconds")


def junit_counts(paths: list[Path]) -> JUnitCounts | None:
    """Totals over the `<testsuite>` elements of `paths`; None when there is no file, and a
    `ValueError` naming the file when one is not JUnit XML."""
    files = [p for p in paths if p.is_file()]
    if not files:
        return None
    tests = failed = skipped = 0
    messages: list[str] = []
    for path in files:
        try:
            root = ET.parse(path).getroot()  # nosec B314  # the project's own JUnit reports, written by its test runs
        except ET.ParseError as exc:
            raise ValueError(f"{path}: not JUnit XML ({exc})") from exc
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            tests += int(suite.get("tests", 0))
            failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped += int(suite.get("skipped", suite.get("skips", 0)))
        for case in root.iter("testcase"):
            for bad in (*case.iter("failure"), *case.iter("error")):
                messages.extend((bad.text or bad.get("message") or "").strip().splitlines())
    return JUnitCounts(tests, failed, skipped, _stamp(files), messages)


def coverage_totals(path: Path) -> CoverageTotals | None:
    """The totals of a `coverage json` report; None when there is none."""
    if not path.is_file():
        return None
    try:
        totals = json.loads(path.read_text(encoding="utf-8"))["totals"]
        return CoverageTotals(
            float(totals["percent_covered"]),
            int(totals["num_statements"]),
            int(totals.get("num_branches", 0)),
            _stamp([path]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a coverage.py JSON report ({exc})") from exc


def coverage_threshold(project_root: Path) -> float | None:
    """`fail_under` of `[tool.coverage.report]` in the project's pyproject.toml."""
    path = project_root / "pyproject.toml"
    if not path.is_file():
        return None
    report = tomllib.loads(path.read_text(encoding="utf-8"))
    value = report.get("tool", {}).get("coverage", {}).get("report", {}).get("fail_under")
    return float(value) if value is not None else None


def package_of(filename: str) -> str:
    """`agent_platform/gateway/app.py` -> `agent_platform/gateway`; the top-level modules of
    `agent_platform` share the row `agent_platform/*.py`; `assets/…` -> `assets`."""
    parts = Path(filename).parts
    if parts[0] == "agent_platform":
        return "/".join(parts[:2]) if len(parts) > 2 else "agent_platform/*.py"
    return parts[0]


def package_table(report: dict[str, object]) -> list[tuple[str, int, int, float]]:
    """(package, statements, branches, percent of lines and branches covered) per package, in
    coverage.py's own arithmetic: covered lines + covered branches over lines + branches."""
    sums: dict[str, list[int]] = {}
    files = report.get("files", {})
    assert isinstance(files, dict)  # nosec B101  # narrows a type for mypy; a report of another shape fails just after
    for name, data in files.items():
        summary = data["summary"]
        row = sums.setdefault(package_of(name), [0, 0, 0, 0])
        row[0] += summary["num_statements"]
        row[1] += summary["covered_lines"]
        row[2] += summary.get("num_branches", 0)
        row[3] += summary.get("covered_branches", 0)
    table = []
    for package, (lines, covered, branches, taken) in sorted(sums.items()):
        total = lines + branches
        table.append(
            (package, lines, branches, 100.0 * (covered + taken) / total if total else 100)
        )
    return table


def format_table(report: dict[str, object]) -> str:
    rows = package_table(report)
    width = max(len("package"), *(len(r[0]) for r in rows))
    lines = [f"{'package':<{width}}  {'lines':>6}  {'branches':>8}  {'cover':>6}"]
    lines += [f"{p:<{width}}  {n:>6}  {b:>8}  {pct:>5.1f}%" for p, n, b, pct in rows]
    totals = report.get("totals", {})
    assert isinstance(totals, dict)  # nosec B101  # narrows a type for mypy; a report of another shape fails just after
    lines.append(
        f"{'TOTAL':<{width}}  {totals.get('num_statements', 0):>6}  "
        f"{totals.get('num_branches', 0):>8}  {totals.get('percent_covered', 0.0):>5.1f}%"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "table":
        print(
            "usage: python -m agent_platform.readiness.suite table COVERAGE_JSON", file=sys.stderr
        )
        return 2
    path = Path(argv[1])
    if not path.is_file():
        print(f"error: {path}: no coverage report", file=sys.stderr)
        return 1
    print(format_table(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
