#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# dracut module for preroot: runs `preroot run --phase fetch|grow|sysroot` in the initramfs.
# With systemd in the initramfs: one unit per phase (preroot-*.service). Without it: the
# classic hooks (pre-mount for fetch and grow, pre-pivot for sysroot). See dracut.modules(7).

# Included only when asked for: `dracut --add preroot`, or add_dracutmodules+=" preroot " in a
# dracut.conf.d file (make install puts one in place).
check() {
    require_binaries preroot || return 1
    return 255
}

# systemd is optional; the hooks serve an initramfs without it.
depends() {
    return 0
}

# Drivers a portable cloud image needs to see its disks and NICs on KVM (virtio), Xen,
# Hyper-V, VMware, AWS (ena, nvme), GCE (gve) and common bare metal (e1000/e1000e). In
# hostonly mode dracut keeps only those the building host uses; a missing one is skipped.
# The config drive is often a CD-ROM on an emulated AHCI/IDE controller (QEMU's q35 and
# i440fx, OpenStack's default), so the controller and sr_mod come too. No isofs or vfat:
# preroot reads config drives in user space.
installkernel() {
    instmods virtio_pci virtio_net virtio_blk virtio_scsi ahci ata_piix sd_mod sr_mod \
        xen-netfront xen-blkfront hv_vmbus hv_netvsc hv_storvsc \
        nvme ena gve vmxnet3 vmw_pvscsi e1000 e1000e
}

install() {
    # A static binary: nothing else to pull in.
    inst_binary /usr/bin/preroot
    # Growing a root on LUKS2 resizes the open mapping with cryptsetup (docs/grow.md); with
    # systemd, dracut's crypt module unlocks through systemd-cryptsetup and leaves it out.
    if dracut_module_included "crypt"; then
        inst_multiple -o cryptsetup
    fi
    if dracut_module_included "systemd"; then
        local phase
        for phase in fetch grow sysroot; do
            inst_simple "$moddir/preroot-$phase.service" \
                "${systemdsystemunitdir:-/usr/lib/systemd/system}/preroot-$phase.service"
            $SYSTEMCTL -q --root "$initdir" add-wants initrd.target "preroot-$phase.service"
        done
    else
        inst_hook pre-mount 50 "$moddir/preroot-pre-mount.sh"
        inst_hook pre-pivot 50 "$moddir/preroot-pre-pivot.sh"
    fi
}
