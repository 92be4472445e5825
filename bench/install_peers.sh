#!/usr/bin/env bash
# Install the benchmark's optional peers into .tmp/peers (gitignored): LiteLLM proxy from PyPI in its
# own venv, claude-code-router from npm. A few minutes; `./bridge.sh bench` uses whichever is there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp/peers
py="$(command -v python3.13 || command -v python3.12 || echo .venv/bin/python)"
if [ ! -x .tmp/peers/litellm-venv/bin/litellm ]; then
  "$py" -m venv .tmp/peers/litellm-venv
  .tmp/peers/litellm-venv/bin/pip install -q --disable-pip-version-check 'litellm[proxy]'
fi
if command -v npm >/dev/null && [ ! -f .tmp/peers/ccr/node_modules/@musistudio/claude-code-router/dist/cli.js ]; then
  mkdir -p .tmp/peers/ccr
  (cd .tmp/peers/ccr && npm install --no-audit --no-fund --loglevel=error @musistudio/claude-code-router)
fi
.venv/bin/python -m bench.peers
