# The two commands of the README: `make run` (whole pipeline on the embedded model) and `make test`.
# Both set up a virtual environment on first use; later runs reuse it.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
OUT    ?= runs/example
# The exact versions CI tested (see docs/setup.md, "Upgrading the lock").
LOCK   ?= constraints.txt
# llama.cpp compiled for every x86-64 CPU with AVX2, not for the CPU it is built on: a native
# build crashed in llama_decode on an AVX-512 Xeon. GPU or ARM: see docs/setup.md.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
else
LLAMA_CMAKE_ARGS ?=
endif
LLAMA_VERSION    := $(shell sed -n 's/^llama[-_]cpp[-_]python==//p' $(LOCK))
# What the venv's llama-cpp-python was built with; charter doctor reads it.
LLAMA_RECORD      = $(VENV)/charter-llama-build.txt
# llama.cpp's HF-to-GGUF converter from the same source release (train/gguf_convert.py).
LLAMA_CONVERTER   = $(VENV)/share/charter/llama.cpp
LLAMA_SDIST_DIR   = llama_cpp_python-$(LLAMA_VERSION)/vendor/llama.cpp

.PHONY: run test setup lock clean

$(BIN)/charter: pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=..."; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	# llama-cpp-python compiles from source (about 6.5 minutes on 2 cores, once). --no-cache-dir:
	# never reuse a wheel that pip's cache holds from another CPU or other flags.
	# One download of the source release serves both the build and the GGUF converter.
	@want="llama-cpp-python==$(LLAMA_VERSION) CMAKE_ARGS=$(LLAMA_CMAKE_ARGS)"; \
	if [ "$$(cat $(LLAMA_RECORD) 2>/dev/null)" != "$$want" ] || [ ! -f $(LLAMA_CONVERTER)/convert_hf_to_gguf.py ]; then \
	  tmp=$$(mktemp -d) && \
	  $(BIN)/pip download -q --no-deps --no-binary :all: --no-cache-dir -d $$tmp "llama-cpp-python==$(LLAMA_VERSION)" && \
	  sdist=$$(ls $$tmp/llama_cpp_python-*.tar.gz) && \
	  rm -rf $(LLAMA_CONVERTER) && mkdir -p $(LLAMA_CONVERTER) && \
	  tar -xzf $$sdist -C $(LLAMA_CONVERTER) --strip-components=3 $(LLAMA_SDIST_DIR)/convert_hf_to_gguf.py \
	    $(LLAMA_SDIST_DIR)/conversion $(LLAMA_SDIST_DIR)/gguf-py && \
	  if [ "$$(cat $(LLAMA_RECORD) 2>/dev/null)" != "$$want" ]; then \
	    echo "building $$want"; \
	    CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q \
	      --force-reinstall --no-deps --no-cache-dir $$sdist && echo "$$want" > $(LLAMA_RECORD); \
	  fi; \
	  status=$$?; rm -rf $$tmp; exit $$status; \
	fi
	$(BIN)/pip install -c $(LOCK) -e '.[serve,dev]'
	touch $(BIN)/charter

setup: $(BIN)/charter

run: setup
	$(BIN)/charter run --out $(OUT)

test: setup
	$(BIN)/python -m pytest -q

# Re-resolve every dependency to its newest allowed version in a scratch venv and write the lock.
# Then `make test` (and `make run`) on the new lock before committing it: docs/setup.md.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -U pip setuptools wheel
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) .venv-lock/bin/pip install \
	  --no-cache-dir --no-binary llama-cpp-python -c lock-holds.txt -e '.[serve,dev]'
	{ echo "# Versions CI tested, written by 'make lock' ($$(date -u +%F)); make setup installs these."; \
	  .venv-lock/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) runs
