#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# build-guest.sh: debootstrap the Debian bookworm guest tree every scenario boots, into
# $PREROOT_QEMU_CACHE/guest-<key>/rootfs (key: this file and the host kernel; see guest_key
# in lib.sh). Does nothing when that tree is complete; a flock makes concurrent
# callers wait for one build. Prints nothing on stdout.
#
# The tree: minbase + systemd, udev, iproute2, systemd-networkd, lvm2, xfsprogs, dracut (to
# build the initramfs in a chroot), the host kernel's modules (the guests boot the host's
# /boot/vmlinuz-* directly, no bootloader). No preroot and no report (guest/): build_initramfs
# installs both into a copy, so that a change to the report rebuilds no guest tree.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KVER=$(qemu_kver)
DIR=$PREROOT_QEMU_CACHE/guest-$(guest_key)
ROOT=$DIR/rootfs
MIRROR=${MIRROR:-$( (cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) \
    | grep -oE 'https?://[^ ]*/debian/?$' | head -1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
INCLUDE=systemd,systemd-sysv,udev,dbus,iproute2,netbase,kmod,e2fsprogs,fdisk,gdisk,lvm2,xfsprogs,dracut-core,zstd,cpio,procps,util-linux

mkdir -p "$PREROOT_QEMU_CACHE"
exec 9>"$DIR.lock"
flock 9
[ -e "$DIR/done" ] && exit 0

t0=$(date +%s)
log "building guest tree $ROOT (kernel $KVER, mirror $MIRROR)"
rm -rf "$DIR" && mkdir -p "$DIR"
debootstrap --variant=minbase --include="$INCLUDE" bookworm "$ROOT" "$MIRROR" > "$DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$DIR/debootstrap.log" >&2; die "debootstrap failed (log: $DIR/debootstrap.log)"; }

# The host kernel's modules, without what a VM never loads (GPU, sound, wireless, media,
# InfiniBand, staging): dracut in the chroot picks drivers from here, and udev in the booted
# guest loads virtio_net & co. from here.
mkdir -p "$ROOT/lib/modules"
tar -C /lib/modules -cf - \
    --exclude="$KVER/kernel/drivers/gpu" --exclude="$KVER/kernel/sound" \
    --exclude="$KVER/kernel/drivers/net/wireless" --exclude="$KVER/kernel/drivers/media" \
    --exclude="$KVER/kernel/drivers/infiniband" --exclude="$KVER/kernel/drivers/staging" \
    --exclude="$KVER/kernel/net/wireless" --exclude="$KVER/kernel/net/mac80211" \
    --exclude="$KVER/kernel/drivers/bluetooth" --exclude="$KVER/kernel/net/bluetooth" \
    --exclude="$KVER/kernel/drivers/iio" --exclude="$KVER/kernel/drivers/comedi" \
    "$KVER" | tar -C "$ROOT/lib/modules" -xf -
in_chroot "$ROOT" depmod "$KVER"

# Configuration: hostname, root by label, passwordless root on the console (test VM only).
echo "debian-guest" > "$ROOT/etc/hostname"
echo "LABEL=root / ext4 defaults,errors=remount-ro 0 1" > "$ROOT/etc/fstab"
chroot "$ROOT" passwd -d root >/dev/null
: > "$ROOT/etc/machine-id"
# dbus ships its own copy, from which systemd would fill the empty /etc/machine-id: every
# guest (every instance of an image) would get the same id. Debian's link instead.
ln -sfn /etc/machine-id "$ROOT/var/lib/dbus/machine-id"
# networkd is what preroot renders for; nothing waits for "online" (no configured link would
# make it wait two minutes).
chroot "$ROOT" systemctl enable systemd-networkd.service >/dev/null 2>&1
chroot "$ROOT" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
chroot "$ROOT" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer e2scrub_reap.service >/dev/null 2>&1 || true

chroot "$ROOT" apt-get clean
rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/usr/share/doc/"* "$ROOT/usr/share/man/"* "$ROOT/usr/share/locale/"*

echo "$KVER" > "$DIR/kver"
du -sm "$ROOT" | cut -f1 > "$DIR/size-mib"
echo $(( $(date +%s) - t0 )) > "$DIR/build-seconds"
touch "$DIR/done"
log "guest tree built in $(cat "$DIR/build-seconds") s, $(cat "$DIR/size-mib") MiB"
