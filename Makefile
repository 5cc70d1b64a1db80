# The two commands of the README: `make run` (whole pipeline on the embedded model) and `make test`.
# Both set up a virtual environment on first use; later runs reuse it.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
OUT    ?= runs/example

.PHONY: run test setup clean

$(BIN)/charter: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..."; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	# llama-cpp-python compiles from source (about 6 minutes on 2 cores, once).
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -e '.[serve,dev]'
	touch $(BIN)/charter

setup: $(BIN)/charter

run: setup
	$(BIN)/charter run --out $(OUT)

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
