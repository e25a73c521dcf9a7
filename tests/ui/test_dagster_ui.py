"""The Dagster UI after `agent-platform demo` on a fresh home, driven in headless Chromium.

One session: the demo runs through the CLI, then `dagster dev` serves the same home on a free
loopback port and Playwright drives Debian's chromium (nothing is downloaded). The facts come
from the UI's own GraphQL API and the pages a person reads; the screenshots are saved under
`$AGENT_PLATFORM_HOME/reports/ui/dagster` (README's images are copies of them).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.homes import MODEL_CACHE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = (
    Path(os.environ.get("AGENT_PLATFORM_HOME") or PROJECT_ROOT / ".agent_platform")
    / "reports"
    / "ui"
    / "dagster"
)
SENSORS = {
    "knowledge_sources_sensor",
    "prompt_files_sensor",
    "evaluation_request_sensor",
    "readiness_automation",
}
EVALUATED = "evaluated_model_versions"
DAGSTER_DEV = (sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),  # the demo evaluates 58 questions and Gemma on the CPU
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make chromium)"),
]


class DagsterUI:
    """A running `dagster dev` and its GraphQL endpoint."""

    def __init__(self, url: str, runs_before: set[str]) -> None:
        self.url = url
        self.runs_before = runs_before

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.load(response)
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    def runs(self) -> dict[str, dict]:
        data = self.graphql("{ runsOrError { ... on Runs { results { runId jobName status } } } }")
        return {r["runId"]: r for r in data["runsOrError"]["results"]}

    def sensor_ticks(self) -> dict[str, list[dict]]:
        data = self.graphql(
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name "
            "sensorState { ticks(limit: 10, dayRange: 1) { status runIds skipReason } } } } } } }"
        )
        repositories = data["repositoriesOrError"].get("nodes") or []  # none while reloading
        return {s["name"]: s["sensorState"]["ticks"] for r in repositories for s in r["sensors"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_PLATFORM_")}
    return env | {
        "AGENT_PLATFORM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONPATH": str(PROJECT_ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "AGENT_PLATFORM_RUNTIME_MODEL_CACHE_DIR": str(MODEL_CACHE),  # Gemma, converted once
        "AGENT_PLATFORM_EMBEDDING_EXPORT_DIR": os.environ["AGENT_PLATFORM_EMBEDDING_EXPORT_DIR"],
    }


def _run_ids(dagster_home: Path) -> set[str]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return {run.run_id for run in instance.get_runs()}


def _wait_until_loaded(ui: DagsterUI, process: subprocess.Popen, log: Path) -> None:
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dagster dev exited: {log.read_text()[-3000:]}"
        try:
            entries = ui.graphql(query)["workspaceOrError"]["locationEntries"]
        except OSError:
            entries = []
        if entries and entries[0]["loadStatus"] == "LOADED":
            loaded = entries[0]["locationOrLoadError"]
            assert loaded["__typename"] == "RepositoryLocation", loaded
            return
        time.sleep(2)
    pytest.fail(f"the code location did not load in 600 s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    """`agent-platform demo` on a fresh home, then `dagster dev` over it; stopped at teardown."""
    home = tmp_path_factory.mktemp("ui-home")
    demo = subprocess.run(
        [sys.executable, "-m", "agent_platform.cli.main", "demo"],
        cwd=PROJECT_ROOT,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    runs_before = _run_ids(home / "dagster")
    port = _free_port()
    log = home / "dagster-dev.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [*DAGSTER_DEV, "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=_env(home),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its webserver, daemon and code server share our group id
        )
    ui = DagsterUI(f"http://127.0.0.1:{port}", runs_before)
    try:
        _wait_until_loaded(ui, process, log)
        yield ui
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Interrupt `dagster dev` (it stops its children), then kill what is left of its group."""
    os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(dagster_ui: DagsterUI):
    """Module-scoped, not session: Playwright's sync API keeps its event loop marked running in
    this thread until it stops, and every later `asyncio.run` on the worker would refuse."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, dagster_ui: DagsterUI):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    yield page
    context.close()


def _open(page, ui: DagsterUI, path: str) -> None:
    page.goto(f"{ui.url}{path}", wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")  # Dagster's newsletter prompt on first visit
    if skip.count():
        skip.click()


def _shot(page, name: str) -> None:
    page.wait_for_timeout(2000)  # let the graph layout and lazy panels settle
    page.screenshot(path=str(SCREENSHOTS / name))


def test_starting_the_ui_launches_no_run(dagster_ui: DagsterUI, page) -> None:
    """Every sensor ticks over the demo's state and requests nothing."""

    def evaluated(ticks: list[dict]) -> list[dict]:
        # finished ticks: not one still running, nor one lost to a busy host
        return [t for t in ticks if t["status"] not in ("STARTED", "FAILURE")]

    deadline = time.monotonic() + 600
    ticks = dagster_ui.sensor_ticks()
    while time.monotonic() < deadline and not all(evaluated(ticks.get(n, [])) for n in SENSORS):
        time.sleep(5)
        ticks = dagster_ui.sensor_ticks()
    assert set(ticks) >= SENSORS, sorted(ticks)
    for name in SENSORS:
        assert evaluated(ticks[name]), f"{name} has not ticked within 600 s: {ticks[name]}"
        assert all(tick["status"] == "SKIPPED" for tick in evaluated(ticks[name])), ticks[name]
        assert not any(tick["runIds"] for tick in ticks[name]), (name, ticks[name])
    reasons = {t["skipReason"] for t in evaluated(ticks["evaluation_request_sensor"])}
    assert reasons == {"no new prompt version, index snapshot or config"}
    assert set(dagster_ui.runs()) == dagster_ui.runs_before, "the UI launched a run"

    _open(page, dagster_ui, "/runs")
    page.get_by_text("evaluation_job").first.wait_for()  # the list renders after the network idles
    assert page.get_by_text("Failure", exact=True).count() == 0
    _shot(page, "dagster-runs-after-demo.png")
    _open(
        page,
        dagster_ui,
        "/locations/__repository__@agent_platform.definitions/sensors/evaluation_request_sensor",
    )
    page.get_by_text("0 runs requested").first.wait_for()
    _shot(page, "dagster-evaluation-sensor-idle.png")


def test_evaluation_run_is_green_with_failing_gate_checks(dagster_ui: DagsterUI, page) -> None:
    [run] = [r for r in dagster_ui.runs().values() if r["jobName"] == "evaluation_job"]
    assert run["status"] == "SUCCESS"
    execution = dagster_ui.graphql(
        f'{{ assetCheckExecutions(assetKey: {{path: ["{EVALUATED}"]}}, '
        'checkName: "accuracy_gate", limit: 1) { runId status evaluation { success '
        "description metadataEntries { label ... on FloatMetadataEntry { floatValue } } } } }"
    )["assetCheckExecutions"][0]
    assert execution["runId"] == run["runId"] and execution["status"] == "FAILED"
    values = {e["label"]: e.get("floatValue") for e in execution["evaluation"]["metadataEntries"]}
    assert values["threshold"] == 0.95 and values["value"] < 0.95
    assert "must be >= 0.95" in execution["evaluation"]["description"]

    _open(page, dagster_ui, f"/runs/{run['runId']}?logs=type%3AASSET_CHECK_EVALUATION")
    page.get_by_text("Check accuracy_gate failed").first.wait_for()
    assert page.get_by_text("Success", exact=True).count() >= 1
    assert "DagsterAssetCheckFailedError" not in page.inner_text("body")
    _shot(page, "dagster-evaluation-run-green-gates-failed.png")

    _open(page, dagster_ui, f"/assets/{EVALUATED}?view=checks")
    page.get_by_text("This is a non-blocking asset check").wait_for()
    _shot(page, "dagster-gate-checks.png")

    _open(page, dagster_ui, "/assets/champion_promotion")
    decision = page.get_by_text("not promoted: accuracy 0.")
    decision.first.wait_for()
    assert "< 0.95" in decision.first.inner_text()
    _shot(page, "dagster-champion-promotion-decision.png")


def test_asset_graph_shows_what_an_evaluation_depends_on(dagster_ui: DagsterUI, page) -> None:
    nodes = dagster_ui.graphql(
        "{ assetNodes { assetKey { path } kinds dependencyKeys { path } } }"
    )["assetNodes"]
    by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    upstream = {"/".join(d["path"]) for d in by_key[EVALUATED]["dependencyKeys"]}
    assert {
        "index_snapshot",
        "prompts/grounded_qa_system_version",
        "prompts/grounded_qa_user_version",
    } <= upstream
    assert "weaviate" not in by_key["vector_index"]["kinds"]  # the demo runs the embedded store
    leaves = [key.rsplit("/", 1)[-1] for key in by_key]
    assert len(leaves) == len(set(leaves)), "two assets share a name in the graph"

    _open(page, dagster_ui, f"/assets/{EVALUATED}")
    for name in ("index_snapshot", "grounded_qa_system_version", "grounded_qa_user_version"):
        page.get_by_role("link", name=name).first.wait_for()  # "Upstream assets" in Lineage
    _open(page, dagster_ui, f"/assets/{EVALUATED}?view=lineage&lineageScope=upstream")
    page.get_by_text("index_snapshot", exact=True).first.wait_for()
    _shot(page, "dagster-evaluation-upstream.png")

    _open(page, dagster_ui, "/asset-groups")
    page.get_by_role("button", name="Hide navigation").click()
    page.mouse.click(1000, 800)  # focus the graph canvas for its keyboard shortcut
    page.keyboard.press("Alt+KeyE")  # "Expand all groups"
    page.get_by_text("champion_promotion", exact=True).first.wait_for()
    _shot(page, "dagster-global-lineage.png")
