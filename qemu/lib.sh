# SPDX-License-Identifier: Apache-2.0
# qemu/lib.sh: shared functions of the QEMU harness. Sourced by build-guest.sh,
# build-initramfs.sh, scenario.sh and bench; other scenarios (PXE, LVM) build on the same
# functions:
#   qemu_kver                          the host kernel the guests boot (-kernel)
#   guest_key / ensure_guest           the cached debootstrap tree ($PREROOT_QEMU_CACHE)
#   build_initramfs OUT [opts]         make install (or dpkg -i) + dracut in a chroot of a copy of the tree
#   make_root_disk OUT gpt|mbr TREE    a disk image whose root partition is smaller than the disk
#   make_configdrive OUT [MAC]         an OpenStack config-drive ISO (volume id config-2)
#   make_azure_medium OUT OVF          Azure's provisioning medium (UDF, ovf-env.xml)
#   make_overlay BASE OUT SIZE         a fresh qcow2 overlay, larger than its base
#   boot_guest OUTDIR TIMEOUT ARGS...  one TCG boot, console and report on two serial ports
#   report_section FILE NAME           one section of the guest's report
#   kill_on OUTDIR REGEX DELAY_MS      SIGKILL a running boot when its console shows REGEX
#   check_disk DISK gpt|mbr OUT.env    the host's check of a disk after a power cut
#   table_check RAW gpt|mbr OUT        sgdisk -v / sfdisk -V of a raw image, as KEY=VALUE lines
#   sentinel                           the known content of preroot-fault disks' sentinel file
#   cache_touch / cache_hold / cache_prune   cache entries in use are never pruned (below)
# Nothing here touches the host's /usr/lib/dracut, and no guest packet leaves the machine:
# networking is QEMU user mode with restrict=on only.

QEMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$QEMU_DIR/.." && pwd)
PREROOT_QEMU_CACHE=${PREROOT_QEMU_CACHE:-/var/cache/preroot-qemu}
GUEST_MAC=${GUEST_MAC:-52:54:00:12:34:56}

log() { echo "qemu: $*" >&2; }
die() { echo "qemu: error: $*" >&2; exit 1; }

# The newest Debian kernel installed on the host (linux-image-amd64, from host-deps.sh): the
# guests boot it with -kernel and get its modules copied in.
qemu_kver() {
    if [ -n "${KVER:-}" ]; then echo "$KVER"; return; fi
    local k
    k=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -1)
    [ -n "$k" ] && [ -d "/lib/modules/$k" ] || die "no /boot/vmlinuz-*-amd64 with modules: run qemu/host-deps.sh"
    echo "$k"
}

# The guest tree's cache key: the recipe (build-guest.sh) and the kernel. Changing anything
# else (preroot, lib.sh, the report, the scenarios) reuses the tree.
guest_key() {
    { cat "$QEMU_DIR/build-guest.sh"; qemu_kver; } | sha256sum | cut -c1-16
}

# What build_initramfs installs into every copy besides preroot: the report (guest/) and its
# probes (report.d/). Every cache key of a build from such a copy includes it.
harness_files() {
    find "$QEMU_DIR/guest" "$QEMU_DIR/report.d" -type f | sort | xargs cat
}

# Prints the path of the cached guest tree, building it first if needed (flock: two callers
# never build it at once).
ensure_guest() {
    local dir="$PREROOT_QEMU_CACHE/guest-$(guest_key)"
    if [ ! -e "$dir/done" ]; then
        "$QEMU_DIR/build-guest.sh" >&2 || die "guest build failed"
    fi
    echo "$dir/rootfs"
}

# Cache entries ($PREROOT_QEMU_CACHE/<kind>-<16 hex>: build-*, ostree-*, atomic-*) are shared
# by everyone on the machine, each branch's binary making its own. An entry is in use from the
# moment an ensure_* function looks it up (cache_touch: the mtime of ENTRY.use) until the
# boots that need it are over: scenario.sh, bench and atomic.sh hold a shared flock on
# ENTRY.use meanwhile (cache_hold), as a multi-boot test queues for the boot lock for minutes
# with the entry's disk as its overlay's backing file. cache_prune removes only entries nobody
# holds and nobody looked up for CACHE_KEEP_MIN minutes (default 60); lock files stay (removing
# a lock file someone may be opening is a race). Before, pruning went by
# the build's age: another branch's build removed a build between a test's two boots
# ("Could not open backing file"), and `build-preroot-*` also matched `build-preroot-fault-*`.

# cache_touch ENTRY: ENTRY is being looked up (call before its build lock and done check).
# The entry's own mtime too: older copies of this harness on other branches prune by it.
cache_touch() {
    mkdir -p "$PREROOT_QEMU_CACHE"
    touch "$1.use"
    if [ -d "$1" ]; then touch "$1"; fi
}

# cache_hold ENTRY: a shared lock on ENTRY.use for as long as the calling shell (and what it
# starts) runs. Call it in the script's own shell, not in $(...).
cache_hold() {
    local fd
    cache_touch "$1"
    exec {fd}>>"$1.use"
    flock -s "$fd"
}

# cache_idle ENTRY: nobody looked ENTRY up for CACHE_KEEP_MIN minutes (ENTRY.use's mtime, or
# the entry's own for one made before ENTRY.use existed).
cache_idle() {
    local ref=$1.use
    [ -e "$ref" ] || ref=$1
    [ -n "$(find "$ref" -maxdepth 0 -mmin +"${CACHE_KEEP_MIN:-60}" 2>/dev/null)" ]
}

# cache_prune KEEP ENTRY...: removes each ENTRY directory but KEEP that is idle, held by
# nobody and not being built (its build lock), and its .use file.
cache_prune() {
    local keep=$1 d; shift
    for d in "$@"; do
        [ -d "$d" ] && [ "$d" != "$keep" ] && cache_idle "$d" || continue
        # (An entry from before ENTRY.use existed: its last use is the entry's own mtime.)
        [ -e "$d.use" ] || touch -r "$d" "$d.use"
        ( exec 7>"$d.lock" 8>>"$d.use"
          flock -n 7 && flock -n 8 && cache_idle "$d" && rm_sysroot "$d" && rm -f "$d.use" ) || true
    done
}

# rm_sysroot DIR: rm -rf of a directory that may hold an ostree sysroot: ostree makes each
# deployment immutable (chattr +i), which root's rm cannot remove.
rm_sysroot() {
    local d
    for d in "$1"/ostree/deploy/*/deploy/*.[0-9] "$1"/sysroot/ostree/deploy/*/deploy/*.[0-9]; do
        [ -d "$d" ] && chattr -i "$d"
    done
    rm -rf "$1"
}

# Runs a command chrooted into TREE with /proc, /sys and /dev mounted in a private mount
# namespace: the mounts vanish with the command and never show up in other processes.
in_chroot() {
    local tree=$1; shift
    unshare --mount --propagation private -- bash -c '
        tree=$1; shift
        mount -t proc proc "$tree/proc" && mount -t sysfs sys "$tree/sys" &&
        mount --rbind /dev "$tree/dev" && exec chroot "$tree" "$@"' _ "$tree" "$@"
}

# install_debs TREE COPY DIR: `dpkg -i` of DIR's .debs in a chroot of COPY (a hard-link copy
# of TREE). dpkg rewrites its database and appends to its log in place, so those, and /etc,
# first become files of the copy's own: nothing is written through into the cached TREE.
install_debs() {
    local tree=$1 work=$2 debs=$3 d
    for d in var/lib/dpkg var/log etc; do
        rm -rf "${work:?}/$d" && cp -a "$tree/$d" "$work/$d"
    done
    mkdir -p "$work/tmp/debs" && cp "$debs"/*.deb "$work/tmp/debs/"
    log "dpkg -i in $work: $(cd "$debs" && echo *.deb)"
    in_chroot "$work" sh -c 'dpkg -i /tmp/debs/*.deb' >&2 || die "dpkg -i failed"
    rm -rf "$work/tmp/debs"
}

# build_debs DIR: the preroot and preroot-dracut .debs of the current binary (make static),
# as `make packages` assembles them (no second cargo build), in DIR/deb.
build_debs() {
    make -s -C "$REPO_DIR" man >&2 || die "make man failed"
    make -s -C "$REPO_DIR" deb PACKAGE_FROM_BIN=1 PKG="$1" > "$1.log" 2>&1 \
        || { tail -30 "$1.log" >&2; die "make deb failed"; }
}

# build_initramfs OUT [--add "mod ..."] [--no-preroot] [--tree TREE] [--deb DIR]
# Copies the guest tree (hard links: the pristine tree is never written), runs `make install
# DESTDIR=<copy>` (binary, dracut module, units, dracut.conf.d), then dracut in a chroot of
# the copy for the host kernel. Lean: only the dracut modules an ext4 (or, with --add, LVM/xfs)
# root on virtio-blk needs, no-hostonly so the build machine's hardware does not matter.
# --deb DIR: as a user installs it instead (issue 18): `dpkg -i` of DIR's preroot and
# preroot-dracut .debs in the chroot (their maintainer scripts enable preroot-apply), then
# the guest's own `dracut -f IMAGE KVER`, as Debian's kernel postinst hook runs it, with no
# module named on the command line: preroot gets in by the package's dracut.conf.d file,
# and the lean set comes from an admin's /etc/dracut.conf.d file.
# Leaves the copy at OUT.tree (the root disk is made from it, so it carries the same preroot).
build_initramfs() {
    local out=$1; shift
    local add="" preroot=1 tree="" debs=""
    while [ $# -gt 0 ]; do
        case $1 in
            --add) add="$add $2"; shift 2 ;;
            --no-preroot) preroot=0; shift ;;
            --tree) tree=$2; shift 2 ;;
            --deb) debs=$2; shift 2 ;;
            *) die "build_initramfs: unknown option $1" ;;
        esac
    done
    local kver work="$out.tree"
    [ -n "$tree" ] || tree=$(ensure_guest) || exit 1
    kver=$(qemu_kver)
    rm -rf "$work" && mkdir -p "$(dirname "$work")"
    cp -al "$tree" "$work"
    if [ -n "$debs" ]; then
        install_debs "$tree" "$work" "$debs"
    else
        # The static binary (built here if needed; honours $CARGO_TARGET_DIR), the module, the
        # units and the dracut.conf.d file, into the copy.
        make -s -C "$REPO_DIR" install DESTDIR="$work" >&2 || die "make install failed"
        # As a distribution package would (a preset): the userspace half runs in the booted guest.
        [ "$preroot" = 1 ] && in_chroot "$work" systemctl enable preroot-apply.service >/dev/null 2>&1
    fi
    # The report (after multi-user.target, figures on ttyS1, then power off) and the
    # scenarios' probes (qemu/report.d/README), which it runs as sections x-NAME. Installed
    # here, not in the cached guest tree, so changing them rebuilds only this step
    # (harness_files is in every key of a build made from this copy).
    # (rm first: the copy's files are hard links to the cached tree's, never written through.)
    rm -f "$work/usr/local/sbin/preroot-report" "$work/etc/systemd/system/preroot-report.service"
    install -D -m 0755 "$QEMU_DIR/guest/preroot-report" "$work/usr/local/sbin/preroot-report"
    install -m 0644 "$QEMU_DIR/guest/preroot-report.service" "$work/etc/systemd/system/"
    mkdir -p "$work/etc/systemd/system/multi-user.target.wants"
    ln -sfn ../preroot-report.service "$work/etc/systemd/system/multi-user.target.wants/preroot-report.service"
    mkdir -p "$work/etc/preroot-report.d"
    install -m 0755 "$QEMU_DIR"/report.d/[a-z]* "$work/etc/preroot-report.d/"
    local modules="systemd systemd-initrd base rootfs-block fs-lib udev-rules dracut-systemd kernel-modules $add"
    local omit="" addmod=""
    if [ "$preroot" = 1 ]; then addmod="--add preroot"; else omit="preroot"; fi
    # ahci/sr_mod: the config drive is a CD-ROM on q35's AHCI. ext4 (and xfs with --add lvm).
    local drivers="virtio_blk virtio_pci virtio_net virtio_scsi ext4 ahci sd_mod sr_mod"
    case " $add " in *" lvm "*) drivers="$drivers dm_mod xfs" ;; esac
    if [ -n "$debs" ]; then
        # What an admin who wants small images writes; the package's own file (90-preroot.conf,
        # add_dracutmodules) adds preroot to it.
        printf '%s\n' '# The QEMU harness (qemu/lib.sh): a lean, generic initramfs.' \
            'hostonly="no"' 'hostonly_cmdline="no"' "dracutmodules=\"$modules\"" \
            "drivers=\"$drivers\"" 'omit_drivers+=" nouveau amdgpu radeon i915 "' \
            'compress="zstd"' > "$work/etc/dracut.conf.d/10-harness.conf"
        log "dracut -f in $work for $kver (its dracut.conf.d: $(ls "$work/etc/dracut.conf.d" \
            "$work/usr/lib/dracut/dracut.conf.d" 2>/dev/null | grep '\.conf$' | tr '\n' ' '))"
        in_chroot "$work" dracut -f -q /tmp/initramfs.img "$kver" >&2 || die "dracut -f failed"
    else
        log "dracut in $work for $kver (modules: $modules${add:+ +$add}${omit:+ -$omit})"
        in_chroot "$work" dracut --force --quiet --no-hostonly --no-hostonly-cmdline \
            --kver "$kver" --modules "$modules" $addmod ${omit:+--omit "$omit"} \
            --drivers "$drivers" --omit-drivers "nouveau amdgpu radeon i915" \
            --compress "zstd" /tmp/initramfs.img >&2 || die "dracut failed"
    fi
    mv "$work/tmp/initramfs.img" "$out"
    log "initramfs $out: $(stat -c %s "$out") bytes"
}

# make_root_disk OUT gpt|mbr TREE: a DISK_MIB (default 1536) image with one root partition of
# ROOT_MIB (default 1200) labelled `root`, ext4 filled with mke2fs -d (no loop device, no
# mount). The disk end stays free; the overlay adds more.
make_root_disk() {
    local img=$1 table=$2 tree=$3
    local disk_mib=${DISK_MIB:-1536} root_mib=${ROOT_MIB:-1200}
    rm -f "$img" "$img.p1"
    truncate -s "${disk_mib}M" "$img"
    case $table in
        gpt) sgdisk --zap-all "$img" >/dev/null
             sgdisk -n "1:2048:+${root_mib}M" -t 1:8304 -c 1:root \
                 -u 1:6a1c1a3b-0000-4000-8000-000000000001 "$img" >/dev/null ;;
        mbr) printf 'label: dos\nlabel-id: 0x6a1c1a3b\nstart=2048, size=%dM, type=83\n' "$root_mib" \
                 | sfdisk -q "$img" ;;
        *) die "make_root_disk: unknown table $table" ;;
    esac
    truncate -s "${root_mib}M" "$img.p1"
    mkfs.ext4 -q -L root -d "$tree" "$img.p1"
    dd if="$img.p1" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
    rm -f "$img.p1"
}

# make_configdrive OUT [MAC]: an OpenStack config drive (ISO9660, volume id config-2) with
# meta_data.json (uuid, hostname, keys) and network_data.json for the guest's NIC.
# Env: CD_UUID (the instance id), CD_HOSTNAME (default preroot-qemu.example.test),
# CD_USER_DATA (a file: the user data; default a cloud-config runcmd that touches
# /run/user-data-ran), CD_SSH_KEY (the public key; default a fake one nobody can log in with).
make_configdrive() {
    local iso=$1 mac=${2:-$GUEST_MAC} d uuid=${CD_UUID:-6a1c1a3b-1111-4222-8333-444455556666}
    local host=${CD_HOSTNAME:-preroot-qemu.example.test}
    local key=${CD_SSH_KEY:-ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheQemuHarnessOnly00000000000000 qemu}
    d=$(mktemp -d)
    mkdir -p "$d/openstack/latest"
    cat > "$d/openstack/latest/meta_data.json" <<JSON
{"uuid": "$uuid", "name": "preroot-qemu",
 "hostname": "$host", "availability_zone": "nova", "launch_index": 0,
 "public_keys": {"qemu": "$key"},
 "meta": {"role": "qemu-test"}}
JSON
    cat > "$d/openstack/latest/network_data.json" <<JSON
{"links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": "$mac", "mtu": 1500}],
 "networks": [{"id": "network0", "type": "ipv4", "link": "tap0", "ip_address": "10.0.2.15",
   "netmask": "255.255.255.0",
   "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}],
   "services": [{"type": "dns", "address": "10.0.2.3"}]}],
 "services": [{"type": "dns", "address": "10.0.2.3"}]}
JSON
    if [ -n "${CD_USER_DATA:-}" ]; then
        cp "$CD_USER_DATA" "$d/openstack/latest/user_data"
    else
        printf '#cloud-config\nruncmd:\n  - [ touch, /run/user-data-ran ]\n' > "$d/openstack/latest/user_data"
    fi
    xorriso -as mkisofs -quiet -R -J -V config-2 -o "$iso" "$d"
    rm -rf "$d"
}

# make_overlay BASE OUT SIZE: a qcow2 overlay of SIZE over a pristine raw BASE.
make_overlay() {
    rm -f "$2"
    qemu-img create -q -f qcow2 -b "$1" -F raw "$2" "$3"
}

# boot_guest OUTDIR TIMEOUT [QEMU ARGS...]: one boot under TCG (QEMU_ACCEL=kvm for KVM),
# q35, 1 GiB, 2 vCPUs; the console goes to OUTDIR/console.log, the guest's report (ttyS1) to
# OUTDIR/report.log. Ends by itself: -no-reboot, and `timeout` kills a guest that hangs.
# Boots on one machine are serialized by a lock in $PREROOT_QEMU_CACHE.
# Returns QEMU's status (124 on timeout). Writes the wall time to OUTDIR/wall.
boot_guest() {
    local out=$1 tmo=$2; shift 2
    local acc
    case ${QEMU_ACCEL:-tcg} in
        kvm) acc=(-accel kvm -cpu host) ;;
        *) acc=(-accel tcg,thread=multi -cpu max,-svm,-vmx) ;;
    esac
    mkdir -p "$out"
    rm -f "$out/console.log" "$out/report.log"
    local cmd=(qemu-system-x86_64 "${acc[@]}" -machine q35 -m "${QEMU_MEM:-1024}" -smp "${QEMU_SMP:-2}"
        -nodefaults -display none -monitor none -no-reboot
        -device virtio-rng-pci
        -serial "file:$out/console.log" -serial "file:$out/report.log" "$@")
    printf '%q ' "${cmd[@]}" > "$out/qemu-cmdline"; echo >> "$out/qemu-cmdline"
    local tw t0 t1 rc=0
    # One guest at a time on this machine (two cores; TCG uses both): callers queue here. The
    # wait is kept apart (OUTDIR/lock-wait-ms): a test's host time is mostly this queue.
    mkdir -p "$PREROOT_QEMU_CACHE"
    exec {lockfd}>"$PREROOT_QEMU_CACHE/boot.lock"
    tw=$(date +%s%N)
    flock "$lockfd"
    t0=$(date +%s%N)
    echo $(( (t0 - tw) / 1000000 )) > "$out/lock-wait-ms"
    [ $(( t0 - tw )) -lt 1000000000 ] || log "waited $(( (t0 - tw) / 1000000 )) ms for the machine's boot lock"
    timeout --kill-after=10 "$tmo" "${cmd[@]}" > "$out/qemu.out" 2>&1 || rc=$?
    t1=$(date +%s%N)
    exec {lockfd}>&-
    echo $(( (t1 - t0) / 1000000 )) > "$out/wall-ms"
    return $rc
}

# kill_on OUTDIR REGEX DELAY_MS: while a boot_guest into OUTDIR runs (started with
# `-pidfile OUTDIR/qemu.pid`), waits for REGEX (ERE) in its console, then DELAY_MS ms, then
# SIGKILLs that QEMU: a power cut at a point the guest announced. Writes OUTDIR/killed (the
# matched line, the delay, the console lines after it). Returns 1 if the guest ended first.
kill_on() {
    local dir=$1 re=$2 delay=$3 line="" pid
    while :; do
        line=$(grep -m1 -aE "$re" "$dir/console.log" 2>/dev/null) && break
        if [ -s "$dir/qemu.pid" ] && ! kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null; then return 1; fi
        [ -e "$dir/wall-ms" ] && return 1
        sleep 0.005
    done
    [ "$delay" -gt 0 ] && sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    pid=$(cat "$dir/qemu.pid")
    kill -KILL "$pid"
    { echo "matched: $line"; echo "delay_ms: $delay";
      echo "console after the match:"; grep -aE -A15 "$re" "$dir/console.log" | tail -n +2; } > "$dir/killed"
}

# table_check RAW gpt|mbr OUT: the partition table of a raw image verified by sgdisk -v (GPT)
# or sfdisk -V (MBR), full output in OUT; prints table_check_rc, table_check_problems and
# table_backup_not_at_end (the one remark on a GPT disk enlarged but not yet grown) lines.
table_check() {
    local raw=$1 table=$2 out=$3 rc=0 n
    if [ "$table" = gpt ]; then sgdisk -v "$raw" > "$out" 2>&1 || rc=$?
    else sfdisk -V "$raw" > "$out" 2>&1 || rc=$?; fi
    echo "table_check_rc=$rc"
    # sgdisk: "Identified N problems!" or "No problems found."; sfdisk: "No errors detected."
    if [ "$table" = gpt ]; then
        n=$(sed -nE 's/^Identified ([0-9]+) problems.*/\1/p' "$out")
        grep -q 'No problems found' "$out" && n=0
    else
        n=1; grep -q 'No errors detected' "$out" && n=0
    fi
    echo "table_check_problems=${n:-unknown}"
    echo "table_backup_not_at_end=$(grep -c "doesn't reside" "$out")"
}

# check_disk DISK.qcow2 gpt|mbr OUT.env: the host's view of a disk after a power cut, as
# KEY=VALUE lines: the table verified by sgdisk -v (GPT) or sfdisk -V (MBR), partition 1's
# start and size, e2fsck -fn of the root partition extracted at its offset (and, if that
# found the journal unreplayed, e2fsck -fy on the copy then -fn again), its size, and the
# sentinel file compared with what the build wrote. Full outputs beside OUT.env.
check_disk() {
    local disk=$1 table=$2 env=$3 raw img rc start size
    raw=$env.disk.raw img=$env.root.img
    qemu-img convert -O raw "$disk" "$raw"
    {
        echo "disk_bytes=$(stat -c %s "$raw")"
        table_check "$raw" "$table" "$env.table-check"
        sfdisk -d "$raw" > "$env.sfdisk-d" 2>&1 || true
        start=$(sed -nE 's/.*\.raw1 *: *start= *([0-9]+),.*/\1/p' "$env.sfdisk-d")
        size=$(sed -nE 's/.*\.raw1 *:.*size= *([0-9]+),.*/\1/p' "$env.sfdisk-d")
        echo "part_start=$start"
        echo "part_sectors=$size"
        dd if="$raw" of="$img" bs=4M iflag=skip_bytes,count_bytes skip=$((start * 512)) \
            count=$((size * 512)) conv=sparse status=none
        rc=0; e2fsck -fn "$img" > "$env.fsck" 2>&1 || rc=$?
        echo "fsck_rc=$rc"
        echo "fsck_journal_unreplayed=$(grep -c 'skipping journal recovery' "$env.fsck")"
        if [ "$rc" != 0 ]; then
            e2fsck -fy "$img" > "$env.fsck-fix" 2>&1 || true
            rc=0; e2fsck -fn "$img" > "$env.fsck-after" 2>&1 || rc=$?
            echo "fsck_after_replay_rc=$rc"
        fi
        echo "fs_bytes=$(dumpe2fs -h "$img" 2>/dev/null | awk -F: '/^Block count/ {c=$2} /^Block size/ {b=$2} END {print c*b}')"
        if [ "$(debugfs -R 'cat /var/lib/preroot-sentinel' "$img" 2>/dev/null | sha256sum)" = "$(sentinel | sha256sum)" ]; then
            echo "sentinel_ok=1"
        else
            echo "sentinel_ok=0"
        fi
    } > "$env"
    rm -f "$raw" "$img"
}

# Direct kernel boot arguments for a root labelled `root`, plus extra kernel arguments.
kernel_args() {
    echo "root=LABEL=root rw console=ttyS0 panic=-1 rd.shell=0 rd.emergency=poweroff systemd.show_status=auto $*"
}

# The user-mode network: restrict=on (no packet leaves the machine). With a PORT, the link is
# 169.254.0.0/16 and 169.254.169.254:80 is forwarded to 127.0.0.1:PORT on the host. HOSTFWD
# (e.g. tcp:127.0.0.1:2222-:22) adds a forward from the host into the guest: restrict=on still
# holds, since the host opens the connection (tests/qemu_selinux.rs logs in with ssh).
netdev_args() {
    local port=${1:-} fwd=${HOSTFWD:+,hostfwd=$HOSTFWD}
    if [ -n "$port" ]; then
        echo "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dns=169.254.0.3,guestfwd=tcp:169.254.169.254:80-cmd:socat STDIO TCP:127.0.0.1:$port$fwd"
    else
        echo "user,id=n0,restrict=on$fwd"
    fi
}

# The Azure scenario's user-mode network: restrict=on, and net=168.0.0.0/6 (168.0.0.0 to
# 171.255.255.255) so that both IMDS at 169.254.169.254 and the wire server at 168.63.129.16
# lie inside it (guestfwd serves only addresses in the guest's network; slirp answers ARP for
# them, so the guest reaches them on-link as on Azure). Each is forwarded to the test's
# server on 127.0.0.1: IMDS_PORT, WIRE_PORT.
netdev_args_azure() {
    local fwd="guestfwd=tcp:169.254.169.254:80-cmd:socat STDIO TCP:127.0.0.1:$1"
    fwd="$fwd,guestfwd=tcp:168.63.129.16:80-cmd:socat STDIO TCP:127.0.0.1:$2"
    echo "user,id=n0,restrict=on,net=168.0.0.0/6,host=168.0.0.2,dns=168.0.0.3,$fwd"
}

# make_azure_medium OUT OVF: Azure's provisioning medium, the file OVF as ovf-env.xml at the
# root of a `genisoimage -udf` disc (hybrid ISO9660/UDF: preroot reads its UDF side; the
# ISO9660 side has only the 8.3 name OVF_ENV.XML), volume id as Azure names it.
make_azure_medium() {
    local d; d=$(mktemp -d)
    cp "$2" "$d/ovf-env.xml"
    genisoimage -quiet -udf -V rd_rdfe_stable.20261207-1200 -o "$1" "$d"
    rm -rf "$d"
}

# report_section FILE NAME: the lines between `@@ NAME` and the next `@@` marker.
report_section() {
    # The serial port writes CRLF.
    awk -v n="@@ $2" '{sub(/\r$/, "")} $0 == n {on=1; next} /^@@/ {on=0} on' "$1"
}

# Extra guests: the base tree plus Debian packages and a setup step, cached beside it (key:
# the base tree, the package list and the setup function). One line per guest here:
#   cloudinit  Debian's cloud-init (the benchmark's baseline and the hand-off scenario)
#   ostree     Debian's ostree and ostree-boot (the dracut module with ostree-prepare-root);
#              qemu/ostree.sh turns a copy of it into an ostree deployment
#   nm         NetworkManager instead of systemd-networkd (preroot must choose `nm` by itself)
#   ifupdown   Debian's ifupdown instead of systemd-networkd (preroot must choose `eni`)
#   ssh        openssh-server (host keys to regenerate, ssh-keygen for their fingerprints)
#   selinux    Debian's SELinux (selinux-basics, selinux-policy-default: refpolicy), auditd,
#              openssh-server; the tree labelled with setfiles (tests/qemu_selinux.rs)
#   storage    btrfs-progs and cryptsetup-bin: the btrfs and LUKS2 roots of qemu/storage.sh
extra_guest_packages() {
    case $1 in
        storage) echo "btrfs-progs cryptsetup-bin" ;;
        cloudinit) echo "cloud-init cloud-guest-utils" ;;
        ostree) echo "ostree ostree-boot" ;;
        nm) echo "network-manager" ;;
        ifupdown) echo "ifupdown" ;;
        ssh) echo "openssh-server" ;;
        selinux) echo "selinux-basics selinux-policy-default auditd openssh-server" ;;
        *) die "unknown extra guest $1" ;;
    esac
}

# Setup of the cloud-init guest: ConfigDrive datasource, networkd renderer, growpart and
# resizefs as Debian ships them.
extra_guest_setup_cloudinit() {
    local root=$1
    in_chroot "$root" systemctl enable cloud-init-local.service cloud-init.service \
        cloud-config.service cloud-final.service >/dev/null 2>&1
    cat > "$root/etc/cloud/cloud.cfg.d/90-bench.cfg" <<'CFG'
datasource_list: [ ConfigDrive, None ]
# C.UTF-8 needs no locale-gen (the default en_US.UTF-8 fails on minbase)
locale: C.UTF-8
system_info:
  network:
    renderers: [ 'networkd' ]
    activators: [ 'networkd' ]
CFG
    rm -f "$root/etc/cloud/cloud.cfg.d/90_dpkg.cfg"
    rm -rf "$root/var/lib/cloud" "$root/var/log/cloud-init"*
}

# Setup of the ostree guest: the report's probe of the deployments (section x-ostree). It
# prints whether the system booted as an ostree deployment, `ostree admin status`, and for
# every deployment on the disk whether it is the booted one (same inode as /) and what of
# preroot's is in its /etc; then what lies at the top of the physical root (/sysroot), where
# preroot must write nothing; and the initramfs's order of ostree-prepare-root and preroot's
# sysroot phase.
extra_guest_setup_ostree() {
    local root=$1
    mkdir -p "$root/etc/preroot-report.d"
    cat > "$root/etc/preroot-report.d/ostree" <<'PROBE'
#!/bin/bash
echo "ostree-booted $([ -e /run/ostree-booted ] && echo yes || echo no)"
echo "## status"
ostree admin status 2>&1
echo "## deployments"
root_id=$(stat -c %d:%i /)
for d in /sysroot/ostree/deploy/*/deploy/*.[0-9]; do
    [ -d "$d" ] || continue
    role=other; [ "$(stat -c %d:%i "$d")" = "$root_id" ] && role=booted
    id=$(cat "$d/etc/preroot/instance-id" 2>/dev/null || echo none)
    echo "$d $role instance-id=$id hostname=$(cat "$d/etc/hostname" 2>/dev/null)" \
         "network=$(cd "$d/etc/systemd/network" 2>/dev/null && ls | grep -c preroot)"
done
echo "## sysroot-top"
ls -A1 /sysroot
echo "## preroot-outside-deployments"
find /sysroot -xdev -path /sysroot/ostree -prune -o \( -name '*preroot*' -o -path '*/etc/hostname' \) -print
find /sysroot/ostree -xdev -path /sysroot/ostree/repo -prune -o -path /sysroot/ostree/deploy -prune \
     -o -name '*preroot*' -print
# The initramfs's order (its journal is kept in /run): systemd's Starting/Finished lines of
# ostree-prepare-root and preroot's sysroot phase, in monotonic time.
echo "## order"
journalctl -b -o short-monotonic --no-pager -u ostree-prepare-root.service \
    -u preroot-sysroot.service | grep -E ' (Starting|Finished) '
echo "## end"
PROBE
    chmod 0755 "$root/etc/preroot-report.d/ostree"
}

# Setup of the storage guest (qemu/storage.sh): the LUKS2 key its initramfs carries
# (/etc/luks.key, named by rd.luks.key=; the root filesystems made from this tree drop it),
# the key of the second, keyless disk (/etc/preroot-nokey.key, opened only by the probe), the
# drivers dracut's --drivers list lacks for dm-crypt and btrfs, and the probe `storage`
# (section x-storage): the root's filesystem, btrfs's devices and subvolumes, LVM, the
# device-mapper tables (a LUKS2 mapping shows a keyring reference, not its key), the
# sentinel's sha256, and with the second disk (vdb) attached: that disk's LUKS2 opened and
# `preroot grow` run on it, which must grow its partition and, having no key, not the mapping.
extra_guest_setup_storage() {
    local root=$1
    printf 'preroot storage test key (LUKS2 root)' > "$root/etc/luks.key"
    printf 'preroot storage test key (no-key disk)' > "$root/etc/preroot-nokey.key"
    chmod 0600 "$root/etc/luks.key" "$root/etc/preroot-nokey.key"
    mkdir -p "$root/etc/dracut.conf.d"
    cat > "$root/etc/dracut.conf.d/90-preroot-storage.conf" <<'CONF'
install_items+=" /etc/luks.key "
add_drivers+=" dm_crypt xts aesni_intel aes_generic algif_skcipher btrfs crc32c_generic "
CONF
    add_report_probe "$root" storage '
echo "# rootfs"; findmnt -n -o FSTYPE,SOURCE,OPTIONS /
if [ "$(findmnt -n -o FSTYPE /)" = btrfs ]; then
    echo "# btrfs-show"; btrfs filesystem show --raw /
    echo "# btrfs-usage"; btrfs filesystem usage -b /
    echo "# subvolumes"; btrfs subvolume list /
fi
if lvm vgs --noheadings 2>/dev/null | grep -q .; then
    echo "# pvs"; lvm pvs --units b --nosuffix --reportformat json -o pv_name,pv_size,dev_size,pe_start,pv_free
    echo "# vgs"; lvm vgs --units b --nosuffix --reportformat json -o vg_name,vg_size,vg_free,vg_extent_size,vg_free_count
    echo "# lvs"; lvm lvs --units b --nosuffix --reportformat json -o lv_name,vg_name,lv_size,seg_count
fi
echo "# dm-table"; dmsetup table 2>&1 | sed "s/ [0-9a-f]\{64,\} / <key> /"
echo "# sentinel"; sha256sum < /var/lib/preroot-sentinel | cut -d" " -f1
if [ -b /dev/vdb1 ] && [ -e /etc/preroot-nokey.key ]; then
    cryptsetup open --key-file /etc/preroot-nokey.key /dev/vdb1 nokey
    echo "# nokey-before"; lsblk -b -n -o NAME,SIZE /dev/vdb
    echo "# nokey-grow"; preroot grow --json /dev/mapper/nokey 2>/run/nokey.err; echo "exit $?"
    echo "# nokey-stderr"; cat /run/nokey.err
    echo "# nokey-after"; lsblk -b -n -o NAME,SIZE /dev/vdb
fi'
}

# add_report_probe ROOT NAME SCRIPT: an executable /etc/preroot-report.d/NAME in the guest
# tree ROOT; the report prints its output as section x-NAME.
add_report_probe() {
    mkdir -p "$1/etc/preroot-report.d"
    printf '#!/bin/sh\n%s\n' "$3" > "$1/etc/preroot-report.d/$2"
    chmod 0755 "$1/etc/preroot-report.d/$2"
}

# The NetworkManager guest: networkd off, NetworkManager on (its wait-online stays: preroot-apply
# wants network-online.target, and a profile that never activates should show as a slow,
# degraded boot, not be hidden). Probes: NetworkManager's devices, profiles and the NIC's
# addresses, each after waiting (bounded) for the Ethernet device to be activated (the probes
# run in name order, and only the first would wait otherwise); `-c no`, as the
# report's ttyS1 is a terminal and nmcli would colour its output.
extra_guest_setup_nm() {
    local root=$1
    in_chroot "$root" systemctl disable systemd-networkd.service systemd-networkd.socket >/dev/null 2>&1
    in_chroot "$root" systemctl enable NetworkManager.service >/dev/null 2>&1
    local wait='i=0; while [ $i -lt 60 ] && ! nmcli -c no -t -f TYPE,STATE dev 2>/dev/null | grep -q "^ethernet:connected$"; do sleep 0.5; i=$((i+1)); done'
    add_report_probe "$root" nm-dev "$wait
nmcli -c no -t -f DEVICE,TYPE,STATE,CONNECTION dev"
    add_report_probe "$root" nm-con "$wait
nmcli -c no -t -f NAME,UUID,TYPE,DEVICE,FILENAME con show"
    add_report_probe "$root" nm-ip "$wait"'
for d in $(nmcli -c no -t -f DEVICE,TYPE dev | sed -n "s/:ethernet$//p"); do
    nmcli -c no -t -f GENERAL.DEVICE,GENERAL.HWADDR,GENERAL.CONNECTION,IP4.ADDRESS,IP4.GATEWAY dev show "$d"
done'
    add_report_probe "$root" routes "/usr/local/sbin/preroot-report --json ip -j -4 route"
}

# The ifupdown guest: networkd off, networking.service on, and the interfaces(5) file Debian
# installs (it sources interfaces.d/, where preroot's stanza file goes). Probes: which
# interfaces ifupdown brought up, and the routes.
extra_guest_setup_ifupdown() {
    local root=$1
    in_chroot "$root" systemctl disable systemd-networkd.service systemd-networkd.socket >/dev/null 2>&1
    in_chroot "$root" systemctl enable networking.service >/dev/null 2>&1
    mkdir -p "$root/etc/network/interfaces.d"
    cat > "$root/etc/network/interfaces" <<'ENI'
# interfaces(5) file used by ifup(8) and ifdown(8)
# Include files from /etc/network/interfaces.d:
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
ENI
    add_report_probe "$root" ifquery "ifquery --state; systemctl is-active networking.service"
    add_report_probe "$root" routes "/usr/local/sbin/preroot-report --json ip -j -4 route"
}

# The SELinux guest (issue 17): Debian's refpolicy (`selinux-policy-default`, SELINUXTYPE
# default) and selinux-basics, whose selinux-activate is *not* run (it edits a boot loader the
# guests do not have and schedules a relabel at boot): the kernel arguments turn SELinux on
# (`security=selinux selinux=1 enforcing=1`, tests/qemu_selinux.rs) and the tree is labelled
# here instead, with the guest's own setfiles, no policy loaded (as Ignition relabels a root
# from the initramfs). The config stays Debian's `SELINUX=permissive`: `enforcing=` on the
# command line wins (libselinux's selinux_init_load_policy). auditd keeps every AVC (the
# kernel's printk of audit records is rate-limited).
extra_guest_setup_selinux() {
    local root=$1
    grep -q '^SELINUXTYPE=default' "$root/etc/selinux/config" || die "no SELINUXTYPE=default"
    selinux_label_tree "$root"
}

# selinux_label_tree TREE: every file of TREE labelled from its own policy's file_contexts
# (setfiles chrooted into TREE: its libselinux and policy; libselinux sets labels through
# /proc/self/fd, so in_chroot's /proc is needed, and -e keeps the mounted /proc, /sys and /dev
# out of the walk). setfiles writes a label only where it differs, so a tree copied with hard
# links from a labelled one changes only in its new files.
selinux_label_tree() {
    in_chroot "$1" /usr/sbin/setfiles -F -e /proc -e /sys -e /dev \
        /etc/selinux/default/contexts/files/file_contexts / || die "setfiles in $1 failed"
}

# extra_build_setup_NAME TREE: run by ensure_build on the build's copy of the extra guest NAME,
# after preroot, the initramfs and the probes went in and before the disks are made.
extra_build_setup_selinux() {
    selinux_label_tree "$1"
}

# ensure_extra_guest NAME: prints the path of the extra guest NAME's tree, building it first
# if needed (apt in a chroot of a copy of the base tree; flock against concurrent callers).
ensure_extra_guest() {
    local name=$1 base dir pkgs setup=extra_guest_setup_$1
    base=$(ensure_guest) || exit 1
    pkgs=$(extra_guest_packages "$name") || exit 1
    dir="$PREROOT_QEMU_CACHE/guest-$name-$( { guest_key; echo "$pkgs"; declare -f ensure_extra_guest "$setup" 2>/dev/null; } | sha256sum | cut -c1-16)"
    (
        exec 9>"$dir.lock"
        flock 9
        [ -e "$dir/done" ] && exit 0
        rm -rf "$dir" && mkdir -p "$dir"
        cp -a "$base" "$dir/rootfs"
        local root=$dir/rootfs
        cp /etc/resolv.conf "$root/etc/resolv.conf"
        printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
        # debootstrap's resolver cannot install everything (virtual packages): apt can.
        in_chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $pkgs" \
            > "$dir/apt.log" 2>&1 || { tail -20 "$dir/apt.log" >&2; exit 1; }
        rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
        if declare -F "$setup" >/dev/null; then "$setup" "$root" || exit 1; fi
        in_chroot "$root" apt-get clean
        rm -rf "$root/var/lib/apt/lists/"* "$root/usr/share/doc/"* "$root/usr/share/man/"*
        touch "$dir/done"
    ) >&2 || die "$name guest build failed"
    echo "$dir/rootfs"
}

# sentinel: 64 MiB of known content (`preroot-fault` builds carry it as
# /var/lib/preroot-sentinel; check_disk compares it after a power cut).
sentinel() {
    head -c 64M < <(yes 'preroot sentinel: this line must survive a power cut during growth')
}

# ensure_build [preroot|nopreroot|cloudinit|preroot+EXTRA|preroot-fault|preroot-deb]: prints a directory holding
# initramfs.img, root-gpt.raw, root-mbr.raw (not for preroot+EXTRA) and configdrive.iso. `preroot` (the default) is the
# current preroot (built with `make static`, which honours $CARGO_TARGET_DIR) in the initramfs
# and on the disk; `nopreroot` the same guest without it; `cloudinit` the cloud-init guest
# without preroot; `preroot+EXTRA` preroot on the extra guest EXTRA (ensure_extra_guest);
# `preroot-fault` preroot built with the `fault-injection` feature, its disks carrying a
# sentinel file (the power-cut tests, tests/qemu_faults.rs); `preroot-deb` the current preroot
# as the preroot and preroot-dracut .debs, installed with dpkg (build_initramfs --deb). Cached under $PREROOT_QEMU_CACHE/build-<variant>-<key>, the key covering the guest
# tree, the binary, the dracut module and this file; flock against concurrent callers.
ensure_build() {
    local variant=${1:-preroot} opts=() tree
    case $variant in
        preroot) tree=$(ensure_guest) || exit 1 ;;
        nopreroot) tree=$(ensure_guest) || exit 1; opts=(--no-preroot) ;;
        cloudinit) tree=$(ensure_extra_guest cloudinit) || exit 1; opts=(--no-preroot) ;;
        preroot+*) tree=$(ensure_extra_guest "${variant#preroot+}") || exit 1 ;;
        # Installed from the .debs with dpkg and built by the guest's dracut -f (issue 18).
        preroot-deb) tree=$(ensure_guest) || exit 1 ;;
        preroot-fault) tree=$(ensure_guest) || exit 1
            # The fault-injection build (PREROOT_FAULT_AFTER_WRITE, PREROOT_FAULT_HOLD) in a
            # target dir of its own, so `make static` elsewhere never ships it by mistake.
            export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_DIR/target}/fault-injection"
            export STATIC_FEATURES=fault-injection ;;
        *) die "ensure_build: unknown variant $variant" ;;
    esac
    make -s -C "$REPO_DIR" static >&2 || die "make static failed"
    local bin="${CARGO_TARGET_DIR:-$REPO_DIR/target}/x86_64-unknown-linux-musl/release/preroot"
    local key dir
    key=$( { echo "$tree"; cat "$bin" "$QEMU_DIR/lib.sh" "$REPO_DIR/Makefile"; harness_files; \
             find "$REPO_DIR/dracut" "$REPO_DIR/systemd" -type f | sort | xargs cat
             [ "$variant" != preroot-deb ] || find "$REPO_DIR/packaging/debian" -type f | sort | xargs cat; } \
           | sha256sum | cut -c1-16)
    dir=$PREROOT_QEMU_CACHE/build-$variant-$key
    cache_touch "$dir"
    (
        exec 9>"$dir.lock"
        flock 9
        [ -e "$dir/done" ] && exit 0
        local t0; t0=$(date +%s)
        rm -rf "$dir" && mkdir -p "$dir"
        if [ "$variant" = preroot-deb ]; then
            build_debs "$dir/pkg"
            opts=(--deb "$dir/pkg/deb")
        fi
        build_initramfs "$dir/initramfs.img" --tree "$tree" "${opts[@]}"
        local build_setup=extra_build_setup_${variant#preroot+}
        if [[ $variant == preroot+* ]] && declare -F "$build_setup" >/dev/null; then
            "$build_setup" "$dir/initramfs.img.tree" || exit 1
        fi
        # The fault tests check that data survives a power cut during growth: a known file.
        if [ "$variant" = preroot-fault ]; then
            sentinel > "$dir/initramfs.img.tree/var/lib/preroot-sentinel"
        fi
        make_root_disk "$dir/root-gpt.raw" gpt "$dir/initramfs.img.tree"
        # Scenario (c), the MBR disk, boots only the plain and fault builds: an extra guest's
        # build skips it (one mkfs of the whole tree less, about 20 s under load).
        if [[ $variant != preroot+* ]]; then
            make_root_disk "$dir/root-mbr.raw" mbr "$dir/initramfs.img.tree"
        fi
        rm -rf "$dir/initramfs.img.tree"
        make_configdrive "$dir/configdrive.iso"
        echo $(( $(date +%s) - t0 )) > "$dir/build-seconds"
        touch "$dir/done"
        log "built $dir in $(cat "$dir/build-seconds") s"
    ) || die "build of $dir failed"
    # Builds of other binaries go once unused for an hour (cache_prune; 16 hex digits: not
    # `build-preroot-fault-*` for `preroot`).
    cache_prune "$dir" "$PREROOT_QEMU_CACHE/build-$variant-"????????????????
    echo "$dir"
}
