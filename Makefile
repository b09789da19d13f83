# preroot: the README's commands. Each target installs what it needs (Debian packages, the
# rustup musl target), so a fresh Debian machine needs nothing but rustup and make.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
MUSL := x86_64-unknown-linux-musl
# Honours $CARGO_TARGET_DIR (the QEMU tests build the static binary in their own target dir).
STATIC := $(or $(CARGO_TARGET_DIR),target)/$(MUSL)/release/preroot
# Tools the tests use to build real media (ISO9660, FAT, ext4, GPT) and loop devices; the disk
# tests also make MBR tables (fdisk: sfdisk), xfs (xfsprogs) and compare with growpart
# (cloud-guest-utils); the network tests build namespace worlds (ip, dnsmasq as DHCP server);
# busybox-static is the /bin/sh of the root trees `preroot apply --root` runs scripts in.
APT_PACKAGES := xorriso genisoimage dosfstools mtools gdisk fdisk e2fsprogs xfsprogs util-linux \
	cloud-guest-utils systemd iproute2 dnsmasq-base busybox-static
DEMO := target/demo

.PHONY: all demo demo-offline check test lint nopanic fuzz-smoke fuzz-deps static size install deps deps-apt deps-rust deps-qemu qemu bench clean

all: static

## make demo: scenario (b) of the QEMU harness end to end (qemu/atomic.sh): the Fedora-Atomic-like
## disk (GPT, ext4 /boot, LVM VG atomicos with an xfs root LV, Ironic's config-2 partition at the
## disk end) built in a builder guest and cached, then PXE-booted like Ironic (iPXE over QEMU's
## TFTP, user networking restricted to the machine); prints what preroot did in the initramfs.
## Needs root; the first run builds the guest (minutes), later ones reuse the cache.
demo: deps static
	qemu/atomic.sh demo $(DEMO)/atomic

## make demo-offline: no VM, no root: the context preroot reads from the bundled sample config
## drive packed into an ISO9660 image (no mount).
demo-offline: deps-apt static
	@rm -rf $(DEMO)/offline && mkdir -p $(DEMO)/offline/state
	xorriso -as mkisofs -quiet -R -J -V config-2 -o $(DEMO)/offline/config-2.iso tests/data/sample-configdrive
	@echo "--- preroot context --from configdrive:$(DEMO)/offline/config-2.iso --root tests/data/sample-machine"
	@$(STATIC) context --from configdrive:$(DEMO)/offline/config-2.iso \
		--root tests/data/sample-machine --state-dir $(DEMO)/offline/state
	@echo "--- secrets handed to userspace (mode 0600), never printed:"
	@ls -l $(DEMO)/offline/state
	@echo "--- binary: $$(stat -c %s $(STATIC)) bytes ($(STATIC))"

## make check: every test, the QEMU boots (tests/qemu.rs) included. Under PREROOT_REQUIRE_ALL=1
## (.ci/run) tests that need root, loop devices, QEMU or tools fail instead of skipping.
check: deps lint test nopanic fuzz-smoke size

# The test build has the fault-injection feature (PREROOT_FAULT_AFTER_WRITE, tests/disk.rs);
# the release build (make static) never does.
TEST_FEATURES := --features fault-injection

## make qemu: only the QEMU boot tests (qemu/README.md): builds or reuses the cached guest
## (PREROOT_QEMU_CACHE, default /var/cache/preroot-qemu), boots each scenario under TCG.
qemu: deps
	$(CARGO) test $(TEST_FEATURES) --test qemu --test qemu_atomic --test qemu_ostree --test qemu_render --test qemu_apply --test qemu_faults --test qemu_atomic_faults -- --nocapture

## make bench: the boot benchmark against cloud-init (not a test; qemu/README.md).
bench: deps
	qemu/bench

test:
	$(CARGO) test --all-targets $(TEST_FEATURES)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets $(TEST_FEATURES) -- -D warnings

## The #[no_panic] proofs only hold in an optimized build that unwinds; this links them.
nopanic:
	$(CARGO) build --profile nopanic --features nopanic --example nopanic

## Every fuzz target (fuzz/, libFuzzer through cargo fuzz on the stable toolchain with
## RUSTC_BOOTSTRAP=1) for FUZZ_SECONDS each, seeded from ../shared/fixtures (18 targets x 8 s:
## about 3 minutes with the corpus loads). A crash fails the build and leaves its input in
## fuzz/artifacts/. fuzz/run-long.sh runs them long (fuzz/README.md).
FUZZ_SECONDS ?= 8
FUZZ_TARGETS := $(shell sed -n 's/^name = "\(.*\)"/\1/p' fuzz/Cargo.toml | grep -v preroot-fuzz)
fuzz-smoke: fuzz-deps
	cd fuzz && ./seed.sh
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build -s none
	@set -o pipefail; cd fuzz && for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none $$t -- -max_total_time=$(FUZZ_SECONDS) \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | \
			awk -v t=$$t '/^stat::number_of_executed_units/ {print "fuzz " t ": " $$2 " execs, no crash"} \
				/ERROR|panicked|deadly signal|Test unit written/ {print; bad=1} END {exit bad}' || exit 1; \
	done

fuzz-deps: deps-rust
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

# STATIC_FEATURES=fault-injection: the QEMU fault tests' build (qemu/lib.sh `preroot-fault`,
# in its own CARGO_TARGET_DIR); never for a release.
static: deps-rust
	$(CARGO) build --release --target $(MUSL) $(if $(STATIC_FEATURES),--features $(STATIC_FEATURES))

size: static
	@bytes=$$(stat -c %s $(STATIC)); \
	echo "size: $(STATIC) is $$bytes bytes ($$(( bytes / 1024 )) KiB), static musl, opt-level=z, LTO, stripped"; \
	if ldd $(STATIC) 2>&1 | grep -q '=>'; then echo "size: $(STATIC) is not static"; exit 1; fi

## make install DESTDIR=ROOT: the static binary, the dracut module and its units, a
## dracut.conf.d file that includes the module in every initramfs built in ROOT, and
## preroot-apply.service for the booted system (enable it: systemctl enable preroot-apply).
MODDIR := $(DESTDIR)/usr/lib/dracut/modules.d/90preroot
install: static
	install -D -m 0755 $(STATIC) $(DESTDIR)/usr/bin/preroot
	install -d $(MODDIR) $(DESTDIR)/usr/lib/dracut/dracut.conf.d
	install -m 0755 dracut/90preroot/module-setup.sh dracut/90preroot/preroot-pre-mount.sh \
		dracut/90preroot/preroot-pre-pivot.sh $(MODDIR)/
	install -m 0644 dracut/90preroot/preroot-fetch.service dracut/90preroot/preroot-grow.service \
		dracut/90preroot/preroot-sysroot.service $(MODDIR)/
	install -m 0644 dracut/90-preroot.conf $(DESTDIR)/usr/lib/dracut/dracut.conf.d/90-preroot.conf
	install -D -m 0644 systemd/preroot-apply.service $(DESTDIR)/usr/lib/systemd/system/preroot-apply.service

deps: deps-apt deps-rust deps-qemu

# QEMU, debootstrap, dracut, the host kernel the guests boot ... (only those missing).
deps-qemu:
	@qemu/host-deps.sh

deps-rust:
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL) || rustup target add $(MUSL)

deps-apt:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

clean:
	$(CARGO) clean
	rm -rf $(DEMO)
