"""Checks that look for evidence an item holds, not for a word in a file: runbooks are sections
with steps, monitoring is traces reaching a collector that answers."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# runbook -> words (lower-case stems) one of which its section heading must contain
RUNBOOKS: dict[str, tuple[str, ...]] = {
    "restore": ("restor",),
    "corruption": ("corrupt",),
    "reindex": ("reindex",),
    "incident response": ("incident",),
}
RUNBOOK_FILES = ("docs/operations.md", "docs/runbooks.md")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# a step: a list item, a code block, or a command to run (`agent-platform …`, `make …`)
_STEP = re.compile(
    r"^\s*(?:[-*+]|\d+[.)])\s+\S|^\s*```|^ {4}\S|`(?:agent-platform|make)\s[^`]+`", re.MULTILINE
)


@dataclass(frozen=True)
class Section:
    file: str
    heading: str
    body: str

    @property
    def has_steps(self) -> bool:
        """A runbook says what to do: steps or a command, not only a description."""
        return _STEP.search(self.body) is not None


def sections(root: Path, files: tuple[str, ...] = RUNBOOK_FILES) -> list[Section]:
    """Every Markdown section (heading and the text up to the next heading) of `files`."""
    out: list[Section] = []
    for name in files:
        path = root / name
        if not path.is_file():
            continue
        heading, body = "", list[str]()
        for line in [*path.read_text(encoding="utf-8").splitlines(), "# end"]:
            match = _HEADING.match(line)
            if match:
                if heading:
                    out.append(Section(name, heading, "\n".join(body)))
                heading, body = match[2], []
            else:
                body.append(line)
    return out


def runbooks(root: Path) -> tuple[dict[str, Section], list[str]]:
    """(runbook -> the section that holds it, runbooks without a section that has steps)."""
    found: dict[str, Section] = {}
    for section in sections(root):
        title = section.heading.lower()
        for name, stems in RUNBOOKS.items():
            if name not in found and section.has_steps and any(s in title for s in stems):
                found[name] = section
    return found, [name for name in RUNBOOKS if name not in found]


def otlp_endpoint(configured: str | None) -> str | None:
    """The traces endpoint the OTLP exporter would use (settings, then the standard variables)."""
    if configured:
        return configured
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else None


def reachable(url: str, timeout_s: float = 2.0) -> str | None:
    """None when something accepts TCP connections at the URL's host and port, else why not."""
    parts = urlsplit(url)
    if not parts.hostname:
        return f"{url!r} names no host"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{parts.hostname}:{port} does not answer ({exc.strerror or exc})"


ALERT_RULES = "deploy/prometheus/rules.yml"
ALERT_RUNBOOKS = "docs/runbooks/"


@dataclass(frozen=True)
class AlertRunbook:
    """An alert of the Prometheus rules, the runbook its `runbook_url` names, and what is wrong
    with that runbook (None: it exists and has steps and an escalation path)."""

    name: str
    runbook: str
    problem: str | None


def alert_runbooks(root: Path) -> list[AlertRunbook]:
    """One entry per alert of `deploy/prometheus/rules.yml` (none when the file is absent)."""
    import yaml

    path = root / ALERT_RULES
    if not path.is_file():
        return []
    groups = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", [])
    out = []
    for rule in (r for g in groups for r in g.get("rules", []) if "alert" in r):
        url = (rule.get("annotations") or {}).get("runbook_url", "")
        _, marker, name = url.partition("/" + ALERT_RUNBOOKS)
        runbook = ALERT_RUNBOOKS + name if marker else url
        problem = None
        if not marker:
            problem = f"runbook_url {url!r} does not point into {ALERT_RUNBOOKS}"
        elif not (root / runbook).is_file():
            problem = f"{runbook} is missing"
        else:
            text = (root / runbook).read_text(encoding="utf-8")
            if not _STEP.search(text) or "## Escalation" not in text:
                problem = f"{runbook} has no steps or no escalation path"
        out.append(AlertRunbook(rule["alert"], runbook, problem))
    return out
