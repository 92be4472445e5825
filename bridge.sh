#!/usr/bin/env bash
# ./bridge.sh run [mitmdump args…]   install (once) and run the bridge with config.yaml on 127.0.0.1:8080
# ./bridge.sh test [pytest args…]    install (once) and run the test suite
set -euo pipefail
cd "$(dirname "$0")"

find_python() {  # mitmproxy 12 needs Python ≥ 3.12; pip would quietly fall back to mitmproxy 11
  local c
  for c in python3.13 python3.12 "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.13"*/bin/python3.13)" \
           "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.12"*/bin/python3.12)" python3; do
    [ -n "$c" ] || continue
    if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo "$c"; return; fi
  done
  echo "error: Python >= 3.12 not found (mitmproxy 12 needs it)" >&2; exit 1
}

install() {  # $1: requirements file; reinstalls only when it or the constraints change
  local stamp=".venv/.installed-$(cat "$1" requirements.txt constraints.txt | sha256sum | cut -c1-16)"
  [ -d .venv ] || "$(find_python)" -m venv .venv
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$1" -c constraints.txt
    .venv/bin/python -c 'import mitmproxy.version as v; assert v.VERSION.startswith("12."), v.VERSION'
    touch "$stamp"
  fi
}

cmd="${1:-run}"; shift || true
case "$cmd" in
  run)  install requirements.txt
        exec .venv/bin/mitmdump -s addon/bridge.py --set bridge_config=config.yaml \
             --mode reverse:http://127.0.0.1:11434 --listen-host 127.0.0.1 --listen-port 8080 "$@" ;;
  test) install requirements-dev.txt
        exec .venv/bin/python -m pytest "$@" ;;
  *)    echo "usage: $0 run|test [args…]" >&2; exit 2 ;;
esac
