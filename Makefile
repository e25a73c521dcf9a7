# The two commands a new user needs: `make demo` and `make test`. Each creates its own virtual
# environment and installs everything it needs; nothing is downloaded at run time.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export AGENT_PLATFORM_HOME ?= $(CURDIR)/.agent_platform
export DAGSTER_HOME ?= $(AGENT_PLATFORM_HOME)/dagster
REPORTS := $(AGENT_PLATFORM_HOME)/reports

.PHONY: install chromium prometheus haproxy oidc demo test acceptance types lint format bench ui clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Debian's Chromium for the browser tests of the Dagster and MLflow UIs (Playwright drives it;
## no browser is downloaded). Installed once when missing; needs root, as CI has.
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

chromium: $(CHROMIUM)

## Prometheus and Alertmanager (Debian packages) for the alerting tests: `promtool check/test
## rules`, `amtool check-config` / routing tests, and a real Prometheus scraping the gateway.
## Installed once when missing; needs root, as CI has. The packages' services are not needed.
PROMETHEUS ?= /usr/bin/prometheus
AMTOOL ?= /usr/bin/amtool
$(PROMETHEUS) $(AMTOOL):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null

prometheus: $(PROMETHEUS) $(AMTOOL)

## HAProxy (Debian package) in front of gateway replicas: the replica tests and
## `benchmarks/serve.py --replicas`. Installed once when missing; needs root, as CI has.
HAPROXY ?= /usr/sbin/haproxy
$(HAPROXY):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null

haproxy: $(HAPROXY)

## The OpenID provider the authentication tests sign in against (panva/oidc-provider on Node,
## exact versions from deploy/oidc/package-lock.json).
OIDC_STAMP := deploy/oidc/node_modules/.installed-stamp
$(OIDC_STAMP): deploy/oidc/package.json deploy/oidc/package-lock.json
	cd deploy/oidc && npm ci --no-audit --no-fund --silent
	@touch $(OIDC_STAMP)

oidc: $(OIDC_STAMP)

## Materialize the whole asset graph for the sample tenant and show the result.
demo: $(STAMP)
	$(BIN)/agent-platform demo

## Lint, types, the whole test suite under the coverage gate, then the acceptance scenarios.
## Coverage (line and branch, subprocesses included: [tool.coverage.run] in pyproject.toml) of
## agent_platform, assets, sensors and resources: a per-package table, JSON and XML reports under
## $(REPORTS), and a failure below fail_under of [tool.coverage.report]. PYTEST_ARGS narrows the run
## (`make test PYTEST_ARGS=tests/prompts`; the gate then measures only that part). The tests run on
## PYTEST_WORKERS xdist workers (one per core); a directory whose tests share session servers runs
## on one worker (tests/conftest.py, distribution_group). PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= auto
test: $(STAMP) $(CHROMIUM) $(PROMETHEUS) $(AMTOOL) $(OIDC_STAMP) $(HAPROXY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BANDIT)
	$(MAKE) types
	@mkdir -p $(REPORTS)
	@rm -f $(REPORTS)/.coverage $(REPORTS)/.coverage.*
	COVERAGE_FILE=$(REPORTS)/.coverage $(BIN)/python -m pytest -n $(PYTEST_WORKERS) \
		--junitxml=$(REPORTS)/junit.xml --cov \
		--cov-report=json:$(REPORTS)/coverage.json --cov-report=xml:$(REPORTS)/coverage.xml \
		$(PYTEST_ARGS); \
		status=$$?; $(BIN)/python agent_platform/readiness/suite.py table $(REPORTS)/coverage.json; \
		exit $$status
	$(MAKE) acceptance

## The behave scenarios in features/, in the words of operators, prompt authors and end users;
## each scenario runs on a fresh home of its own. One JUnit file per feature under the reports.
## Their coverage (subprocesses included) is reported for the modules the scenarios exercise,
## ACCEPTANCE_MODULES, and fails below ACCEPTANCE_FAIL_UNDER (README, "Coverage").
## The modules that carry the scenarios' journeys (ingest, search and answer; publish and promote
## a prompt; evaluate, gate and promote an agent version; snapshot and restore; serve over HTTP
## with sign-in; the rollout state, routing by hash and the gateway's view of it, which the rollback
## scenario walks); the libraries they lean on (the CLI's error reporting, security, settings, the
## controller's advance and complete paths) are measured by the unit suite, whose error branches
## the scenarios do not walk.
ACCEPTANCE_MODULES ?= $(subst $(eval) ,$(comma),$(strip \
	agent_platform/knowledge/pipeline.py agent_platform/knowledge/service.py assets/knowledge.py \
	agent_platform/prompts/publish.py agent_platform/prompts/testing.py assets/prompts.py \
	agent_platform/runtime/workflow.py agent_platform/runtime/models/extractive.py \
	agent_platform/runtime/response.py agent_platform/runtime/grounding.py \
	agent_platform/evaluation/service.py agent_platform/evaluation/gates.py \
	agent_platform/model_registry/registry.py agent_platform/vectorstore/snapshots.py \
	agent_platform/gateway/protocol.py agent_platform/security/authn.py \
	agent_platform/delivery/state.py agent_platform/delivery/routing.py agent_platform/gateway/rollouts.py))
comma := ,
ACCEPTANCE_FAIL_UNDER ?= 84
## The features run ACCEPTANCE_JOBS at a time, one behave process each (behave's own runner is
## serial), the rollback scenario's feature first since it is the longest.
ACCEPTANCE_JOBS ?= 2
FEATURES := features/rollout.feature $(filter-out features/rollout.feature,$(sort $(wildcard features/*.feature)))
acceptance: $(STAMP)
	@rm -rf $(REPORTS)/behave $(REPORTS)/.coverage-acceptance $(REPORTS)/.coverage-acceptance.*
	@mkdir -p $(REPORTS)/behave
	printf '%s\n' $(FEATURES) | COVERAGE_FILE=$(REPORTS)/.coverage-acceptance \
		xargs -P $(ACCEPTANCE_JOBS) -n 1 $(BIN)/coverage run -m behave \
		--format progress --junit --junit-directory $(REPORTS)/behave; \
		status=$$?; \
		$(BIN)/coverage combine --quiet --data-file=$(REPORTS)/.coverage-acceptance && \
		$(BIN)/coverage json --data-file=$(REPORTS)/.coverage-acceptance \
			-o $(REPORTS)/coverage-acceptance.json --include='$(ACCEPTANCE_MODULES)' \
			--fail-under=$(ACCEPTANCE_FAIL_UNDER); cover=$$?; \
		$(BIN)/python agent_platform/readiness/suite.py table $(REPORTS)/coverage-acceptance.json; \
		exit $$(( status || cover ))

## mypy over the packages listed under [tool.mypy] in pyproject.toml; its JUnit result is what
## the readiness item implementation.static_analysis reads.
types: $(STAMP)
	@mkdir -p $(REPORTS)
	$(BIN)/mypy --junit-xml $(REPORTS)/mypy.xml

## bandit over agent_platform: every finding is fixed or justified in place (`# nosec BXXX  # why`);
## its "nosec encountered" warnings (a pragma on a line with several nodes) are noise.
BANDIT = set -o pipefail; $(BIN)/bandit -q -r agent_platform 2>&1 | { grep -v 'nosec encountered' || true; }

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BANDIT)

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

## Performance benchmarks (minutes); results go in BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/search.py
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/authz.py

## The Dagster UI on http://127.0.0.1:3000 over the same embedded state.
ui: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/agent-platform config dagster-home >/dev/null
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .agent_platform .pytest_cache .ruff_cache deploy/oidc/node_modules
