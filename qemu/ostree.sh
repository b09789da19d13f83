#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# qemu/ostree.sh: the ostree guest (issue 7, "in a real boot"): the Debian guest with Debian's
# `ostree` and `ostree-boot`, committed to an ostree repository and deployed into the sysroot
# of a GPT disk, booted with the deployment's `ostree=` like a bootloader reading its BLS entry.
#
#   qemu/ostree.sh build            build what is missing; print the cached directory
#   qemu/ostree.sh run OUTDIR       the same, then one boot (qemu/scenario.sh ostree OUTDIR)
#
# Sourced by scenario.sh for `ensure_ostree_build`. The directory
# ($PREROOT_QEMU_CACHE/ostree-<key>, key: the ostree guest tree, the preroot binary, the dracut
# module, lib.sh, this file, the report and its probes) holds:
#   vmlinuz, initramfs.img  the kernel and initramfs ostree copied to /boot/ostree/debian-<bootcsum>/
#                           (the initramfs: dracut's systemd modules, `ostree`, `preroot`)
#   root-gpt.raw            GPT, one ext4 partition labelled root holding the physical sysroot:
#                           /ostree/repo, /ostree/deploy/debian/{deploy/<csum>.{0,1},var},
#                           /boot/{ostree,loader.N}; no /etc at its top
#   kargs                   the `options` of the default deployment's BLS entry (with ostree=)
#   configdrive.iso         make_configdrive's default
#   layout                  facts for the test and the README: sizes, deployments, commit
# Two deployments of the same commit: the default (booted) and a rollback, so a write into the
# wrong deployment shows. Needs the host's `ostree` (qemu/host-deps.sh) and root; never mounts.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OSTREE_OS=debian
OSTREE_REF=debian/bookworm/x86_64/preroot-qemu

# ostree_layout TREE KVER INITRAMFS: turns a Debian root tree into what `ostree commit` of an
# operating system expects (ostree's "Adapting existing systems" and Debian's
# README.Debian): the kernel and initramfs in /usr/lib/modules/KVER/ (where `ostree admin
# deploy` looks for them), /etc moved to /usr/etc (deploy makes each deployment's /etc from
# it), /var empty (each stateroot has its own; systemd-tmpfiles fills it at boot), the
# directories that hold state as links into /var, /ostree -> sysroot/ostree, and an empty
# /sysroot for the physical root (ostree-prepare-root mounts it there).
ostree_layout() {
    local t=$1 kver=$2 initramfs=$3
    install -m 0644 "/boot/vmlinuz-$kver" "$t/usr/lib/modules/$kver/vmlinuz"
    install -m 0644 "$initramfs" "$t/usr/lib/modules/$kver/initramfs.img"
    rm -rf "$t/boot" && mkdir "$t/boot"
    [ -e "$t/usr/etc" ] && die "ostree_layout: $t/usr/etc already exists"
    mv "$t/etc" "$t/usr/etc"
    rm -rf "$t/var" && mkdir -m 0755 "$t/var"
    local d
    for d in home opt srv mnt media; do
        rm -rf "${t:?}/$d" && ln -s "var/$d" "$t/$d"
    done
    rm -rf "$t/root" && ln -s var/roothome "$t/root"
    rm -rf "$t/ostree" "$t/sysroot" && ln -s sysroot/ostree "$t/ostree" && mkdir "$t/sysroot"
    # Mount points only: nothing of the build machine may end up in the commit.
    for d in dev proc sys run tmp; do
        rm -rf "${t:?}/$d" && mkdir "$t/$d"
    done
    chmod 1777 "$t/tmp"
    cat > "$t/usr/lib/tmpfiles.d/preroot-qemu-ostree.conf" <<'CONF'
# The directories the ostree layout links into /var (qemu/ostree.sh).
d /var/home 0755 root root -
d /var/roothome 0700 root root -
d /var/opt 0755 root root -
d /var/srv 0755 root root -
d /var/mnt 0755 root root -
d /var/media 0755 root root -
CONF
}

# The cache key: the ostree guest tree, the preroot binary, what builds the initramfs and disk,
# the report and its probes the commit carries (harness_files).
ostree_key() {
    local tree=$1 bin=$2
    { echo "$tree"; cat "$bin" "$QEMU_DIR/lib.sh" "$QEMU_DIR/ostree.sh" "$REPO_DIR/Makefile";
      harness_files; find "$REPO_DIR/dracut" -type f | sort | xargs cat; } | sha256sum | cut -c1-16
}

# ensure_ostree_build: prints the cached directory (above), building it first if needed
# (flock against concurrent callers).
ensure_ostree_build() {
    command -v ostree >/dev/null || die "the host's ostree is missing: run qemu/host-deps.sh"
    local tree kver bin key dir
    tree=$(ensure_extra_guest ostree) || exit 1
    kver=$(qemu_kver)
    make -s -C "$REPO_DIR" static >&2 || die "make static failed"
    bin="${CARGO_TARGET_DIR:-$REPO_DIR/target}/x86_64-unknown-linux-musl/release/preroot"
    key=$(ostree_key "$tree" "$bin")
    dir=$PREROOT_QEMU_CACHE/ostree-$key
    cache_touch "$dir"
    # In the background and waited for: a subshell on the left of `||` would run with errexit
    # off, and a failed step must not leave a directory marked done.
    (
        set -e
        exec 9>"$dir.lock"
        flock 9
        [ -e "$dir/done" ] && exit 0
        local t0 work sysroot repo
        t0=$(date +%s)
        rm_sysroot "$dir" && mkdir -p "$dir"
        # preroot and the dracut modules (ostree's 98ostree brings ostree-prepare-root.service,
        # wanted by initrd-root-fs.target) in a chroot of a copy of the ostree guest.
        build_initramfs "$dir/initramfs.img" --tree "$tree" --add ostree
        work=$dir/initramfs.img.tree
        ostree_layout "$work" "$kver" "$dir/initramfs.img"
        sysroot=$dir/sysroot repo=$dir/sysroot/ostree/repo
        mkdir -p "$sysroot"
        ostree admin init-fs "$sysroot" >&2
        ostree admin os-init --sysroot="$sysroot" "$OSTREE_OS" >&2
        # A bare repository (init-fs makes it so): owners, modes and xattrs as in the tree.
        ostree --repo="$repo" commit --branch="$OSTREE_REF" --tree=dir="$work" \
            --subject="preroot QEMU guest" --no-bindings > "$dir/commit"
        rm -rf "$work"
        # The kernel arguments a bootloader would pass, plus ostree= (deploy adds it).
        local kargs=() a
        for a in $(kernel_args); do kargs+=(--karg="$a"); done
        # Twice: the second deployment becomes the default, the first the rollback.
        ostree admin deploy --sysroot="$sysroot" --os="$OSTREE_OS" "${kargs[@]}" "$OSTREE_REF" >&2
        ostree admin deploy --sysroot="$sysroot" --os="$OSTREE_OS" "${kargs[@]}" "$OSTREE_REF" >&2
        ostree admin status --sysroot="$sysroot" > "$dir/status" 2>&1 || true
        # The default deployment's BLS entry: the highest `version`.
        local entry
        entry=$(grep -l '^version' "$sysroot"/boot/loader/entries/*.conf \
            | while read -r f; do echo "$(awk '$1 == "version" {print $2}' "$f") $f"; done \
            | sort -n | tail -1 | cut -d' ' -f2-)
        [ -n "$entry" ] || die "no BLS entry in $sysroot/boot/loader/entries"
        cp "$entry" "$dir/bls-entry.conf"
        sed -n 's/^options //p' "$entry" > "$dir/kargs"
        grep -q 'ostree=/ostree/boot' "$dir/kargs" || die "BLS entry without ostree=: $entry"
        local kpath ipath
        kpath=$(awk '$1 == "linux" {print $2}' "$entry")
        ipath=$(awk '$1 == "initrd" {print $2}' "$entry")
        # The entry's paths are relative to /boot (a separate /boot would be its own root).
        [ -e "$sysroot/boot$kpath" ] || kpath=/boot$kpath
        cp "$sysroot/boot${kpath#/boot}" "$dir/vmlinuz"
        cp "$sysroot/boot${ipath#/boot}" "$dir/initramfs.img"
        [ -e "$sysroot/etc" ] && die "the physical sysroot has an /etc before the boot"
        ROOT_MIB=${OSTREE_ROOT_MIB:-1400} DISK_MIB=${OSTREE_DISK_MIB:-1536} \
            make_root_disk "$dir/root-gpt.raw" gpt "$sysroot"
        {
            echo "commit $(cat "$dir/commit")"
            echo "sysroot_kib $(du -sk "$sysroot" | cut -f1)"
            echo "sysroot_apparent_kib $(du -sk --count-links "$sysroot" | cut -f1)"
            echo "image_allocated_kib $(du -k "$dir/root-gpt.raw" | cut -f1)"
            echo "initramfs_bytes $(stat -c %s "$dir/initramfs.img")"
            ls -d "$sysroot"/ostree/deploy/"$OSTREE_OS"/deploy/*.[0-9] | sed 's|.*/|deployment |'
        } > "$dir/layout"
        rm_sysroot "$sysroot"
        make_configdrive "$dir/configdrive.iso"
        echo $(( $(date +%s) - t0 )) > "$dir/build-seconds"
        touch "$dir/done"
        log "built $dir in $(cat "$dir/build-seconds") s"
    ) >&2 &
    wait $! || die "build of $dir failed"
    cache_prune "$dir" "$PREROOT_QEMU_CACHE"/ostree-????????????????
    echo "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case ${1:-} in
        build) ensure_ostree_build ;;
        run) exec "$QEMU_DIR/scenario.sh" ostree "${2:?usage: ostree.sh run OUTDIR}" ;;
        *) die "usage: ostree.sh build | run OUTDIR" ;;
    esac
fi
