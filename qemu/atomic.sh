#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# atomic.sh: scenario (b) of the QEMU harness, the Fedora-Atomic-like layout booted by PXE the
# way OpenStack Ironic boots bare metal.
#
#   qemu/atomic.sh base          build (or find) the cached base image; prints its directory
#   qemu/atomic.sh run OUTDIR    PXE-boot a fresh overlay of the base; leaves in OUTDIR the
#                                console, the guest's report and result.env (see atomic_run)
#   qemu/atomic.sh demo [OUTDIR] run, then print what preroot did (make demo)
#   qemu/atomic.sh cut OUTDIR REGEX KARGS
#                                a power cut during growth (tests/qemu_atomic_faults.rs): with
#                                the fault-injection binary, boots a fresh overlay with the
#                                extra kernel arguments KARGS (e.g. systemd.setenv=
#                                PREROOT_FAULT_AFTER_STEP=pvresize systemd.setenv=
#                                PREROOT_FAULT_HOLD=1), SIGKILLs QEMU when its console shows
#                                REGEX (kill_on), checks the disk from the host into
#                                OUTDIR/disk-check.env (atomic_check_disk), then boots the same
#                                disk again without KARGS into OUTDIR/boot2 (result.env there)
#
# The disk, as Ironic leaves it after deploying the image to a larger disk (GPT):
#   p1  ext4 /boot (label boot)
#   p2  LVM PV, VG `atomicos`, LV `root` (xfs, the whole VG): the guest tree
#   --  free space (the image was smaller than the disk)
#   p3  `config-2`, 64 MiB at the disk end: an OpenStack config drive (ISO9660, volume id
#       config-2) with meta_data.json and network_data.json
# The host kernel has no device-mapper, so the LVM part is made in a builder guest: the host's
# Debian kernel (it has dm-mod) with a busybox initramfs that chroots into the guest tree (an
# ext4 image on a second disk) for lvm and mkfs.xfs and copies the tree into the LV. The rest
# (table, /boot, config-2) is made here on image files, with no loop device and no mount.
#
# The initramfs and the base are cached in $PREROOT_QEMU_CACHE/atomic-{initrd,base}-<key>, the
# initramfs's key hashing the functions that build it, the guest tree's key, the report and its
# probes (lib.sh `harness_files`) and the preroot binary, the base's key that of the initramfs
# whose tree it is filled from and its own recipe (the base carries the binary too, so
# `preroot show` in the guest is the one under test: a new binary rebuilds the base, about
# 1.5 min). Each boot runs on a fresh qcow2 overlay of the same size: the growth room is the
# free space before config-2, as on a deployed machine; growing the overlay would put space
# after config-2, which Ironic never does.
# ATOMIC_FAULT=1 (set by `cut`) uses the `fault-injection` build of preroot (its own target
# dir, as ensure_build's `preroot-fault`), so its initramfs and base are cache entries of their
# own (atomic-fault-{initrd,base}-<key>, pruned apart from the plain ones); its guest tree also carries the sentinel file (lib.sh `sentinel`) at
# /var/lib/preroot-sentinel and the report probe `atomic` (section x-atomic: pvs, vgs, the
# sentinel's sha256), so the boot after a cut can show that the root's data survived.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ATOMIC_IMAGE_MIB=${ATOMIC_IMAGE_MIB:-2048}    # the image as built (p1 + p2)
ATOMIC_DISK_MIB=${ATOMIC_DISK_MIB:-4096}      # the disk it is deployed to (config-2 at its end)
ATOMIC_BOOT_MIB=256
ATOMIC_CFG2_MIB=64
ATOMIC_VG=atomicos
ATOMIC_ROOT_DEV=/dev/mapper/$ATOMIC_VG-root
ATOMIC_TIMEOUT=${ATOMIC_TIMEOUT:-420}          # one PXE boot, seconds

atomic_kernel_args() {
    echo "root=$ATOMIC_ROOT_DEV rootfstype=xfs rw console=ttyS0 panic=-1 rd.shell=0" \
        "rd.emergency=poweroff systemd.show_status=auto"
}

# The static binary, built if needed (cargo is quick when nothing changed).
# (With ATOMIC_FAULT=1 the caller has run atomic_fault_env.) PREROOT_BIN=FILE: that binary
# instead (qemu/bench's Atomic line before issue 21: an older commit's build); `make install`
# in build_initramfs installs it too (the Makefile's PREROOT_BIN), and it is in the cache keys.
atomic_binary() {
    if [ -n "${PREROOT_BIN:-}" ]; then
        [ -x "$PREROOT_BIN" ] || die "PREROOT_BIN=$PREROOT_BIN: not an executable"
        echo "$PREROOT_BIN"
        return
    fi
    make -s -C "$REPO_DIR" static >&2 || die "make static failed"
    echo "${CARGO_TARGET_DIR:-$REPO_DIR/target}/x86_64-unknown-linux-musl/release/preroot"
}

# ATOMIC_FAULT=1: `make static` and `make install` (in build_initramfs) of this shell build
# and install the fault-injection binary, from a target dir of its own (as ensure_build's
# `preroot-fault`), so `make static` elsewhere never ships it by mistake.
atomic_fault_env() {
    if [ "${ATOMIC_FAULT:-0}" = 1 ] && [ -z "${STATIC_FEATURES:-}" ]; then
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}/fault-injection"
        export STATIC_FEATURES=fault-injection
    fi
}

# The cache entries' prefix: `atomic`, or `atomic-fault` for the fault variant (pruned apart,
# so the power-cut tests and the plain ones do not evict each other's entries).
atomic_prefix() {
    if [ "${ATOMIC_FAULT:-0}" = 1 ]; then echo atomic-fault; else echo atomic; fi
}

# The initramfs (dracut's lvm module, xfs, 90preroot) and its tree, cached per guest tree,
# binary, dracut module and recipe. Prints the cache directory (initrd.img, tree/).
atomic_initrd() {
    local bin key dir
    atomic_fault_env
    bin=$(atomic_binary) || exit 1
    key=$( { sha256sum "$bin"; declare -f atomic_initrd atomic_fault_env atomic_fault_tree build_initramfs; guest_key;
             harness_files; find "$REPO_DIR/dracut" -type f | sort | xargs cat; } | sha256sum | cut -c1-16)
    dir=$PREROOT_QEMU_CACHE/$(atomic_prefix)-initrd-$key
    cache_touch "$dir"
    (
        exec 9>"$dir.lock"; flock 9
        [ -e "$dir/done" ] && exit 0
        rm -rf "$dir" && mkdir -p "$dir"
        local t0; t0=$(date +%s)
        build_initramfs "$dir/initrd.img" --add lvm
        mv "$dir/initrd.img.tree" "$dir/tree"
        [ "${ATOMIC_FAULT:-0}" = 1 ] && atomic_fault_tree "$dir/tree"
        echo $(( $(date +%s) - t0 )) > "$dir/build-seconds"
        touch "$dir/done"
        atomic_prune "$(atomic_prefix)-initrd" "$dir"
    ) || die "initramfs build failed"
    echo "$dir"
}

# atomic_fault_tree TREE: what the fault variant's root carries besides the guest: the
# sentinel file and the report probe `atomic` (sizes as lvm sees them, the sentinel's hash).
atomic_fault_tree() {
    sentinel > "$1/var/lib/preroot-sentinel"
    add_report_probe "$1" atomic '
echo "# pvs"; lvm pvs --units b --nosuffix --reportformat json -o pv_name,pv_size,dev_size,pe_start,pv_free
echo "# vgs"; lvm vgs --units b --nosuffix --reportformat json -o vg_name,vg_size,vg_free,vg_extent_size,vg_free_count
echo "# lvs"; lvm lvs --units b --nosuffix --reportformat json -o lv_name,vg_name,lv_size,seg_count
echo "# sentinel"; sha256sum < /var/lib/preroot-sentinel | cut -d" " -f1'
}

# atomic_prune PREFIX KEEP: removes the PREFIX-* cache entries but KEEP that nobody uses
# (lib.sh cache_prune: held by no run, looked up by nobody for an hour). Before, it kept only
# KEEP and the newest other one, which removed the base under a power-cut test between its two
# boots when a third branch built one.
atomic_prune() {
    cache_prune "$2" "$PREROOT_QEMU_CACHE/$1"-????????????????
}

# The builder's initramfs: busybox, the modules for virtio disks, ext4, xfs and dm-mod, and an
# /init that chroots into the guest tree (second disk) to run the LVM part (builder.sh).
atomic_builder_initrd() {
    local out=$1 kver r m
    kver=$(qemu_kver)
    command -v busybox >/dev/null || die "busybox missing: run qemu/host-deps.sh"
    r=$(mktemp -d)
    mkdir -p "$r/bin" "$r/proc" "$r/sys" "$r/dev" "$r/src" "$r/modules"
    cp "$(command -v busybox)" "$r/bin/busybox"
    for m in virtio_pci virtio_blk ext4 xfs dm_mod; do
        modprobe -S "$kver" --show-depends "$m"
    done | awk '/^insmod/ {print $2}' | awk '!seen[$0]++' > "$r/modules/order"
    while read -r m; do cp "$m" "$r/modules/"; done < "$r/modules/order"
    sed -i 's|.*/||' "$r/modules/order"
    atomic_builder_script > "$r/builder.sh"
    cat > "$r/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod "/modules/$m"; done
n=0
while [ ! -b /dev/vda2 ] || [ ! -b /dev/vdb ]; do
    n=$((n + 1)); [ $n -gt 150 ] && { echo "ATOMIC-BUILD-FAIL: no /dev/vda2 or /dev/vdb" > /dev/ttyS1; poweroff -f; }
    sleep 0.2
done
mount -t ext4 -o ro,noload /dev/vdb /src
mount -t proc proc /src/proc; mount -t sysfs sys /src/sys; mount -t devtmpfs dev /src/dev
mount -t tmpfs tmpfs /src/run; mount -t tmpfs tmpfs /src/tmp
cp /builder.sh /src/run/builder.sh
if chroot /src /bin/sh /run/builder.sh > /dev/ttyS1 2>&1; then
    echo "ATOMIC-BUILD-OK" > /dev/ttyS1
else
    echo "ATOMIC-BUILD-FAIL: builder.sh exit $?" > /dev/ttyS1
fi
sync
poweroff -f
INIT
    chmod +x "$r/init"
    (cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
    rm -rf "$r"
}

# Runs in the builder guest, chrooted into the guest tree (read-only; /run and /tmp are tmpfs):
# PV on /dev/vda2, VG atomicos, LV root over the whole VG, xfs, the tree copied in, the fstab
# of this layout. udev is not running: lvm makes the /dev/mapper nodes itself.
atomic_builder_script() {
    cat <<EOF
set -eux
CFG='activation { udev_sync=0 udev_rules=0 monitoring=0 } devices { obtain_device_list_from_udev=0 use_devicesfile=0 } backup { backup=0 archive=0 }'
mkdir -p /run/lock/lvm /run/new
lvm pvcreate --config "\$CFG" -y -ff /dev/vda2
lvm vgcreate --config "\$CFG" $ATOMIC_VG /dev/vda2
lvm lvcreate --config "\$CFG" -y -l 100%FREE -n root $ATOMIC_VG
mkfs.xfs -q -f -L root $ATOMIC_ROOT_DEV
mount -t xfs $ATOMIC_ROOT_DEV /run/new
cp -ax /. /run/new/
rm -rf /run/new/boot/* /run/new/run/builder.sh
printf '%s\n' '$ATOMIC_ROOT_DEV / xfs defaults 0 0' 'LABEL=boot /boot ext4 defaults 0 2' > /run/new/etc/fstab
echo atomic-guest > /run/new/etc/hostname
df -B1 /run/new
umount /run/new
lvm pvs --config "\$CFG" --units b
lvm lvs --config "\$CFG" --units b
lvm vgchange --config "\$CFG" -an $ATOMIC_VG
sync
EOF
}

# What the base image is made of (its cache key, with the guest tree and the binary): the
# functions that build it and the sizes, not the rest of this file.
atomic_recipe() {
    declare -f atomic_base atomic_build_base atomic_builder_initrd atomic_builder_script \
        make_configdrive
    echo "$ATOMIC_IMAGE_MIB $ATOMIC_DISK_MIB $ATOMIC_BOOT_MIB $ATOMIC_CFG2_MIB $ATOMIC_VG"
}

# atomic_base: prints the cache directory of the base image (base.raw, layout, config2.*),
# building it first if needed. Needs the initramfs tree (atomic_initrd).
atomic_base() {
    local idir tree key dir
    idir=$(atomic_initrd) || exit 1
    tree=$idir/tree
    # The initramfs's key covers the tree the base is filled from (the report in it too).
    key=$( { basename "$idir"; atomic_recipe; } | sha256sum | cut -c1-16)
    dir=$PREROOT_QEMU_CACHE/$(atomic_prefix)-base-$key
    cache_touch "$dir"
    (
        exec 9>"$dir.lock"; flock 9
        [ -e "$dir/done" ] && exit 0
        atomic_build_base "$tree" "$dir"
        atomic_prune "$(atomic_prefix)-base" "$dir"
    ) || die "base image build failed"
    echo "$dir"
}

atomic_build_base() {
    local tree=$1 dir=$2 kver t0 src_mib
    kver=$(qemu_kver)
    t0=$(date +%s)
    rm -rf "$dir" && mkdir -p "$dir/work"
    local w=$dir/work img=$dir/work/disk.raw
    log "atomic: building the base image in $dir"

    # The guest tree as an ext4 image (the builder's second disk and chroot).
    src_mib=$(( $(du -sm "$tree" | cut -f1) * 12 / 10 + 256 ))
    truncate -s "${src_mib}M" "$w/src.ext4"
    mkfs.ext4 -q -L atomic-src -d "$tree" "$w/src.ext4"

    # The image as built: GPT, p1 /boot (ext4, holds the kernel as on Atomic), p2 the PV.
    truncate -s "${ATOMIC_IMAGE_MIB}M" "$img"
    sgdisk --zap-all "$img" >/dev/null
    sgdisk -n "1:2048:+${ATOMIC_BOOT_MIB}M" -t 1:8300 -c 1:boot \
        -n 2:0:0 -t 2:8e00 -c 2:lvm-pv "$img" >/dev/null
    mkdir -p "$w/boot"
    cp "/boot/vmlinuz-$kver" "/boot/config-$kver" "$w/boot/"
    truncate -s "${ATOMIC_BOOT_MIB}M" "$w/boot.ext4"
    mkfs.ext4 -q -L boot -d "$w/boot" "$w/boot.ext4"
    dd if="$w/boot.ext4" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none

    # The LVM part, in the builder guest.
    atomic_builder_initrd "$w/builder.img"
    local bt0 rc=0
    bt0=$(date +%s)
    boot_guest "$w/builder" 600 -kernel "/boot/vmlinuz-$kver" -initrd "$w/builder.img" \
        -append "console=ttyS0 panic=-1 quiet rdinit=/init" \
        -drive "file=$img,if=virtio,format=raw,cache=unsafe" \
        -drive "file=$w/src.ext4,if=virtio,format=raw,readonly=on" || rc=$?
    echo $(( $(date +%s) - bt0 )) > "$dir/builder-seconds"
    cp "$w/builder/report.log" "$dir/builder.log"
    if [ $rc -ne 0 ] || ! grep -q '^ATOMIC-BUILD-OK' "$dir/builder.log"; then
        tail -30 "$dir/builder.log" >&2
        tail -20 "$w/builder/console.log" >&2
        die "atomic: the builder guest failed (qemu status $rc); log: $dir/builder.log"
    fi

    # Deployed to a larger disk: enlarge, move the backup GPT to the end, put config-2 at the
    # new end (as Ironic does), leaving the space in between free.
    truncate -s "${ATOMIC_DISK_MIB}M" "$img"
    sgdisk -e "$img" >/dev/null
    local total start end
    total=$(( ATOMIC_DISK_MIB * 2048 ))
    start=$(( total - (ATOMIC_CFG2_MIB + 1) * 2048 ))
    end=$(( start + ATOMIC_CFG2_MIB * 2048 - 1 ))
    sgdisk -n "3:$start:$end" -t 3:0700 -c 3:config-2 "$img" >/dev/null
    make_configdrive "$w/config-2.iso"
    [ "$(stat -c %s "$w/config-2.iso")" -le $(( ATOMIC_CFG2_MIB << 20 )) ] || die "config drive too big"
    dd if="$w/config-2.iso" of="$img" bs=1M seek=$(( start / 2048 )) conv=notrunc status=none
    sgdisk -v "$img" | grep -q 'No problems found' || { sgdisk -v "$img" >&2; die "atomic: invalid GPT"; }

    dd if="$img" bs=1M skip=$(( start / 2048 )) count="$ATOMIC_CFG2_MIB" status=none \
        | sha256sum | cut -d' ' -f1 > "$dir/config2.sha256"
    sgdisk -p "$img" > "$dir/layout.txt"
    {
        echo "CFG2_START=$start"
        echo "CFG2_SECTORS=$(( ATOMIC_CFG2_MIB * 2048 ))"
        echo "P2_END=$(sgdisk -i 2 "$img" | awk '/^Last sector/ {print $3}')"
        echo "DISK_BYTES=$(( ATOMIC_DISK_MIB << 20 ))"
    } > "$dir/layout.env"
    mv "$img" "$dir/base.raw"
    rm -rf "$w"
    echo $(( $(date +%s) - t0 )) > "$dir/build-seconds"
    du -k "$dir/base.raw" | cut -f1 > "$dir/base-kib"
    touch "$dir/done"
    log "atomic: base built in $(cat "$dir/build-seconds") s (builder guest $(cat "$dir/builder-seconds") s)," \
        "$(( $(cat "$dir/base-kib") / 1024 )) MiB allocated of ${ATOMIC_DISK_MIB} MiB"
}

# atomic_boot OUTDIR DISK KARGS [REGEX]: one PXE boot of DISK (a qcow2 overlay of the base)
# with the extra kernel arguments KARGS; with REGEX, QEMU is SIGKILLed when its console shows
# it (kill_on; OUTDIR/killed says so). Leaves console.log, report.log, report.txt (the report
# without CRs), tftp/ and kernel-start-ms in OUTDIR; returns QEMU's status.
atomic_boot() {
    local out=$1 disk=$2 kargs=$3 re=${4:-} idir kver
    idir=$(atomic_initrd) || exit 1
    kver=$(qemu_kver)
    rm -rf "$out/tftp" && mkdir -p "$out/tftp"
    rm -f "$out/killed" "$out/kernel-start-ms" "$out/qemu.pid" "$out/wall-ms" "$out/console.log"
    cp "/boot/vmlinuz-$kver" "$out/tftp/vmlinuz"
    cp "$idir/initrd.img" "$out/tftp/initrd.img"
    cat > "$out/tftp/boot.ipxe" <<IPXE
#!ipxe
echo preroot: scenario (b), PXE boot like Ironic
kernel vmlinuz $(atomic_kernel_args)${kargs:+ $kargs}
initrd initrd.img
boot
IPXE
    # When the kernel starts (its banner on the console), by the host clock: PXE and TFTP
    # time is what iPXE spends before it.
    local t0 rc=0
    t0=$(date +%s%N)
    ( for _ in $(seq 1 3000); do
          if grep -qa 'Linux version' "$out/console.log" 2>/dev/null; then
              echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$out/kernel-start-ms"; exit 0
          fi
          sleep 0.1
      done ) &
    local watcher=$!
    local args=(-boot n -netdev "$(netdev_args),tftp=$out/tftp,bootfile=boot.ipxe"
        -device "virtio-net-pci,netdev=n0,mac=$GUEST_MAC"
        -drive "file=$disk,if=virtio,format=qcow2,cache=unsafe")
    if [ -n "$re" ]; then
        boot_guest "$out" "$ATOMIC_TIMEOUT" "${args[@]}" -pidfile "$out/qemu.pid" &
        local bootpid=$!
        kill_on "$out" "$re" 0 || log "atomic: the guest ended before /$re/ showed"
        wait "$bootpid" || rc=$?
    else
        boot_guest "$out" "$ATOMIC_TIMEOUT" "${args[@]}" || rc=$?
    fi
    kill "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    # The serial line ends lines with CR LF.
    tr -d '\r' < "$out/report.log" > "$out/report.txt" 2>/dev/null || true
    return $rc
}

# atomic_cfg2_sha DISK: the sha256 of the config-2 partition's bytes in a qcow2 overlay
# (`unreadable` if it cannot be read). Needs layout.env sourced.
atomic_cfg2_sha() {
    local disk=$1 tmp=$1.config-2 sha
    rm -f "$tmp"
    # (qemu-img dd cannot skip into a qcow2 here; a raw node with an offset over it can.)
    qemu-img convert -O raw --image-opts \
        "driver=raw,offset=$(( CFG2_START * 512 )),size=$(( CFG2_SECTORS * 512 )),file.driver=qcow2,file.file.filename=$disk" \
        "$tmp" && sha=$(sha256sum < "$tmp" | cut -d' ' -f1) || sha=unreadable
    rm -f "$tmp"
    echo "$sha"
}

# atomic_result OUTDIR DISK RC BASEDIR: OUTDIR/result.env of a boot (config-2 checksums, the
# layout, timings).
atomic_result() {
    local out=$1 disk=$2 rc=$3 bdir=$4 after init_s
    . "$bdir/layout.env"
    after=$(atomic_cfg2_sha "$disk")
    init_s=$(grep -a -m1 'Run /init as init process' "$out/console.log" \
             | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
    {
        cat "$bdir/layout.env"
        echo "CFG2_SHA256_BEFORE=$(cat "$bdir/config2.sha256")"
        echo "CFG2_SHA256_AFTER=$after"
        echo "QEMU_STATUS=$rc"
        echo "WALL_MS=$(cat "$out/wall-ms")"
        echo "KERNEL_START_MS=$(cat "$out/kernel-start-ms" 2>/dev/null || echo)"
        echo "KERNEL_TO_INIT_S=$init_s"
        # From QEMU's start to the initramfs's /init: PXE, TFTP, then the kernel's own boot.
        if [ -s "$out/kernel-start-ms" ] && [ -n "$init_s" ]; then
            echo "PXE_TO_INIT_MS=$(awk -v k="$(cat "$out/kernel-start-ms")" -v i="$init_s" 'BEGIN {printf "%d", k + i * 1000}')"
        fi
        echo "BASE_DIR=$bdir"
        echo "BUILDER_SECONDS=$(cat "$bdir/builder-seconds")"
        echo "BASE_BUILD_SECONDS=$(cat "$bdir/build-seconds")"
        echo "BASE_ALLOCATED_KIB=$(cat "$bdir/base-kib")"
    } > "$out/result.env"
}

# atomic_run OUTDIR: one PXE boot of a fresh overlay. Leaves console.log, report.log (the
# guest's report, see guest/preroot-report), tftp/ and result.env (config-2 checksums, the
# layout, timings) in OUTDIR, and report.txt (the report without CRs); returns QEMU's status.
atomic_run() {
    local out=$1 bdir rc=0
    bdir=$(atomic_base) || exit 1
    # In use until this run ends (lib.sh cache_hold): the base backs the overlay, the
    # initramfs is read at each boot.
    cache_hold "$bdir"; cache_hold "$(atomic_initrd)"
    rm -rf "$out" && mkdir -p "$out"
    out=$(cd "$out" && pwd)
    make_overlay "$bdir/base.raw" "$out/disk.qcow2" "$(stat -c %s "$bdir/base.raw")"
    atomic_boot "$out" "$out/disk.qcow2" "" || rc=$?
    atomic_result "$out" "$out/disk.qcow2" "$rc" "$bdir"
    return $rc
}

# atomic_check_disk DISK.qcow2 BASEDIR OUT.env: the host's view of the Atomic disk after a
# power cut, as KEY=VALUE lines (full outputs beside OUT.env): the GPT verified (table_check),
# p2's start and size, the PV's label (`LABELONE` in its sector 1), the newest VG metadata
# (the PV's size and extents, the LV's extents: what pvresize and lvextend committed), config-2's sha256 against the base's, and the xfs on
# the LV (which starts at the PV's first extent, 1 MiB in, as the builder made it): its
# superblock's size and `xfs_repair -n` of it extracted.
atomic_check_disk() {
    local disk=$1 bdir=$2 env=$3 raw=$3.disk.raw img=$3.root.img p2 sectors lv rc
    . "$bdir/layout.env"
    qemu-img convert -O raw "$disk" "$raw"
    {
        echo "disk_bytes=$(stat -c %s "$raw")"
        table_check "$raw" gpt "$env.table-check"
        sgdisk -i 2 "$raw" > "$env.p2" 2>&1 || true
        p2=$(awk '/^First sector/ {print $3}' "$env.p2")
        sectors=$(awk '/^Partition size/ {print $3}' "$env.p2")
        echo "p2_start=$p2"
        echo "p2_sectors=$sectors"
        echo "p2_end=$(awk '/^Last sector/ {print $3}' "$env.p2")"
        echo "pv_label=$(dd if="$raw" bs=512 skip=$(( p2 + 1 )) count=1 status=none | head -c 8 | tr -dc 'A-Z')"
        # The VG metadata in the PV's text area (4 KiB in, up to the first extent at 1 MiB):
        # the copies there are NUL-separated, the newest has the highest seqno; from it the
        # PV's dev_size (sectors) and pe_count (pvresize changes both) and the extents of the
        # LVs' segments (lvextend adds to them).
        dd if="$raw" bs=512 skip=$(( p2 + 8 )) count=2040 status=none | tr '\0' '\036' | awk '
            BEGIN { RS = "\036"; best = -1 }
            /seqno = / {
                q = ""; d = ""; p = ""; e = 0
                n = split($0, l, "\n")
                for (i = 1; i <= n; i++) {
                    if (l[i] ~ /^[ \t]*seqno = /) { q = l[i]; sub(/.*= /, "", q) }
                    if (d == "" && l[i] ~ /^[ \t]*dev_size = /) { d = l[i]; sub(/.*= /, "", d) }
                    if (p == "" && l[i] ~ /^[ \t]*pe_count = /) { p = l[i]; sub(/.*= /, "", p) }
                    if (l[i] ~ /^[ \t]*extent_count = /) { x = l[i]; sub(/.*= /, "", x); e += x }
                }
                if (q + 0 > best) { best = q + 0; bd = d; bp = p; be = e }
            }
            END { print "lvm_seqno=" best; print "lvm_pv_dev_sectors=" bd
                  print "lvm_pe_count=" bp; print "lvm_lv_extents=" be }'
        echo "cfg2_sha256=$(dd if="$raw" bs=512 skip="$CFG2_START" count="$CFG2_SECTORS" status=none | sha256sum | cut -d' ' -f1)"
        echo "cfg2_sha256_base=$(cat "$bdir/config2.sha256")"
        lv=$(( (p2 + 2048) * 512 ))
        echo "xfs_magic=$(dd if="$raw" bs=1M iflag=skip_bytes skip="$lv" count=1 status=none | head -c 4 | tr -dc 'A-Z')"
        local bsize blocks
        bsize=$(od -An -t u4 --endian=big -j $(( lv + 4 )) -N 4 "$raw" | tr -d ' ')
        blocks=$(od -An -t u8 --endian=big -j $(( lv + 8 )) -N 8 "$raw" | tr -d ' ')
        bsize=${bsize:-0} blocks=${blocks:-0}
        echo "xfs_bytes=$(( bsize * blocks ))"
        dd if="$raw" of="$img" bs=4M iflag=skip_bytes,count_bytes skip="$lv" \
            count=$(( bsize * blocks )) conv=sparse status=none
        rc=0; xfs_repair -n -f "$img" > "$env.xfs-repair" 2>&1 || rc=$?
        echo "xfs_repair_rc=$rc"
    } > "$env"
    rm -f "$raw" "$img"
}

# atomic_cut OUTDIR REGEX KARGS: see `cut` at the top.
atomic_cut() {
    local out=$1 re=$2 kargs=$3 bdir rc=0 t0
    export ATOMIC_FAULT=1
    bdir=$(atomic_base) || exit 1
    cache_hold "$bdir"; cache_hold "$(atomic_initrd)"
    rm -rf "$out" && mkdir -p "$out"
    out=$(cd "$out" && pwd)
    make_overlay "$bdir/base.raw" "$out/disk.qcow2" "$(stat -c %s "$bdir/base.raw")"
    t0=$(date +%s%N)
    atomic_boot "$out" "$out/disk.qcow2" "$kargs" "$re" || true
    log "atomic: boot 1: $(cat "$out/wall-ms") ms, killed: $([ -e "$out/killed" ] && echo yes || echo no)"
    if [ ! -e "$out/killed" ]; then
        tail -20 "$out/console.log" >&2 || true
        rm -f "$out/disk.qcow2"
        return 3
    fi
    local c0; c0=$(date +%s%N)
    atomic_check_disk "$out/disk.qcow2" "$bdir" "$out/disk-check.env"
    echo "check_ms=$(( ($(date +%s%N) - c0) / 1000000 ))" >> "$out/disk-check.env"
    log "atomic: after the power cut: $(tr '\n' ' ' < "$out/disk-check.env")"
    mkdir -p "$out/boot2"
    atomic_boot "$out/boot2" "$out/disk.qcow2" "" || rc=$?
    atomic_result "$out/boot2" "$out/disk.qcow2" "$rc" "$bdir"
    echo "SENTINEL_SHA256=$(sentinel | sha256sum | cut -d' ' -f1)" >> "$out/boot2/result.env"
    echo "CUT_TOTAL_MS=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$out/boot2/result.env"
    rm -f "$out/disk.qcow2"
    return $rc
}

# atomic_demo [OUTDIR]: run, then show what preroot did.
atomic_demo() {
    local out=${1:-$REPO_DIR/target/demo-atomic} rc=0
    atomic_run "$out" || rc=$?
    . "$out/result.env"
    echo "=== scenario (b): Atomic layout (GPT: /boot, LVM PV -> atomicos/root xfs, config-2 at the end), PXE-booted like Ironic"
    sed -n '/^Number/,$p' "$BASE_DIR/layout.txt"
    echo "--- PXE (iPXE + TFTP) until the kernel started: ${KERNEL_START_MS:-?} ms; to the initramfs's /init: ${PXE_TO_INIT_MS:-?} ms;" \
        "QEMU start to power-off: ${WALL_MS} ms (TCG)"
    echo "--- preroot show (in the booted guest)"
    report_section "$out/report.txt" show
    echo "--- /run/preroot"
    report_section "$out/report.txt" run-preroot
    echo "--- lsblk"
    # A section that is not JSON is said so (and fails the demo), never shown as no disks.
    report_section "$out/report.txt" lsblk | python3 -c '
import json, sys
def walk(devs, depth):
    for d in devs:
        print("%s%-20s %12s %-5s %-12s %-10s %s" % ("  " * depth, d["name"], d["size"], d["type"],
              d.get("fstype") or "", d.get("label") or d.get("partlabel") or "", d.get("mountpoint") or ""))
        walk(d.get("children", []), depth + 1)
text = sys.stdin.read()
try:
    devs = json.loads(text)["blockdevices"]
except (ValueError, KeyError, TypeError) as e:
    sys.exit("section lsblk: not JSON (%r):\n%s" % (e, "\n".join(text.splitlines()[:8]) or "(empty)"))
walk(devs, 0)' || rc=1
    echo "--- config-2 partition: sha256 before $CFG2_SHA256_BEFORE, after $CFG2_SHA256_AFTER"
    echo "--- system state: $(report_section "$out/report.txt" state)"
    echo "(console: $out/console.log, report: $out/report.log)"
    return $rc
}

[ "$(id -u)" = 0 ] || die "atomic.sh needs root (debootstrap, chroot, the guest's files)"
case ${1:-} in
    base) atomic_base ;;
    run) atomic_run "${2:?usage: atomic.sh run OUTDIR}" ;;
    demo) atomic_demo "${2:-}" ;;
    cut) atomic_cut "${2:?usage: atomic.sh cut OUTDIR REGEX KARGS}" "${3:?REGEX}" "${4:?KARGS}" ;;
    *) echo "usage: $0 base | run OUTDIR | demo [OUTDIR] | cut OUTDIR REGEX KARGS" >&2; exit 2 ;;
esac
