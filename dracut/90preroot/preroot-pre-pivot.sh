#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# dracut pre-pivot hook (initramfs without systemd): preroot's sysroot phase, with the root
# filesystem mounted at $NEWROOT.
/usr/bin/preroot run --phase sysroot || warn "preroot: sysroot phase failed"
