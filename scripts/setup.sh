#!/usr/bin/env bash
# Installs every Debian package that portwarden's build, tests, demo and benchmarks need.
# Idempotent: when everything is present it changes nothing and touches no network.
set -euo pipefail

packages=(
  # build
  g++ cmake ninja-build pkg-config make
  libnetfilter-queue-dev libmnl-dev libnetfilter-conntrack-dev
  libboost-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  # eBPF socket-owner records (src/state/bpf): libbpf, bpftool for the skeleton; clang-19
  # below compiles the BPF program. Without them that library builds as a stub.
  libbpf-dev bpftool libelf-dev zlib1g-dev
  # DNS (issue 4): ldns takes upstream answers apart, OpenSSL carries DNS over TLS
  libldns-dev libssl-dev ca-certificates
  # settings and profiles (issue 9): SQLite
  libsqlite3-dev
  # run: the iptables binaries (nft or legacy backend), conntrack tooling
  iptables conntrack iproute2
  # tests: unit (GoogleTest), fuzz (clang 19 + libFuzzer), integration (python3, ping)
  libgtest-dev libgmock-dev python3 clang-19 libclang-rt-19-dev iputils-ping
  # benchmarks and lint
  libbenchmark-dev iperf3 nftables clang-format-19 clang-tidy-19
  # DNS tests and benchmark: an authoritative server (nsd) for the test zone over UDP, TCP and
  # TLS, the system tools as clients (dig, getent), dnsperf, and the forwarders we compare with
  # (unbound, dnsmasq). Their services are never started, see below.
  nsd unbound dnsmasq-base bind9-dnsutils dnsperf openssl
  # the Debian package (make deb, tests/packaging): built with dpkg-deb under fakeroot, its
  # Depends from dpkg-shlibdeps, checked with lintian; systemd-analyze verifies the unit
  dpkg-dev fakeroot lintian systemd
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# nsd and unbound ship system services that would bind port 53 on the host: we only want their
# binaries (the tests start them inside namespaces). A policy-rc.d that says "no" (exit 101)
# keeps invoke-rc.d from starting them while we install; one that was already there is kept.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
