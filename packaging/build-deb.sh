#!/usr/bin/env bash
# Builds the Debian package from an already built portwarden binary, without debhelper:
#   packaging/build-deb.sh BINARY OUTDIR   ->  OUTDIR/portwarden_<version>_<arch>.deb
# The tree is staged in OUTDIR/deb/debian/portwarden (the place dpkg-shlibdeps expects), the
# Depends come from dpkg-shlibdeps (the binary's real shared libraries) plus the programs the
# daemon runs, and dpkg-deb --root-owner-group makes every file root's without fakeroot.
# Prints the path of the .deb on standard output; everything else goes to standard error.
# Installs nothing and starts nothing.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY OUTDIR" >&2
  exit 64
fi
binary=$1
outdir=$2
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
debian=$here/debian

[ -x "$binary" ] || { echo "build-deb: $binary is not an executable (build it first)" >&2; exit 1; }

# The Debian version comes from the changelog; its upstream part must be the binary's version,
# so that a release that forgot the changelog fails here instead of shipping a wrong version.
version=$(dpkg-parsechangelog -l "$debian/changelog" -S Version)
upstream=${version%-*}
built=$("$binary" version | awk '{print $2}')
if [ "$upstream" != "$built" ]; then
  echo "build-deb: packaging/debian/changelog says $version, the binary is $built" >&2
  exit 1
fi
arch=$(dpkg --print-architecture)
# Reproducible: file times no later than the changelog entry (dpkg-deb clamps to it).
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$debian/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

umask 022
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
work=$outdir/deb
root=$work/debian/portwarden
rm -rf "$work"
mkdir -p "$root/DEBIAN"

# Files, each with its mode (the umask gives 0755 directories).
install -D -m 0755 "$binary" "$root/usr/sbin/portwarden"
# As dh_strip does: no debug information, no compiler notes.
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$root/usr/sbin/portwarden"
install -D -m 0644 "$here/portwarden.service" "$root/lib/systemd/system/portwarden.service"
install -D -m 0644 "$debian/portwarden.tmpfiles" "$root/usr/lib/tmpfiles.d/portwarden.conf"
install -D -m 0644 "$debian/config.json" "$root/etc/portwarden/config.json"
doc=$root/usr/share/doc/portwarden
install -D -m 0644 "$debian/copyright" "$doc/copyright"
gzip -9n <"$debian/changelog" >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
# README.md links to docs/*.md: the same layout keeps the links working.
install -m 0644 "$repo/README.md" "$doc/README.md"
for page in "$repo"/docs/*.md; do
  # The house style is for contributors, not for users of the package.
  [ "$(basename "$page")" = conventions.md ] && continue
  install -D -m 0644 "$page" "$doc/docs/$(basename "$page")"
done
mkdir -p "$root/usr/share/man/man8"
sed "s/@VERSION@/$built/" "$debian/portwarden.8" | gzip -9n >"$root/usr/share/man/man8/portwarden.8.gz"
chmod 0644 "$root/usr/share/man/man8/portwarden.8.gz"
install -D -m 0644 "$debian/lintian-overrides" "$root/usr/share/lintian/overrides/portwarden"

# Maintainer scripts and conffiles.
for script in postinst prerm postrm; do
  install -m 0755 "$debian/$script" "$root/DEBIAN/$script"
done
printf '/etc/portwarden/config.json\n' >"$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"

# Depends: the shared libraries (dpkg-shlibdeps wants a debian/control beside debian/<pkg>),
# adduser for postinst's addgroup, iptables for the iptables-restore/-save the daemon runs.
printf 'Source: portwarden\n\nPackage: portwarden\nArchitecture: %s\n' "$arch" >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O debian/portwarden/usr/sbin/portwarden 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)

cat >"$root/DEBIAN/control" <<CONTROL
Package: portwarden
Version: $version
Architecture: $arch
Maintainer: portwarden maintainers <maintainers@users.noreply.h-seed-efca33be.example>
Installed-Size: $installed_size
Depends: $shlibs, adduser, iptables
Recommends: ca-certificates
Section: net
Priority: optional
Description: application firewall for Linux
 portwarden decides every new connection of the host by the application that
 makes it. The kernel (iptables and NFQUEUE) hands the first packet of each
 connection to the daemon, which answers from the rules of the application's
 profile, so that the rest of the connection stays in the kernel.
 .
 It includes a caching local nameserver (UDP, TCP, DNS over TLS) that names the
 domains behind connections, per-application profiles with prompts, and a local
 API. The systemd unit is installed but neither enabled nor started: run
 "systemctl enable --now portwarden" to turn the firewall on.
CONTROL
chmod 0644 "$root/DEBIAN/control"

# md5sums of every file except the conffiles (dpkg keeps theirs in its database), as
# dh_md5sums writes them.
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb=$outdir/portwarden_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
