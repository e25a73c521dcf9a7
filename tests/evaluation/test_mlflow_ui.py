"""The MLflow UI as its users meet it: after an evaluation round of two candidates, the agent's
experiment lists both agent versions (LoggedModels with their parameters, linked to the registered
model versions) and their GenAI evaluations with per-example assessments.

Real parts: the sample tenant indexed, the real runtime answering, `mlflow server` on a loopback
port over the test home's store, Debian's Chromium driven by Playwright (nothing downloaded).
Screenshots go to `$MLFLOW_UI_SCREENSHOTS` (default: the test's tmp dir)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_platform.evaluation import EvaluationService, load_plan
from agent_platform.model_registry import CHAMPION, AgentModelRegistry
from agent_platform.runtime import AgentRuntime
from agent_platform.settings import Settings
from tests.evaluation.test_evaluation_e2e import KEYWORD_K1, small_plan

LENIENT_GATES_TOML = "accuracy = 0.3\nconsistency = 0.5\nlatency_p95_ms = 60000.0\n"

CHROMIUM = Path("/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def evaluated_home(home: Path, tmp_path: Path) -> Path:
    """Two candidates evaluated on a few examples; the better one is promoted and answers one
    request (traced to its version)."""
    settings = Settings(home=home)
    plan = load_plan(small_plan(tmp_path, extra=KEYWORD_K1, gates=LENIENT_GATES_TOML))
    outcome = EvaluationService(settings, plan=plan).run_round(max_examples=6)
    registry = AgentModelRegistry.from_settings(settings)
    registry.promote(plan.agent, outcome.challenger.version.version, by="test")
    runtime = AgentRuntime.from_settings(settings)
    try:
        answer = runtime.run(tenant="sample", user="ann", input="How do I list the snapshots?")
    finally:
        runtime.close()
    (home / "served-trace-id").write_text(answer.trace_id)
    return home


@pytest.fixture
def mlflow_ui(evaluated_home: Path, tmp_path: Path) -> Iterator[str]:
    """`mlflow server` over the home's store, artifacts under the home, on an ephemeral port."""
    settings = Settings(home=evaluated_home)
    port = _free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            settings.resolved_mlflow_tracking_uri,
            "--default-artifact-root",
            settings.resolved_mlflow_artifact_root,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        start_new_session=True,  # its own process group: uvicorn and the job runner end together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp_path / 'mlflow-server.log').read_text()}")
            time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health within 120 s")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()


@pytest.mark.timeout(1500)  # indexes the sample tenant and evaluates two candidates first
def test_mlflow_ui_shows_agent_versions_and_their_evaluations(
    mlflow_ui: str, evaluated_home: Path, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("MLFLOW_UI_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    registry = AgentModelRegistry.from_settings(Settings(home=evaluated_home))
    versions = registry.versions("grounded-qa")
    assert [v.candidate for v in versions] == ["extractive", "keyword-k1"]
    assert all(v.model_id for v in versions)
    experiment = registry.experiment_id("grounded-qa")
    # nothing MLflow keeps lies outside the home: every experiment's artifacts are under it
    for found in registry.client.search_experiments():
        assert found.artifact_location.startswith(evaluated_home.as_uri()), found
    assert not list(tmp_path.glob("**/mlruns")) and not (tmp_path / "mlflow.db").exists()

    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(60_000)

        def show(path: str) -> None:
            page.goto(f"{mlflow_ui}/#/experiments/{experiment}/{path}")
            close = page.get_by_role("button", name="Close")  # the assistant's side panel
            with contextlib.suppress(Exception):
                close.first.click(timeout=5_000)

        # the Agent versions tab: one LoggedModel per candidate, each linked to its model version
        show("models")
        for version in versions:
            expect(page.get_by_text(f"grounded-qa-{version.candidate}").first).to_be_visible()
        expect(page.get_by_role("link", name="grounded-qa").first).to_be_visible()
        page.screenshot(path=shots / "mlflow-agent-versions.png")

        # one version: its evaluation's metrics on the dataset, the registered version, and the
        # configuration and lineage as parameters
        show(f"models/{versions[0].model_id}")
        expect(page.get_by_role("heading", name="grounded-qa-extractive")).to_be_visible()
        expect(page.get_by_text("correct/mean").first).to_be_visible()
        expect(page.get_by_text("evaluate extractive v1").first).to_be_visible()
        expect(page.get_by_text("Datasets used")).to_be_visible()
        expect(page.get_by_text("retrieval.mode").first).to_be_attached()
        expect(page.get_by_text("index_snapshot_id").first).to_be_attached()
        page.screenshot(path=shots / "mlflow-agent-version.png")

        # the Evaluation runs tab: the two evaluations, each with the dataset as its input
        show("evaluation-runs")
        for run_name in ("evaluate extractive v1", "evaluate keyword-k1 v2"):
            expect(page.get_by_text(run_name).first).to_be_attached()
        expect(page.get_by_text("correct/mean").first).to_be_visible()
        page.screenshot(path=shots / "mlflow-evaluation-runs.png")

        # one evaluation's per-example results: each question with the agent's answer
        page.get_by_text("evaluate extractive v1").first.click()
        expect(page.get_by_text("6 of 6")).to_be_visible()
        expect(page.get_by_text('"question"').first).to_be_visible()
        page.screenshot(path=shots / "mlflow-evaluation-results.png")

        # an example's trace: question, answer, and the scorers' assessments
        page.get_by_text('"question"').first.click()
        page.get_by_role("button", name=re.compile(r"Assess trace \(\d+ assessments\)")).click()
        assessments = page.get_by_role("complementary").or_(page.locator("body"))
        for scorer in ("correct", "no_pii", "groundedness", "consistency"):
            expect(assessments.get_by_text(scorer, exact=True).first).to_be_visible()
        page.screenshot(path=shots / "mlflow-evaluation-example.png")

        # the serving version's Traces tab: the request it answered, openable from there
        champion = registry.by_alias("grounded-qa", CHAMPION)
        served = (evaluated_home / "served-trace-id").read_text()
        show(f"models/{champion.model_id}/traces")
        expect(page.get_by_text(re.compile(f"^tr-{served[:6]}")).first).to_be_visible()
        page.screenshot(path=shots / "mlflow-version-traces.png")
        browser.close()
