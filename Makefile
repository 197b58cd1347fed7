# Tongban (通办). `make run` and `make test` do all the set-up themselves on a fresh Debian machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench system-deps install clean

# validate → publish into the embedded SQLite default (./tongban.sqlite, or $$TONGBAN_DATABASE_URL)
# → render every flowchart → a short simulation → demo data (made by running the engine) on a first start
# → serve http://127.0.0.1:8000 with the embedded scheduler (automatic steps, timers, notices).
run: install
	$(BIN)/tongban validate definitions/
	$(BIN)/tongban db upgrade
	$(BIN)/tongban publish definitions/
	@mkdir -p build/flowcharts
	@for f in definitions/*.yaml; do \
	  case $$(basename $$f) in departments.yaml|calendar.yaml) continue;; esac; \
	  $(BIN)/tongban render $$f -o build/flowcharts/$$(basename $$f .yaml).svg || exit 1; \
	done
	@echo "flowcharts written to build/flowcharts/"
	$(BIN)/tongban simulate definitions/kaiban-qiye.yaml --cases 50 --seed 1
	$(BIN)/tongban demo --cases 300
	$(BIN)/tongban run-jobs --once
	$(BIN)/tongban serve --demo

test: install
	$(BIN)/pip check
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# bench/engine.py runs ours against SpiffWorkflow and the 1M-task SLA sweep (bench/sweep.py);
# bench/floor.py the least a completion's transaction costs on SQLite; bench/definitions.py validate and render
bench: install
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/floor.py
	$(BIN)/python bench/definitions.py
	$(BIN)/python bench/web.py --quick

install: system-deps $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Tongban needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Installs what is missing with apt-get when we are root; otherwise says exactly what to run.
system-deps:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-noto-cjk"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "Tongban needs these Debian packages:$$missing"; \
	    echo "run:  sudo apt-get install -y$$missing   and then this command again"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
