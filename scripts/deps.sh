#!/usr/bin/env bash
# deps.sh - install what dmsnap's build, demo and tests need from Debian's packages
# (only what is missing), and check for the Swift toolchain.
set -euo pipefail

PACKAGES=(user-mode-linux kmod dmsetup lvm2 e2fsprogs xfsprogs util-linux libdevmapper-dev libblkid-dev
          pkg-config python3 procps libzstd-dev zlib1g-dev libssl-dev zstd
          dpkg-dev lintian man-db groff-base systemd bash-completion fio cryptsetup-bin udev mdadm)

if [[ $(id -u) != 0 ]]; then
    echo "deps: must be run as root (it installs Debian packages and boots a test kernel)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# UML mounts its module tree here; the mount point must exist on the host.
mkdir -p /lib/modules

if ! command -v swift >/dev/null 2>&1; then
    if [[ -x /opt/swift/usr/bin/swift ]]; then
        echo "deps: add /opt/swift/usr/bin to PATH" >&2
    else
        echo "deps: no Swift toolchain found (expected swift on PATH or /opt/swift/usr/bin/swift)" >&2
    fi
    exit 1
fi
