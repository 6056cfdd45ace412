# ixmeter: the two commands of the README, and a few helpers.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests (and the demo's emulated network) need; installed only when run as root.
DEB_PACKAGES := iproute2 iputils-ping fping libpcap0.8 iptables traceroute mtr-tiny libcap2-bin \
                postgresql chromium chromium-driver fonts-wqy-microhei prometheus
DEMO_DEB_PACKAGES := iproute2 iputils-ping libpcap0.8
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test venv deps-test deps-demo lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.server: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server]'
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

deps-demo:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEMO_DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "not root: skipping Debian packages ($(DEMO_DEB_PACKAGES)); the demo runs unprivileged"; fi

deps-test:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	else echo "not root: skipping Debian packages; tests that need them will skip and say why"; fi

## make demo: set up and run the main job on the built-in emulated network
## (e.g. make demo DEMO_ARGS="--duration 300 --no-dashboard"; see docs/demo.md)
demo: deps-demo $(VENV)/.server
	$(BIN)/ixmeter demo $(DEMO_ARGS)

## make test: set up and run the whole test suite
test: deps-test $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: deps-test $(VENV)/.test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
