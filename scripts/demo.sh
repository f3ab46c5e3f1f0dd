#!/usr/bin/env bash
# `make demo`: runs scripts/demo.py as root (it builds network namespaces).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="${1:?usage: demo.sh PATH-TO-PORTWARDEN [--once]}"
shift
if [ "$(id -u)" -ne 0 ]; then
  exec sudo python3 "$here/demo.py" "$binary" "$@"
fi
exec python3 "$here/demo.py" "$binary" "$@"
