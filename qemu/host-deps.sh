#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Installs the host packages the QEMU harness needs, only those missing (CI is a fresh Debian
# bookworm machine, as root). qemu-system-x86 comes from bookworm-backports because the
# preinstalled qemu-utils is the backports version and the two must match.
set -euo pipefail
# Another process (a concurrent build, unattended upgrades) may hold the dpkg lock: wait for it.

PKGS=(debootstrap dracut-core linux-image-amd64 lvm2 xfsprogs xorriso gdisk socat ipxe-qemu
      cloud-guest-utils busybox-static fdisk dosfstools mtools e2fsprogs qemu-utils python3 util-linux
      ostree openssh-client btrfs-progs cryptsetup-bin)
BPO_PKGS=(qemu-system-x86)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=() bpo_missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${BPO_PKGS[@]}"; do installed "$p" || bpo_missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && [ ${#bpo_missing[@]} -eq 0 ] && exit 0

sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
if [ ${#bpo_missing[@]} -gt 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The same mirror as the machine's main bookworm source.
    mirror=$( (cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) \
        | grep -oE 'https?://[^ ]*/debian/?$' | head -1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "host-deps: adding bookworm-backports ($mirror)"
    echo "deb ${mirror%/} bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/preroot-bpo.list >/dev/null
fi
echo "host-deps: installing ${missing[*]} ${bpo_missing[*]}"
$sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
if [ ${#bpo_missing[@]} -gt 0 ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends -t bookworm-backports "${bpo_missing[@]}"
fi
if [ ${#missing[@]} -gt 0 ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
fi
