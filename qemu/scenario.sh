#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# scenario.sh NAME OUTDIR: one boot of a scenario on a fresh overlay; the guest's report ends
# up in OUTDIR/report.log (console in OUTDIR/console.log). Exit status: QEMU's (124: timeout).
#   gpt-configdrive  (a) GPT disk, ext4 root, OpenStack config-drive ISO as a CD-ROM, DMI as
#                    Nova sets it
#   mbr-configdrive  (c) MBR disk, ext4 root, the same config drive, DMI naming no cloud
#   ec2              (a)'s disk, DMI "Amazon EC2", no medium; 169.254.169.254:80 forwarded to
#                    127.0.0.1:$META_PORT (the caller's metadata server)
#   azure            (a)'s disk, Azure's DMI (chassis asset tag 7783-7084-3265-9085-8269-3286-77,
#                    -smbios type=3), its provisioning medium (UDF, AZURE_OVF or the fixture's
#                    ovf-env.xml) as a CD-ROM; IMDS (169.254.169.254:80) and the wire server
#                    (168.63.129.16:80) forwarded to 127.0.0.1:$META_PORT and :$WIRE_PORT
#   ostree           an ostree deployment (qemu/ostree.sh): the kernel, initramfs and kernel
#                    arguments (ostree=) of its BLS entry, (a)'s config drive and DMI; VARIANT
#                    does not apply
# Env: VARIANT=preroot|nopreroot|cloudinit|preroot+EXTRA|preroot-fault|preroot-deb (the guest and initramfs, see ensure_build in
# lib.sh; default preroot), PREROOT_QEMU_CACHE, QEMU_ACCEL=kvm, QEMU_TIMEOUT (s, default 420), KARGS (extra kernel
# arguments), HOSTFWD (a host-to-guest forward, netdev_args in lib.sh), DISK_SIZE (the overlay's size, default 3G: larger than the 1.5 GiB image), BOOTS
# (default 1: boots on the same disk, below), CONFIGDRIVE (an ISO instead of the build's, e.g.
# from make_configdrive with CD_UUID / CD_USER_DATA).
# Power cuts (tests/qemu_faults.rs): KILL_ON=REGEX SIGKILLs the first boot's QEMU when REGEX
# (ERE) shows on its console, KILL_DELAY_MS (default 0) later (kill_on in lib.sh), then
# checks the disk from the host into OUTDIR/disk-check.env (check_disk) and goes on with the
# next boot on the same disk; KARGS_FIRST are kernel arguments for the first boot only (e.g.
# `systemd.setenv=PREROOT_FAULT_AFTER_WRITE=1 systemd.setenv=PREROOT_FAULT_HOLD=1` with
# VARIANT=preroot-fault).
# Per boot K (new instances on the same disk, tests/qemu_apply.rs): CONFIGDRIVE_K replaces
# the config drive from boot K on, KARGS_K is added for boot K only; make_configdrive takes
# CD_UUID / CD_HOSTNAME / CD_USER_DATA.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NAME=${1:?usage: scenario.sh NAME OUTDIR}
OUT=${2:?usage: scenario.sh NAME OUTDIR}
mkdir -p "$OUT"
KVER=$(qemu_kver)
if [ "$NAME" = ostree ]; then
    . "$QEMU_DIR/ostree.sh"
    BUILD=$(ensure_ostree_build)
    args=(-kernel "$BUILD/vmlinuz" -initrd "$BUILD/initramfs.img")
    append="$(cat "$BUILD/kargs") ${KARGS:-}"
else
    BUILD=$(ensure_build "${VARIANT:-preroot}")
    args=(-kernel "/boot/vmlinuz-$KVER" -initrd "$BUILD/initramfs.img")
    append=$(kernel_args "${KARGS:-}")
fi
# In use until the last boot is over (lib.sh cache_hold): its disk backs every boot's overlay.
cache_hold "$BUILD"
cdrom=""
case $NAME in
    gpt-configdrive|mbr-configdrive|ostree)
        case $NAME in ostree) table=gpt ;; *) table=${NAME%%-*} ;; esac
        make_overlay "$BUILD/root-$table.raw" "$OUT/disk.qcow2" "${DISK_SIZE:-3G}"
        # (a) as Nova: DMI names OpenStack, and the config drive is a CD-ROM on the AHCI
        # controller. (c) plain QEMU DMI: only the medium's label says OpenStack, so preroot
        # must find a CD-ROM that nothing announced (its driver loads after the root disk's).
        [ "$table" = gpt ] && args+=(-smbios "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova")
        cdrom=${CONFIGDRIVE:-$BUILD/configdrive.iso}
        args+=(-netdev "$(netdev_args)") ;;
    azure)
        [ -n "${META_PORT:-}" ] && [ -n "${WIRE_PORT:-}" ] ||
            die "azure needs META_PORT and WIRE_PORT (the test's IMDS and wire server on 127.0.0.1)"
        make_overlay "$BUILD/root-gpt.raw" "$OUT/disk.qcow2" "${DISK_SIZE:-3G}"
        make_azure_medium "$OUT/ovf.iso" "${AZURE_OVF:-$REPO_DIR/tests/fixtures/platforms/azure/ovf-env.xml}"
        cdrom=$OUT/ovf.iso
        # Hyper-V's DMI as Azure VMs show it; the chassis asset tag is what says Azure.
        args+=(-smbios "type=1,manufacturer=Microsoft Corporation,product=Virtual Machine"
               -smbios "type=3,manufacturer=Microsoft Corporation,asset=7783-7084-3265-9085-8269-3286-77"
               -netdev "$(netdev_args_azure "$META_PORT" "$WIRE_PORT")") ;;
    ec2)
        [ -n "${META_PORT:-}" ] || die "ec2 needs META_PORT (the metadata server on 127.0.0.1)"
        make_overlay "$BUILD/root-gpt.raw" "$OUT/disk.qcow2" "${DISK_SIZE:-3G}"
        args+=(-smbios "type=1,manufacturer=Amazon EC2,product=t3.micro"
               -netdev "$(netdev_args "$META_PORT")") ;;
    *) die "unknown scenario $NAME" ;;
esac
args+=(-drive "file=$OUT/disk.qcow2,if=virtio,format=qcow2,cache=unsafe"
       -device "virtio-net-pci,netdev=n0,mac=$GUEST_MAC")
# BOOTS=N boots N times on the same disk (a re-boot of the same instance): the first boot's
# files are in OUT, boot K's (K >= 2) in OUT/bootK. Stops at the first failing boot.
# Per boot K: CONFIGDRIVE_K replaces the config drive from boot K on (a new instance on the
# same disk), KARGS_K is added to KARGS for that boot only.
rc=0
for ((k = 1; k <= ${BOOTS:-1}; k++)); do
    dir=$OUT; [ "$k" -gt 1 ] && dir=$OUT/boot$k
    cd_k=CONFIGDRIVE_$k kargs_k=KARGS_$k boot_args=("${args[@]}")
    [ -n "${!cd_k:-}" ] && cdrom=${!cd_k}
    [ -n "${cdrom:-}" ] && boot_args+=(-drive "file=$cdrom,media=cdrom,readonly=on")
    log "booting $NAME${BOOTS:+ ($k of $BOOTS)} (output in $dir)"
    kargs="$append ${!kargs_k:-}"
    [ "$k" = 1 ] && kargs="$kargs ${KARGS_FIRST:-}"
    if [ "$k" = 1 ] && [ -n "${KILL_ON:-}" ]; then
        mkdir -p "$dir"; rm -f "$dir/qemu.pid" "$dir/wall-ms" "$dir/killed" "$dir/console.log"
        boot_guest "$dir" "${QEMU_TIMEOUT:-420}" "${boot_args[@]}" -pidfile "$dir/qemu.pid" \
            -append "$kargs" &
        bootpid=$!
        kill_on "$dir" "$KILL_ON" "${KILL_DELAY_MS:-0}" || log "$NAME: the guest ended before /$KILL_ON/ showed"
        wait "$bootpid" || rc=$?
        log "$NAME: boot 1: qemu exit $rc after $(cat "$dir/wall-ms") ms"
        if [ ! -e "$dir/killed" ]; then [ "$rc" = 0 ] && rc=3; break; fi
        rc=0
        check_disk "$OUT/disk.qcow2" "${table:-gpt}" "$dir/disk-check.env"
        log "$NAME: after the power cut: $(tr '\n' ' ' < "$dir/disk-check.env")"
        continue
    fi
    boot_guest "$dir" "${QEMU_TIMEOUT:-420}" "${boot_args[@]}" -append "$kargs" || rc=$?
    log "$NAME: boot $k: qemu exit $rc after $(cat "$dir/wall-ms") ms"
    [ "$rc" = 0 ] || break
done
rm -f "$OUT/disk.qcow2"
exit $rc
