#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage.sh: issue 21's roots, each booted twice around a power cut (tests/qemu_storage.rs).
#
#   qemu/storage.sh build              build (or find) the initramfs and both disks; prints
#                                      their cache directories
#   qemu/storage.sh btrfs OUTDIR       the Fedora-Cloud-shaped disk: GPT, ext4 /boot, btrfs
#                                      (label fedora) with subvolumes root and home, booted
#                                      `root=UUID=... rootflags=subvol=root ro` (boot 1; boot 2
#                                      `rw`, see storage_cut) with (a)'s
#                                      config drive and Nova DMI. Boot 1 is SIGKILLed on the
#                                      kernel's `BTRFS info (device vda2): resizing devid` line
#                                      (inside preroot's BTRFS_IOC_RESIZE, before the commit
#                                      that grows the device), the disk is checked
#                                      from the host (OUTDIR/disk-check.env: sgdisk -v, p2,
#                                      `btrfs check --readonly`, the superblock's sizes), boot 2
#                                      runs on the same disk (OUTDIR/boot2)
#   qemu/storage.sh luks OUTDIR        GPT, ext4 /boot, LUKS2 (pbkdf2, so TCG unlocks fast) ->
#                                      LVM VG luksvg -> LV root, xfs; unlocked by
#                                      `rd.luks.uuid= rd.luks.key=UUID=/etc/luks.key` (the key
#                                      file is in the initramfs), a second disk (vdb: GPT, one
#                                      LUKS2 partition whose key preroot never has) attached.
#                                      Boot 1 holds after preroot's `cryptsetup resize` (the
#                                      fault build's PREROOT_FAULT_AFTER_STEP=luks-resize) and is
#                                      SIGKILLed there, before pvresize; the host checks the GPT
#                                      and the LUKS2 header (cryptsetup luksDump); boot 2 must
#                                      finish PV, LV and xfs, and its report probe opens vdb's
#                                      LUKS2 and runs `preroot grow` on it: the partition grows,
#                                      the mapping does not, for want of a key.
#   STORAGE_CUT=0 qemu/storage.sh btrfs|luks OUTDIR
#                                      one whole boot with boot 2's arguments and no cut, its
#                                      report in OUTDIR (qemu/bench's layout lines)
#
# Everything runs the fault-injection build of preroot (as ensure_build's preroot-fault, its
# own target dir), on the `storage` extra guest (lib.sh: btrfs-progs, cryptsetup-bin, the
# probe). The disks are made on this host without device-mapper: btrfs and xfs filled through
# loop mounts in a private mount namespace (loop devices this script makes and detaches),
# LVM metadata written with `lvm --driverloaded n --devices LOOP` (nothing activated), and the
# PV encrypted in place by `cryptsetup reencrypt --encrypt --force-offline-reencrypt` (user
# space). Cached in $PREROOT_QEMU_CACHE/storage-{initrd,btrfs,luks}-<key>; each boot runs on a
# fresh qcow2 overlay larger than its image.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STORAGE_TIMEOUT=${STORAGE_TIMEOUT:-420}
BTRFS_UUID=2b1c5e4e-1d0f-4c5e-9a21-5f3b7c0d2e91   # fixed, so the kernel arguments are
STORAGE_BOOT_MIB=256

# The fault-injection binary, in a target dir of its own (shared with preroot-fault).
storage_env() {
    if [ -z "${STATIC_FEATURES:-}" ]; then
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}/fault-injection"
        export STATIC_FEATURES=fault-injection
    fi
}

# storage_prune PREFIX KEEP: the PREFIX-* entries but KEEP and the newest other one.
storage_prune() {
    local d kept=0
    for d in $(ls -1dt "$PREROOT_QEMU_CACHE/$1"-* 2>/dev/null); do
        [ -d "$d" ] && [ "$d" != "$2" ] || continue
        [ $kept -eq 0 ] && { kept=1; continue; }
        ( exec 8>"$d.lock"; flock -n 8 && rm -rf "$d" && rm -f "$d.lock" ) || true
    done
}

# The initramfs (lvm, crypt, btrfs; the LUKS2 key file) and the tree it was built from (with
# preroot installed and the sentinel), which both disks are filled from. Prints its directory.
storage_initrd() {
    local tree bin key dir
    storage_env
    tree=$(ensure_extra_guest storage) || exit 1
    make -s -C "$REPO_DIR" static >&2 || die "make static failed"
    bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/preroot"
    key=$( { sha256sum "$bin"; echo "$tree"; declare -f storage_initrd build_initramfs;
             find "$REPO_DIR/dracut" -type f | sort | xargs cat; } | sha256sum | cut -c1-16)
    dir=$PREROOT_QEMU_CACHE/storage-initrd-$key
    mkdir -p "$PREROOT_QEMU_CACHE"
    (
        exec 9>"$dir.lock"; flock 9
        [ -e "$dir/done" ] && exit 0
        rm -rf "$dir" && mkdir -p "$dir"
        local t0; t0=$(date +%s)
        build_initramfs "$dir/initrd.img" --tree "$tree" --add "lvm crypt btrfs"
        mv "$dir/initrd.img.tree" "$dir/tree"
        sentinel > "$dir/tree/var/lib/preroot-sentinel"
        echo $(( $(date +%s) - t0 )) > "$dir/build-seconds"
        touch "$dir/done"
        storage_prune storage-initrd "$dir"
    ) >&2 || die "storage initramfs build failed"
    echo "$dir"
}

# in_ns SCRIPT: SCRIPT in bash in a private mount namespace (its loop mounts vanish with it).
in_ns() {
    unshare --mount --propagation private bash -ec "$1"
}

# storage_gpt IMG MIB P2_MIB P2_TYPE: a disk image with p1 /boot (ext4, label boot) and p2
# of P2_MIB, the rest free.
storage_gpt() {
    local img=$1 mib=$2 p2=$3 type=$4 w
    truncate -s "${mib}M" "$img"
    sgdisk --zap-all "$img" >/dev/null
    sgdisk -n "1:2048:+${STORAGE_BOOT_MIB}M" -t 1:8300 -c 1:boot \
        -n "2:0:+${p2}M" -t "2:$type" "$img" >/dev/null
    w=$(mktemp -d)
    mkdir -p "$w/boot" && echo "preroot storage guest" > "$w/boot/README"
    truncate -s "${STORAGE_BOOT_MIB}M" "$w/boot.ext4"
    mkfs.ext4 -q -L boot -d "$w/boot" "$w/boot.ext4"
    dd if="$w/boot.ext4" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
    rm -rf "$w"
}

# The Fedora-Cloud-shaped disk. Prints its directory (disk.raw, configdrive.iso, layout.env).
storage_btrfs() {
    local idir key dir
    idir=$(storage_initrd) || exit 1
    key=$( { sha256sum "$idir/tree/usr/bin/preroot"; echo "$idir"; declare -f storage_btrfs storage_gpt make_configdrive; } \
           | sha256sum | cut -c1-16)
    dir=$PREROOT_QEMU_CACHE/storage-btrfs-$key
    (
        exec 9>"$dir.lock"; flock 9
        [ -e "$dir/done" ] && exit 0
        rm -rf "$dir" && mkdir -p "$dir"
        local t0 w=$dir/work start; t0=$(date +%s)
        mkdir -p "$w/mnt"
        storage_gpt "$w/disk.raw" 1536 1200 8304
        truncate -s 1200M "$w/p2.img"
        mkfs.btrfs -q -f -L fedora -U "$BTRFS_UUID" "$w/p2.img" >/dev/null
        in_ns "
            mount -o loop '$w/p2.img' '$w/mnt'
            btrfs -q subvolume create '$w/mnt/root'; btrfs -q subvolume create '$w/mnt/home'
            cp -a '$idir/tree/.' '$w/mnt/root/'
            rm -f '$w/mnt/root/etc/luks.key'
            printf '%s\n' 'UUID=$BTRFS_UUID / btrfs subvol=root 0 0' \
                'UUID=$BTRFS_UUID /home btrfs subvol=home 0 0' 'LABEL=boot /boot ext4 defaults 0 2' \
                > '$w/mnt/root/etc/fstab'
            echo fedora-cloud > '$w/mnt/root/etc/hostname'
            umount '$w/mnt'"
        btrfs device scan --forget >/dev/null 2>&1 || true
        start=$(sgdisk -i 2 "$w/disk.raw" | awk '/^First sector/ {print $3}')
        dd if="$w/p2.img" of="$w/disk.raw" bs=1M seek=$(( start / 2048 )) conv=notrunc,sparse status=none
        make_configdrive "$dir/configdrive.iso"
        {
            echo "P2_START=$start"
            echo "P2_SECTORS=$(( 1200 * 2048 ))"
            echo "BTRFS_UUID=$BTRFS_UUID"
            echo "DISK_BYTES=$(( 1536 << 20 ))"
        } > "$dir/layout.env"
        mv "$w/disk.raw" "$dir/disk.raw"
        rm -rf "$w"
        echo $(( $(date +%s) - t0 )) > "$dir/build-seconds"
        touch "$dir/done"
        storage_prune storage-btrfs "$dir"
    ) >&2 || die "btrfs disk build failed"
    echo "$dir"
}

# The LUKS2 disk and the second, keyless one. Prints its directory (disk.raw, nokey.raw,
# configdrive.iso, layout.env).
storage_luks() {
    local idir key dir
    idir=$(storage_initrd) || exit 1
    key=$( { sha256sum "$idir/tree/usr/bin/preroot"; echo "$idir"; declare -f storage_luks storage_gpt make_configdrive; } \
           | sha256sum | cut -c1-16)
    dir=$PREROOT_QEMU_CACHE/storage-luks-$key
    (
        exec 9>"$dir.lock"; flock 9
        [ -e "$dir/done" ] && exit 0
        rm -rf "$dir" && mkdir -p "$dir"
        local t0 w=$dir/work start lo pe ext lv_bytes uuid
        local cfg='devices { use_devicesfile = 0 } backup { backup = 0 archive = 0 }'
        t0=$(date +%s)
        mkdir -p "$w/mnt"
        storage_gpt "$w/disk.raw" 2048 1536 8309
        # The PV in plain text, 32 MiB short of p2: the encryption below moves it up by the
        # 16 MiB LUKS2 header and needs the rest as room to work in.
        truncate -s $(( 1536 - 32 ))M "$w/pv.img"
        lo=$(losetup -f --show "$w/pv.img")
        {
            lvm pvcreate -q --devices "$lo" --config "$cfg" "$lo" &&
            lvm vgcreate -q --devices "$lo" --config "$cfg" -s 4m luksvg "$lo" &&
            lvm lvcreate -q -an -Zn --driverloaded n --devices "$lo" --config "$cfg" -l 100%FREE -n root luksvg &&
            pe=$(lvm pvs --devices "$lo" --config "$cfg" --noheadings --nosuffix --units b -o pe_start "$lo" | tr -d ' ') &&
            lv_bytes=$(lvm lvs --devices "$lo" --config "$cfg" --noheadings --nosuffix --units b -o lv_size luksvg/root | tr -d ' ')
        } 2>"$w/lvm.log" || { losetup -d "$lo"; cat "$w/lvm.log" >&2; exit 1; }
        losetup -d "$lo"
        truncate -s "$lv_bytes" "$w/root.xfs"
        mkfs.xfs -q -f -L root "$w/root.xfs"
        in_ns "
            mount -o loop '$w/root.xfs' '$w/mnt'
            cp -a '$idir/tree/.' '$w/mnt/'
            rm -f '$w/mnt/etc/luks.key'
            printf '%s\n' '/dev/mapper/luksvg-root / xfs defaults 0 0' 'LABEL=boot /boot ext4 defaults 0 2' \
                > '$w/mnt/etc/fstab'
            echo luks-guest > '$w/mnt/etc/hostname'
            umount '$w/mnt'"
        dd if="$w/root.xfs" of="$w/pv.img" bs=1M seek=$(( pe >> 20 )) conv=notrunc,sparse status=none
        rm -f "$w/root.xfs"
        truncate -s 1536M "$w/pv.img"
        cryptsetup reencrypt -q --encrypt --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
            --reduce-device-size 32M --force-offline-reencrypt --key-file "$idir/tree/etc/luks.key" \
            "$w/pv.img"
        uuid=$(cryptsetup luksUUID "$w/pv.img")
        start=$(sgdisk -i 2 "$w/disk.raw" | awk '/^First sector/ {print $3}')
        dd if="$w/pv.img" of="$w/disk.raw" bs=1M seek=$(( start / 2048 )) conv=notrunc,sparse status=none
        rm -f "$w/pv.img"
        # The keyless disk: 64 MiB, one 48 MiB LUKS2 partition (an empty mapping of 32 MiB).
        truncate -s 64M "$w/nokey.raw"
        sgdisk --zap-all "$w/nokey.raw" >/dev/null
        sgdisk -n 1:2048:+48M -t 1:8309 "$w/nokey.raw" >/dev/null
        truncate -s 48M "$w/nokey.p1"
        cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
            --key-file "$idir/tree/etc/preroot-nokey.key" "$w/nokey.p1"
        dd if="$w/nokey.p1" of="$w/nokey.raw" bs=1M seek=1 conv=notrunc status=none
        make_configdrive "$dir/configdrive.iso"
        {
            echo "P2_START=$start"
            echo "P2_SECTORS=$(( 1536 * 2048 ))"
            echo "LUKS_UUID=$uuid"
            echo "NOKEY_UUID=$(cryptsetup luksUUID "$w/nokey.p1")"
            echo "DISK_BYTES=$(( 2048 << 20 ))"
        } > "$dir/layout.env"
        mv "$w/disk.raw" "$w/nokey.raw" "$dir/"
        rm -rf "$w"
        echo $(( $(date +%s) - t0 )) > "$dir/build-seconds"
        touch "$dir/done"
        storage_prune storage-luks "$dir"
    ) >&2 || die "LUKS disk build failed"
    echo "$dir"
}

storage_kargs() {
    echo "console=ttyS0 panic=-1 rd.shell=0 rd.emergency=poweroff systemd.show_status=auto $*"
}

# storage_boot OUTDIR IDIR KARGS REGEX QEMU-ARGS...: one boot (with REGEX: SIGKILLed when its
# console shows it; OUTDIR/killed says so). Returns QEMU's status; report.txt without CRs.
storage_boot() {
    local out=$1 idir=$2 kargs=$3 re=$4 rc=0; shift 4
    mkdir -p "$out"
    rm -f "$out/killed" "$out/qemu.pid" "$out/wall-ms" "$out/console.log"
    local args=(-kernel "/boot/vmlinuz-$(qemu_kver)" -initrd "$idir/initrd.img" -append "$kargs"
        -smbios "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova"
        -netdev "$(netdev_args)" -device "virtio-net-pci,netdev=n0,mac=$GUEST_MAC" "$@")
    if [ -n "$re" ]; then
        boot_guest "$out" "$STORAGE_TIMEOUT" "${args[@]}" -pidfile "$out/qemu.pid" &
        local pid=$!
        kill_on "$out" "$re" 0 || log "storage: the guest ended before /$re/ showed"
        wait "$pid" || rc=$?
    else
        boot_guest "$out" "$STORAGE_TIMEOUT" "${args[@]}" || rc=$?
    fi
    tr -d '\r' < "$out/report.log" > "$out/report.txt" 2>/dev/null || true
    return $rc
}

# storage_p2 RAW ENV: p2's sectors from sgdisk, as KEY=VALUE lines.
storage_p2() {
    sgdisk -i 2 "$1" > "$2.p2" 2>&1 || true
    echo "p2_start=$(awk '/^First sector/ {print $3}' "$2.p2")"
    echo "p2_end=$(awk '/^Last sector/ {print $3}' "$2.p2")"
    echo "p2_sectors=$(awk '/^Partition size/ {print $3}' "$2.p2")"
}

# The host's check after a cut of the btrfs disk: the GPT, p2, `btrfs check --readonly` of p2
# extracted, the superblock's sizes (the filesystem's, and device 1's).
storage_check_btrfs() {
    local disk=$1 env=$2 raw=$2.disk.raw img=$2.p2.img rc
    qemu-img convert -O raw "$disk" "$raw"
    {
        table_check "$raw" gpt "$env.table-check"
        storage_p2 "$raw" "$env"
        local s z; s=$(awk '/^First sector/ {print $3}' "$env.p2"); z=$(awk '/^Partition size/ {print $3}' "$env.p2")
        dd if="$raw" of="$img" bs=4M iflag=skip_bytes,count_bytes skip=$(( s * 512 )) \
            count=$(( z * 512 )) conv=sparse status=none
        rc=0; btrfs check --readonly "$img" > "$env.btrfs-check" 2>&1 || rc=$?
        echo "btrfs_check_rc=$rc"
        btrfs inspect-internal dump-super "$img" > "$env.super" 2>&1 || true
        echo "btrfs_total_bytes=$(awk '$1 == "total_bytes" {print $2}' "$env.super")"
        echo "btrfs_dev_total_bytes=$(awk '$1 == "dev_item.total_bytes" {print $2}' "$env.super")"
        echo "btrfs_fsid=$(awk '$1 == "fsid" {print $2}' "$env.super")"
    } > "$env"
    rm -f "$raw" "$img"
}

# The host's check after a cut of the LUKS2 disk: the GPT, p2, and its LUKS2 header
# (`cryptsetup luksDump` of p2's first 32 MiB: both header copies and more).
storage_check_luks() {
    local disk=$1 env=$2 raw=$2.disk.raw hdr=$2.hdr.img rc
    qemu-img convert -O raw "$disk" "$raw"
    {
        table_check "$raw" gpt "$env.table-check"
        storage_p2 "$raw" "$env"
        local s; s=$(awk '/^First sector/ {print $3}' "$env.p2")
        dd if="$raw" of="$hdr" bs=1M iflag=skip_bytes skip=$(( s * 512 )) count=32 status=none
        rc=0; cryptsetup luksDump "$hdr" > "$env.luksdump" 2>&1 || rc=$?
        echo "luksdump_rc=$rc"
        echo "luks_uuid=$(awk '$1 == "UUID:" {print $2}' "$env.luksdump")"
        echo "luks_version=$(awk '$1 == "Version:" {print $2}' "$env.luksdump")"
        echo "luks_offset=$(awk '$1 == "offset:" {print $2; exit}' "$env.luksdump")"
        echo "luks_whole_device=$(grep -c 'length: (whole device)' "$env.luksdump")"
        echo "luks_keyslots=$(grep -cE '^  [0-9]+: luks2' "$env.luksdump")"
    } > "$env"
    rm -f "$raw" "$hdr"
}

# storage_cut btrfs|luks OUTDIR: see the top.
storage_cut() {
    local layout=$1 out=$2 idir bdir rc=0 t0 kargs re extra=()
    idir=$(storage_initrd) || exit 1
    case $layout in
        btrfs) bdir=$(storage_btrfs) || exit 1 ;;
        luks) bdir=$(storage_luks) || exit 1 ;;
        *) die "storage_cut: btrfs or luks" ;;
    esac
    . "$bdir/layout.env"
    rm -rf "$out" && mkdir -p "$out"
    out=$(cd "$out" && pwd)
    make_overlay "$bdir/disk.raw" "$out/disk.qcow2" 3G
    extra=(-drive "file=$out/disk.qcow2,if=virtio,format=qcow2,cache=unsafe"
           -drive "file=$bdir/configdrive.iso,media=cdrom,readonly=on")
    if [ "$layout" = btrfs ]; then
        # Boot 1 as Fedora Cloud boots, `ro`: preroot remounts /sysroot rw for the resize.
        # Boot 2 `rw`: preroot's sysroot phase writes its network files into /sysroot as
        # mounted, and fails on a read-only one (left to the sysroot stage's owner).
        kargs=$(storage_kargs "root=UUID=$BTRFS_UUID rootflags=subvol=root rw")
        re='BTRFS info \(device vda2\): resizing devid'
        boot1="ro"
    else
        make_overlay "$bdir/nokey.raw" "$out/nokey.qcow2" 128M
        extra+=(-drive "file=$out/nokey.qcow2,if=virtio,format=qcow2,cache=unsafe")
        kargs=$(storage_kargs "root=/dev/mapper/luksvg-root rootfstype=xfs rw rd.luks.uuid=$LUKS_UUID rd.luks.key=$LUKS_UUID=/etc/luks.key")
        re='fault injection: holding after step luks-resize '
        boot1="systemd.setenv=PREROOT_FAULT_AFTER_STEP=luks-resize systemd.setenv=PREROOT_FAULT_HOLD=1"
    fi
    if [ "${STORAGE_CUT:-1}" = 0 ]; then
        # One whole boot and no cut (qemu/bench's line for this layout): boot 2's arguments.
        storage_boot "$out" "$idir" "$kargs" "" "${extra[@]}" || rc=$?
        rm -f "$out/disk.qcow2" "$out/nokey.qcow2"
        return $rc
    fi
    t0=$(date +%s%N)
    storage_boot "$out" "$idir" "$kargs${boot1:+ $boot1}" "$re" "${extra[@]}" || true
    log "storage $layout: boot 1: $(cat "$out/wall-ms") ms, killed: $([ -e "$out/killed" ] && echo yes || echo no)"
    if [ ! -e "$out/killed" ]; then
        tail -20 "$out/console.log" >&2 || true
        rm -f "$out/disk.qcow2" "$out/nokey.qcow2"
        return 3
    fi
    local c0; c0=$(date +%s%N)
    "storage_check_$layout" "$out/disk.qcow2" "$out/disk-check.env"
    echo "check_ms=$(( ($(date +%s%N) - c0) / 1000000 ))" >> "$out/disk-check.env"
    log "storage $layout: after the power cut: $(tr '\n' ' ' < "$out/disk-check.env")"
    storage_boot "$out/boot2" "$idir" "$kargs" "" "${extra[@]}" || rc=$?
    {
        cat "$bdir/layout.env"
        echo "QEMU_STATUS=$rc"
        echo "WALL_MS=$(cat "$out/boot2/wall-ms")"
        echo "CUT_WALL_MS=$(cat "$out/wall-ms")"
        echo "SENTINEL_SHA256=$(sentinel | sha256sum | cut -d' ' -f1)"
        echo "CUT_TOTAL_MS=$(( ($(date +%s%N) - t0) / 1000000 ))"
        echo "INITRD_BUILD_SECONDS=$(cat "$idir/build-seconds")"
        echo "DISK_BUILD_SECONDS=$(cat "$bdir/build-seconds")"
    } > "$out/boot2/result.env"
    rm -f "$out/disk.qcow2" "$out/nokey.qcow2"
    return $rc
}

[ "$(id -u)" = 0 ] || die "storage.sh needs root (debootstrap, chroot, loop mounts)"
case ${1:-} in
    build) storage_initrd; storage_btrfs; storage_luks ;;
    btrfs|luks) storage_cut "$1" "${2:?usage: storage.sh btrfs|luks OUTDIR}" ;;
    *) echo "usage: $0 build | btrfs OUTDIR | luks OUTDIR" >&2; exit 2 ;;
esac
