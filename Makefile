# The two set-up commands of the README: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/local.toml
PYTEST_ARGS ?=
# The Jupiter API `make run` trades through: empty keeps the config's [jupiter] api (ultra_then_swap).
JUPITER_API ?=

.PHONY: run test test-slow bench system-deps clean

$(STAMP): requirements.lock setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian packages the engine and its tests talk to for real (SoftHSM2 for PKCS#11 signing; NATS
# with JetStream for the cluster, in /usr/sbin, which may not be on PATH; Prometheus and promtool
# for the alert rules and the dashboard; tmux to drive `xorj-actors top` as a person would).
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
  else sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends $(1) >/dev/null; fi
system-deps:
	@command -v softhsm2-util >/dev/null 2>&1 || { $(call APT_INSTALL,softhsm2); }
	@command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || { $(call APT_INSTALL,nats-server); }
	@command -v promtool >/dev/null 2>&1 || { $(call APT_INSTALL,prometheus); }
	@command -v tmux >/dev/null 2>&1 || { $(call APT_INSTALL,tmux); }

run: $(STAMP) system-deps
	$(BIN)/xorj-actors run --config $(CONFIG) $(if $(JUPITER_API),--jupiter-api $(JUPITER_API))

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -m slow --run-slow $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache
