#!/usr/bin/env bash
# Runs `portwarden run` with only the capabilities of the systemd unit's CapabilityBoundingSet
# (capsh drops the rest) in a network namespace of its own, and checks that it starts (queues,
# rules of both families, nameserver on port 53, eBPF attribution) and stops cleanly (exit 0).
#   check_unit_capabilities.sh BINARY UNIT
# The eBPF programs are attached to an empty cgroup made for this run (--bpf-cgroup), not to
# the host's root. When eBPF does not come up, the same run with every capability tells whether
# the unit lacks one or the host cannot do it at all. nsenter --net, not `ip netns exec`: the
# latter mounts a sysfs of the namespace, which hides the host's cgroup v2 hierarchy.
# Exit 0 passed, 1 failed, 77 skipped (not root, tools missing; 1 with CI=true).
set -uo pipefail

skip_code=77
[ "${CI:-}" = true ] && skip_code=1
if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY UNIT" >&2
  exit 2
fi
binary=$(readlink -f "$1")
unit=$2
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: needs root (network namespace, capabilities)" >&2
  exit "$skip_code"
fi
for tool in ip nsenter capsh; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing" >&2; exit "$skip_code"; }
done
cgroup_root=""
for candidate in /sys/fs/cgroup /sys/fs/cgroup/unified; do
  if [ "$(stat -f -c %T "$candidate" 2>/dev/null)" = cgroup2fs ]; then
    cgroup_root=$candidate
    break
  fi
done
[ -n "$cgroup_root" ] || { echo "SKIP: no cgroup v2 hierarchy" >&2; exit "$skip_code"; }

namespace=pwt-$$-deb
work=$(mktemp -d /tmp/pwt-$$-deb-XXXXXX)
cgroup=$cgroup_root/pwt-$$-deb
cleanup() {
  ip netns del "$namespace" 2>/dev/null
  rmdir "$cgroup" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$namespace" || { echo "FAIL: ip netns add" >&2; exit 1; }
ip -n "$namespace" link set lo up
mkdir "$cgroup" || { echo "FAIL: mkdir $cgroup" >&2; exit 1; }
# An upstream that is never asked: the run only has to start.
printf '{"dns": {"nameservers": ["dns://192.0.2.53"]}}\n' >"$work/config.json"

unit_capabilities=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' | grep . |
  tr '[:upper:]' '[:lower:]' | sort -u)
[ -n "$unit_capabilities" ] || { echo "FAIL: $unit has no CapabilityBoundingSet" >&2; exit 1; }
all_capabilities=$(capsh --print | sed -n 's/^Bounding set =//p' | tr ',' '\n' | grep .)

# run NAME CAPABILITIES...: the daemon with these capabilities until it has started (at most
# 20 s), then SIGTERM. Leaves $work/NAME.events, NAME.log and NAME.exit.
run() {
  local name=$1 keep drop pid
  shift
  keep=$(printf '%s\n' "$@")
  drop=$(grep -vxF -f <(printf '%s\n' "$keep") <<<"$all_capabilities" | paste -sd,)
  nsenter --net="/run/netns/$namespace" capsh ${drop:+--drop="$drop"} -- -c \
    "exec '$binary' run --config '$work/config.json' --data-dir '$work/$name.data' \
       --events '$work/$name.events' --resolved-monitor off --bpf-cgroup '$cgroup'" \
    2>"$work/$name.log" &
  pid=$!
  for _ in $(seq 200); do
    grep -q '"event":"started"' "$work/$name.events" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  echo $? >"$work/$name.exit"
}

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# shellcheck disable=SC2086 # one capability a word
run unit $unit_capabilities
started=$(grep '"event":"started"' "$work/unit.events" 2>/dev/null | head -1)
if [ -z "$started" ]; then
  fail "no started event with the unit's capabilities ($(paste -sd' ' <<<"$unit_capabilities")):
$(tail -20 "$work/unit.log")"
else
  for expected in '"ipv4Rules":true' '"dns":{"enabled":true'; do
    [[ "$started" == *"$expected"* ]] || fail "started event lacks $expected: $started"
  done
  if [[ "$started" != *'"ebpf":true'* ]]; then
    # shellcheck disable=SC2086
    run full $all_capabilities
    if grep -q '"ebpf":true' "$work/full.events" 2>/dev/null; then
      fail "eBPF attribution works with every capability but not with the unit's:
$(grep -i ebpf "$work/unit.log" | head -5)"
    else
      echo "note: no eBPF attribution on this host, even with every capability" >&2
    fi
  fi
fi
[ "$(cat "$work/unit.exit")" = 0 ] || fail "exit $(cat "$work/unit.exit") after SIGTERM:
$(tail -20 "$work/unit.log")"

if [ "$failures" -ne 0 ]; then
  exit 1
fi
echo "capabilities: the daemon starts and stops with $(paste -sd' ' <<<"$unit_capabilities"): $started"
