#!/usr/bin/env bash
# Builds the Debian package from BINARY and checks it without installing it:
#   check_deb.sh BINARY WORKDIR
# - the control fields, the file list with modes and owners, the conffile, a stripped binary;
# - Depends names the package of every shared library the binary needs (objdump NEEDED ->
#   dpkg -S), plus adduser and iptables;
# - the default config is accepted by the packaged binary;
# - the unit: the hardening and the exact capability set, systemd-analyze verify (on a copy
#   that points at the extracted binary) and an offline exposure score;
# - the maintainer scripts: sh -n, and read (never run) for what they must and must not do;
# - lintian: no error and no warning.
# Never runs dpkg -i, maintainer scripts or systemctl: the host's dpkg database and services
# stay as they are. Exit 0 passed, 1 failed, 77 skipped (tools missing; 1 with CI=true).
set -uo pipefail

skip_code=77
[ "${CI:-}" = true ] && skip_code=1
if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY WORKDIR" >&2
  exit 2
fi
binary=$1
work=$2
repo=$(cd "$(dirname "$0")/../.." && pwd)
for tool in dpkg-deb dpkg-shlibdeps dpkg-parsechangelog lintian systemd-analyze objdump; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is missing (scripts/setup.sh installs it)" >&2
    exit "$skip_code"
  fi
done

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

rm -rf "$work"
mkdir -p "$work"
deb=$("$repo/packaging/build-deb.sh" "$binary" "$work/out") || {
  echo "FAIL: build-deb.sh failed" >&2
  exit 1
}
version=$(dpkg-parsechangelog -l "$repo/packaging/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
[ "$(basename "$deb")" = "portwarden_${version}_${arch}.deb" ] || fail "package file name $deb"

# Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = portwarden ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), changelog $version"
[ "$("$binary" version)" = "portwarden ${version%-*}" ] || fail "binary says $("$binary" version)"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"

# Depends: the package of every library in the binary's NEEDED entries (objdump), found through
# the file the dynamic linker loads (ldd) and dpkg -S (one call; with usrmerge a library may be
# registered under /lib or /usr/lib). A package may stand in through Provides
# (libspdlog1.10 provides libspdlog1.10-fmt9).
depends=" $(field Depends | tr -d ' ' | tr ',' '\n' | sed 's/(.*//' | tr '\n' ' ') "
needed=$(objdump -p "$binary" | awk '$1 == "NEEDED" {print $2}')
[ -n "$needed" ] || fail "objdump shows no NEEDED libraries"
declare -A library_path
while read -r name _ path _; do
  [ -n "$path" ] && library_path[$name]=$(readlink -f "$path")
done < <(ldd "$binary" | grep '=>')
candidates=()
for library in $needed; do
  path=${library_path[$library]:-}
  [ -n "$path" ] || { fail "ldd does not find $library"; continue; }
  candidates+=("$path" "${path#/usr}")
done
owners=$(dpkg -S "${candidates[@]}" 2>/dev/null)
for library in $needed; do
  path=${library_path[$library]:-}
  [ -n "$path" ] || continue
  owner=$(awk -v a="$path" -v b="${path#/usr}" '$2 == a || $2 == b {print $1; exit}' <<<"$owners" |
    sed 's/:.*//')
  if [ -z "$owner" ]; then
    fail "no Debian package owns $library ($path)"
    continue
  fi
  names="$owner $(dpkg-query -W -f '${Provides}' "$owner" | tr -d ' ' | tr ',' '\n' |
    sed 's/(.*//' | tr '\n' ' ')"
  found=no
  for name in $names; do
    [[ "$depends" == *" $name "* ]] && found=yes
  done
  [ "$found" = yes ] || fail "Depends lacks $owner (for $library): $(field Depends)"
done
for package in adduser iptables; do
  [[ "$depends" == *" $package "* ]] || fail "Depends lacks $package"
done

# Files: path, mode and owner of each that must be there.
listing=$(dpkg-deb -c "$deb")
expect_file() { # MODE PATH
  local line
  line=$(awk -v path="./$2" '$6 == path' <<<"$listing")
  if [ -z "$line" ]; then
    fail "missing $2"
  elif [ "$(awk '{print $1, $2}' <<<"$line")" != "$1 root/root" ]; then
    fail "$2: $(awk '{print $1, $2}' <<<"$line"), expected $1 root/root"
  fi
}
expect_file -rwxr-xr-x usr/sbin/portwarden
expect_file -rw-r--r-- lib/systemd/system/portwarden.service
expect_file -rw-r--r-- etc/portwarden/config.json
expect_file -rw-r--r-- usr/lib/tmpfiles.d/portwarden.conf
expect_file -rw-r--r-- usr/share/doc/portwarden/copyright
expect_file -rw-r--r-- usr/share/doc/portwarden/changelog.Debian.gz
expect_file -rw-r--r-- usr/share/doc/portwarden/README.md
expect_file -rw-r--r-- usr/share/doc/portwarden/docs/operations.md
expect_file -rw-r--r-- usr/share/doc/portwarden/docs/configuration.md
expect_file -rw-r--r-- usr/share/man/man8/portwarden.8.gz
if grep -v '^d' <<<"$listing" | awk '{print $2}' | grep -qv '^root/root$'; then
  fail "a file not owned by root/root"
fi
# The data directory is made by postinst (its group does not exist before), never shipped.
grep -q '\./var/' <<<"$listing" && fail "the package ships files under /var"

# Control archive: conffiles, scripts.
control=$work/control
dpkg-deb -e "$deb" "$control"
[ "$(cat "$control/conffiles")" = /etc/portwarden/config.json ] ||
  fail "conffiles: $(tr '\n' ' ' <"$control/conffiles")"
for script in postinst prerm postrm; do
  [ -x "$control/$script" ] || fail "$script missing or not executable"
  sh -n "$control/$script" || fail "$script: syntax error"
  head -1 "$control/$script" | grep -qx '#!/bin/sh' || fail "$script: not #!/bin/sh"
  grep -qx 'set -e' "$control/$script" || fail "$script: no set -e"
  # Starting or enabling belongs to the administrator; stop only in prerm, restart only an
  # already running daemon on upgrade.
  code=$(grep -v '^ *#' "$control/$script")
  grep -nE 'systemctl +(--[a-z]+ +)*(start|enable|restart|reload-or-restart)\b' <<<"$code" &&
    fail "$script calls systemctl to start or enable the unit"
  grep -nE 'deb-systemd-invoke +(start|restart|reload-or-restart)\b' <<<"$code" &&
    fail "$script starts the unit"
  grep -nE 'dpkg +(-i|--install)' <<<"$code" && fail "$script installs something"
done
grep -q 'addgroup --quiet --system portwarden' "$control/postinst" ||
  fail "postinst does not add the system group portwarden"
grep -q 'portwarden.conf' "$control/postinst" || fail "postinst does not apply tmpfiles.d"
# deb-systemd-helper enable only where the administrator had enabled it (an upgrade).
grep -B1 'deb-systemd-helper enable' "$control/postinst" | grep -q 'was-enabled' ||
  fail "postinst enables the unit unconditionally"
grep -q 'deb-systemd-helper update-state' "$control/postinst" ||
  fail "postinst does not register the unit (update-state)"
# shellcheck disable=SC2016 # the script's own text, not expanded here
sed -n '/"\$1" = "purge"/,/^fi/p' "$control/postrm" | grep -q 'rm -rf "\$DPKG_ROOT/var/lib/portwarden"' ||
  fail "postrm purge does not remove /var/lib/portwarden"
grep -q 'deb-systemd-invoke stop' "$control/prerm" || fail "prerm does not stop the unit"

# Extracted tree (never installed).
root=$work/root
dpkg-deb -x "$deb" "$root"
packaged=$root/usr/sbin/portwarden
if objdump -h "$packaged" | grep -q '\.debug_info\|\.symtab'; then
  fail "the packaged binary is not stripped"
fi
"$packaged" version >/dev/null || fail "the packaged binary does not run"
# The conffile is a valid config (`iptables show` parses it fully and installs nothing).
"$packaged" iptables --config "$root/etc/portwarden/config.json" show >/dev/null ||
  fail "the packaged config.json is refused"
grep -q '^d /var/lib/portwarden 0750 root portwarden' "$root/usr/lib/tmpfiles.d/portwarden.conf" ||
  fail "tmpfiles.d does not make /var/lib/portwarden 0750 root:portwarden"
zcat "$root/usr/share/man/man8/portwarden.8.gz" | grep -q "portwarden ${version%-*}" ||
  fail "the man page does not carry the version"

# The unit.
unit=$root/lib/systemd/system/portwarden.service
directive() { grep -E "^$1=" "$unit" | sed "s/^$1=//"; }
expect_directive() { # NAME VALUE
  [ "$(directive "$1")" = "$2" ] || fail "unit: $1='$(directive "$1")', expected '$2'"
}
expect_directive ExecStart "/usr/sbin/portwarden run"
expect_directive ExecStopPost "/usr/sbin/portwarden iptables remove"
expect_directive RestartPreventExitStatus 2
expect_directive KillMode mixed
expect_directive ProtectSystem strict
expect_directive ReadWritePaths /var/lib/portwarden
expect_directive RuntimeDirectory portwarden
expect_directive ProtectHome read-only
expect_directive NoNewPrivileges yes
expect_directive PrivateTmp yes
expect_directive WantedBy multi-user.target
# Exactly these capabilities (the unit says why each one): a new one needs a new reason.
capabilities=$(directive CapabilityBoundingSet | tr ' ' '\n' | sort | tr '\n' ' ')
expected="CAP_BPF CAP_DAC_READ_SEARCH CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_PERFMON CAP_SYS_PTRACE "
[ "$capabilities" = "$expected" ] || fail "unit capabilities: $capabilities, expected $expected"
# The daemon filters the host's network namespace and reads every process's /proc entries.
for forbidden in PrivateNetwork PrivateUsers IPAddressDeny ProtectProc ProcSubset DynamicUser User; do
  grep -qE "^$forbidden=" "$unit" && fail "unit sets $forbidden, which breaks the daemon"
done
# systemd-analyze verify on a copy whose commands point at the extracted binary (the unit's
# own /usr/sbin/portwarden is not installed here). Any message is a failure.
units=$work/units
mkdir -p "$units"
sed "s#/usr/sbin/portwarden#$packaged#g" "$unit" >"$units/portwarden.service"
verify=$(cd "$units" && systemd-analyze verify --man=no ./portwarden.service 2>&1)
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
# Offline exposure score (0 safest, 10 none): 3.2 when written; above 4 something was lost.
exposure=$(systemd-analyze security --offline=true --no-pager "$units/portwarden.service" 2>&1 |
  sed -n 's/.*Overall exposure level for portwarden.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ]; then
  fail "systemd-analyze security gave no exposure level"
elif ! awk -v e="$exposure" 'BEGIN {exit !(e <= 4.0)}'; then
  fail "unit exposure level $exposure, expected at most 4.0"
fi

# lintian: no error, no warning (overrides with reasons: packaging/debian/lintian-overrides).
lintian --fail-on error,warning "$deb" >"$work/lintian.txt" 2>&1
lintian_status=$?
if [ "$lintian_status" -ne 0 ] || grep -qE '^[EW]:' "$work/lintian.txt"; then
  fail "lintian (exit $lintian_status): $(cat "$work/lintian.txt")"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "packaging: $deb passed (exposure $exposure)"
