#!/usr/bin/env bash
# Installs what `make run` (deps.sh run) or `make test` (deps.sh test) needs and is missing, on Debian or Ubuntu.
# As root it installs with apt-get, saying what; otherwise it prints the exact command to run and stops.
set -euo pipefail
missing=()
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists rdkafka 2>/dev/null || missing+=(librdkafka-dev)
if [ "${1:-run}" = test ]; then
    command -v kcat >/dev/null || missing+=(kcat)
    command -v curl >/dev/null || missing+=(curl)
    command -v chromium >/dev/null || missing+=(chromium)
    python3 -c "import yaml" 2>/dev/null || missing+=(python3-yaml)
fi
if [ ${#missing[@]} -gt 0 ]; then
    command="apt-get update && apt-get install -y ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "sluice needs ${missing[*]}; install them with:" >&2
        echo "  sudo sh -c '$command'" >&2
        exit 1
    fi
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A python3 on PATH that is not Debian's does not see python3-yaml (the compose-file test parses YAML with it).
if [ "${1:-run}" = test ] && ! python3 -c "import yaml" 2>/dev/null; then
    echo "deps: installing PyYAML for $(command -v python3) with pip"
    python3 -m pip install -q pyyaml
fi
