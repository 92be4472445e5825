#!/usr/bin/env bash
# ./bridge.sh run [mitmdump args…]   install (once) and run the bridge with config.yaml on 127.0.0.1:8080
# ./bridge.sh test [pytest args…]    install (once) and run the test suite
# ./bridge.sh bench [--quick …]      install (once) and run the side-by-side benchmark (README "Benchmark");
#                                    `./bridge.sh bench micro`: the in-process translator micro-benchmark;
#                                    `./bridge.sh bench limits [--quick]`: memory bounds under hostile traffic
#                                    `./bridge.sh bench cache`: prompt caching with and without the bridge's help
# ./bridge.sh record NAME [args…]    run the bridge like `run`, recording the session into recordings/NAME.flow (Ctrl-C ends it)
# ./bridge.sh check [config] [args…] the endpoint self-test (README "Troubleshooting"), from any directory
# ./bridge.sh bless [flows/x.flow…]  re-translate fixtures (default: all) with today's code and flows/config.yaml
set -euo pipefail
caller="$PWD"  # where the user ran it from: paths they give are relative to it
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

bridge() {  # mitmdump with the bridge: run's defaults, unless the arguments give their own (mitmproxy
  # takes the last of an option set twice, and adds a listener per --mode)
  local config=config.yaml defaults=(--set bridge_config=config.yaml) mode=() a target
  for a in "$@"; do  # a script option set twice keeps mitmproxy from loading the script at all
    case "$a" in bridge_config=*) config="${a#bridge_config=}"; defaults=() ;; --mode|--mode=*|-m) mode=(none) ;; esac
  done
  if [ -z "${mode[*]}" ]; then  # the reverse target: where the config's first endpoint is, not a guess
    if target="$(.venv/bin/python -m addon.config reverse-target "$config" 2>/dev/null)"; then
      mode=(--mode "reverse:$target")
    else
      mode=()  # a broken config: mitmdump says what is wrong with it, in one line
    fi
  else
    mode=()
  fi
  # flow_detail 0: the bridge's one line per request instead of mitmproxy's (--set flow_detail=1 brings them back)
  exec .venv/bin/mitmdump -s addon/bridge.py "${defaults[@]}" "${mode[@]}" --listen-host 127.0.0.1 \
       --listen-port 8080 --set flow_detail=0 "$@"
}

cmd="${1:-run}"; shift || true
case "$cmd" in
  run)  install requirements.txt
        bridge "$@" ;;
  test) install requirements-dev.txt
        exec .venv/bin/python -m pytest "$@" ;;
  record)  # the same bridge as `run`, plus -w: credentials are redacted before the flow is written. Into
        # recordings/ (git ignores it): a user's prompts never mix with the project's fixtures in flows/
        name="${1:?usage: $0 record NAME [mitmdump args…]}"; shift
        case "$name" in */*|*.flow) echo "record: NAME is a bare name; the file is recordings/NAME.flow" >&2; exit 2 ;; esac
        install requirements.txt
        mkdir -p recordings
        echo "recording into recordings/$name.flow (Ctrl-C ends the session and writes it)" >&2
        bridge -w "recordings/$name.flow" "$@" ;;
  check) install requirements.txt
        args=()
        for a in "$@"; do  # a config path relative to where the user is
          case "$a" in -*|/*) args+=("$a") ;; *) [ -e "$caller/$a" ] && args+=("$caller/$a") || args+=("$a") ;; esac
        done
        exec .venv/bin/python -m addon.check "${args[@]}" ;;
  bless) install requirements.txt   # never hand-edit a fixture: today's translation of its recording replaces it
        exec .venv/bin/python -m flows.bless "$@" ;;
  bench) install requirements-dev.txt
        if [ "${1:-}" = micro ]; then shift; exec .venv/bin/python -m bench.micro "$@"; fi
        if [ "${1:-}" = limits ]; then shift; exec .venv/bin/python -m bench.limits "$@"; fi
        if [ "${1:-}" = cache ]; then shift; exec .venv/bin/python -m bench.cache "$@"; fi
        exec .venv/bin/python -m bench.run "$@" ;;
  *)    echo "usage: $0 run|test|check|record NAME|bless|bench [args…]" >&2; exit 2 ;;
esac
