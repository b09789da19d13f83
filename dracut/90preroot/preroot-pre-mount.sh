#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# dracut pre-mount hook (initramfs without systemd): preroot's fetch and grow phases. A
# failure is logged and the boot goes on.
/usr/bin/preroot run --phase fetch || warn "preroot: fetch phase failed"
/usr/bin/preroot run --phase grow || warn "preroot: grow phase failed"
