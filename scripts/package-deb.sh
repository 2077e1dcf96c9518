#!/usr/bin/env bash
# package-deb.sh - builds the Debian package from the tree: .build/deb/dmsnap_VERSION_amd64.deb
# (release build; Depends from dpkg-shlibdeps; /etc/default/dmsnap as a conffile; maintainer
# scripts that only reload systemd). Debian's own tools: dpkg-deb, dpkg-shlibdeps.
#   scripts/package-deb.sh [--bin PATH]   (--bin: package this binary instead of building)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH"
bin=''
while (($#)); do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    *) echo "package-deb.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
((${#need[@]} == 0)) || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
if [[ -z $bin ]]; then
    swift build -c release --product dmsnap >/dev/null
    bin=$(swift build -c release --show-bin-path)/dmsnap
fi
version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Sources/DMSnap/Version.swift)
arch=$(dpkg --print-architecture)
out=.build/deb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root" "$out"
cp "$bin" "$work/dmsnap"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$work/dmsnap"
scripts/install.sh --prefix /usr --destdir "$root" --bin "$work/dmsnap" --unitdir /lib/systemd/system --package >/dev/null

doc=$root/usr/share/doc/dmsnap
install -d -m 0755 "$doc"
cat >"$doc/copyright" <<COPY
dmsnap: consistent, online device-mapper snapshots of a set of block devices.

Copyright 2026 the dmsnap developers.
No license has been chosen yet; the source is at the project's repository.
COPY
{
    echo "dmsnap ($version) unstable; urgency=medium"
    echo
    echo "  * Package built from the source tree ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
    echo
    echo " -- dmsnap developers <dmsnap@lists.debian.invalid>  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n >"$doc/changelog.gz"
man_count=0
for page in "$root"/usr/share/man/man8/*.8; do gzip -9n "$page"; man_count=$((man_count + 1)); done
find "$root" -type d -exec chmod 0755 {} +
chmod 0700 "$root/var/lib/dmsnap"

mkdir -p "$root/DEBIAN" "$work/debian"
# dpkg-shlibdeps reads debian/control of a source package: give it a minimal one
printf 'Source: dmsnap\n\nPackage: dmsnap\nArchitecture: any\n' >"$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O "root/usr/sbin/dmsnap" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "package-deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: dmsnap
Version: $version
Architecture: $arch
Maintainer: dmsnap developers <dmsnap@lists.debian.invalid>
Installed-Size: $size
Depends: $depends
Section: admin
Priority: optional
Description: consistent online snapshots of a set of device-mapper devices
 dmsnap freezes the filesystems of a set of block devices for a moment, slides
 a dm-snapshot copy-on-write layer under each of them, and lets everything keep
 running. Later the changes are merged back into the devices while they stay
 mounted, or discarded. The frozen image can be mounted read-only, exported
 (zstd, gzip) or asked which blocks changed, for backups.
CONTROL
echo /etc/default/dmsnap >"$root/DEBIAN/conffiles"
for script in postinst postrm; do
    cat >"$root/DEBIAN/$script" <<'SCRIPT'
#!/bin/sh
set -e
# only tell systemd that the unit files changed; nothing is enabled or started
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
SCRIPT
    chmod 0755 "$root/DEBIAN/$script"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control" "$root/DEBIAN/conffiles"
deb=$out/dmsnap_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb: Depends: $depends; $man_count manual pages"
