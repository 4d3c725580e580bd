# Each target sets up what it needs: a local virtual environment built from requirements.txt.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint chromium clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

## Launch the explorer in the browser: make run [PORT=8501] [RUNS=dir] [ARGS="streamlit flags"].
PORT ?= 8501
RUNS ?=
ARGS ?=
run: $(STAMP)
	@if $(PY) -c "import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $(PORT))) != 0)"; then \
	  echo "port $(PORT) is already in use (another explorer?): open http://localhost:$(PORT) or choose another port, e.g. make run PORT=$$(( $(PORT) + 1 ))"; exit 1; fi
	@echo "IJR explorer on http://localhost:$(PORT)"
	$(PY) -m streamlit run app/main.py --server.port $(PORT) $(ARGS) $(if $(RUNS),-- --runs-dir $(RUNS))

## Run the whole test suite (unit, science, app and real-browser tests).
test: $(STAMP) chromium
	$(PY) -m pytest -q

## Debian's Chromium for the browser tests (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	  { echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "WARNING: could not install chromium; the browser test will fail"; }

## Benchmarks: baseline and ours in one process, ratios printed.
bench: $(STAMP) chromium
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(PY) -m ruff check ijr_core app tests bench

clean:
	rm -rf $(VENV) .pytest_cache
