#!/usr/bin/env bash
# Fetches Debian's opensnitch package and unpacks its daemon into DIR (default
# build/opensnitch) WITHOUT installing it: installing would start the service in the host's own
# network namespace, where it installs firewall rules. The benchmark runs the unpacked binary
# inside its client namespace only. Prints the binary's path; exits 1 if it cannot be had.
set -euo pipefail
dir="${1:-build/opensnitch}"
binary="$dir/usr/bin/opensnitchd"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
mkdir -p "$dir"
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
(cd "$download" && apt-get download opensnitch >/dev/null 2>&1) || {
  echo "extract_opensnitchd: apt-get download opensnitch failed (run apt-get update?)" >&2
  exit 1
}
dpkg-deb -x "$download"/opensnitch_*.deb "$dir"
echo "$binary"
