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
# busybox-static is the /bin/sh of the root trees `preroot apply --root` runs scripts in; udftools
# (mkudffs) makes empty UDF volumes of each revision for tests/media_udf.rs; python3-selinux
# (libselinux's own lookup) and attr (getfattr) check SELinux labels; GNU time measures the peak
# RSS of each hostile input in tests/hostile.rs; sudo's visudo checks the sudoers drop-in apply
# writes (tests/apply.rs); btrfs-progs and cryptsetup-bin make the btrfs filesystems and LUKS2
# headers tests/disk.rs and tests/luks.rs grow and read (no device-mapper needed to format).
APT_PACKAGES := xorriso genisoimage dosfstools mtools gdisk fdisk e2fsprogs xfsprogs util-linux \
	cloud-guest-utils systemd iproute2 dnsmasq-base busybox-static udftools python3-selinux attr \
	time sudo btrfs-progs cryptsetup-bin \
	pkg-config dracut-core rpm rpmlint lintian dpkg-dev debhelper groff-base man-db rpm2cpio cpio git
# The packaging (issue 18, packaging/README.md): pkg-config answers where dracut and systemd
# look for modules and units (dracut-core's dracut.pc, systemd's systemd.pc); rpm (Debian's
# rpmbuild), rpmlint, lintian, dpkg-dev and debhelper build and check the packages in
# tests/packages.rs, rpm2cpio and cpio unpack the RPM; groff and man-db check the man pages
# (groff -ww, man -l); git names the commit (build.rs) and cuts `make dist`.
DEMO := target/demo

.PHONY: dist man rpm deb packages offline-packages install-files install-doc all demo demo-offline check structure test lint nopanic fuzz-smoke fuzz-deps static size install deps deps-apt deps-rust deps-qemu qemu bench clean

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

## make check: every test, the QEMU boots (tests/qemu.rs) included. `static` comes before
## `test`: tests/packages.rs packages that binary rather than building it again. Under PREROOT_REQUIRE_ALL=1
## (.ci/run) tests that need root, loop devices, QEMU or tools fail instead of skipping.
check: deps lint structure static test nopanic fuzz-smoke size

# The test build has the fault-injection feature (PREROOT_FAULT_AFTER_WRITE, tests/disk.rs);
# the release build (make static) never does.
TEST_FEATURES := --features fault-injection

## make qemu: only the QEMU boot tests (qemu/README.md): builds or reuses the cached guest
## (PREROOT_QEMU_CACHE, default /var/cache/preroot-qemu), boots each scenario under TCG.
qemu: deps
	$(CARGO) test $(TEST_FEATURES) --test qemu --test qemu_atomic --test qemu_ostree --test qemu_render --test qemu_apply --test qemu_faults --test qemu_atomic_faults --test qemu_azure --test qemu_selinux --test qemu_storage -- --nocapture

## make bench: the boot benchmark against cloud-init (not a test; qemu/README.md).
bench: deps
	qemu/bench

test:
	$(CARGO) test --all-targets $(TEST_FEATURES)

## make structure: the module graph (layers, circles, upward imports) and the functions over
## 150 lines, for the log; it does not gate (issue 15 set the goals: no circle, none over 150).
structure:
	@tools/modgraph | sed -n '1,/^imports back up/p'
	@tools/fnlen

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
			awk -v t=$$t '/^stat::number_of_executed_units/ {n=$$2} \
				/ERROR|panicked|deadly signal|Test unit written/ {print; bad=1} \
				END {print "fuzz " t ": " n " execs, " (bad ? "CRASHED" : "no crash"); exit bad}' || exit 1; \
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
## Directories are those of this machine's dracut and systemd (pkg-config), or set on the
## command line (the RPM spec passes Fedora's macros): DRACUTMODULESDIR DRACUTCONFDIR UNITDIR
## BINDIR MANDIR BASHCOMPDIR ZSHCOMPDIR FISHCOMPDIR. `make install-files` is the same without
## building (PREROOT_BIN names the binary), `make install-doc` the man pages and completions
## from GENDOC (`make man`): the packages use those two.
pc = $(shell pkg-config --variable=$(1) $(2) 2>/dev/null)
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DRACUTMODULESDIR ?= $(call pc,dracutmodulesdir,dracut)
DRACUTCONFDIR ?= $(call pc,dracutconfdir,dracut)
UNITDIR ?= $(call pc,systemdsystemunitdir,systemd)
BASHCOMPDIR ?= $(or $(call pc,completionsdir,bash-completion),$(PREFIX)/share/bash-completion/completions)
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
PREROOT_BIN ?= $(STATIC)
GENDOC ?= $(or $(CARGO_TARGET_DIR),target)/gendoc
MODDIR = $(DESTDIR)$(DRACUTMODULESDIR)/90preroot
install: static
	$(MAKE) --no-print-directory install-files

install-files:
	@if [ -z "$(DRACUTMODULESDIR)" ] || [ -z "$(DRACUTCONFDIR)" ] || [ -z "$(UNITDIR)" ]; then \
		echo "install: pkg-config does not know dracut's or systemd's directories:" \
			"install pkg-config, dracut-core and systemd, or set DRACUTMODULESDIR, DRACUTCONFDIR and UNITDIR"; \
		exit 1; fi
	install -D -m 0755 $(PREROOT_BIN) $(DESTDIR)$(BINDIR)/preroot
	install -d $(MODDIR) $(DESTDIR)$(DRACUTCONFDIR)
	install -m 0755 dracut/90preroot/module-setup.sh dracut/90preroot/preroot-pre-mount.sh \
		dracut/90preroot/preroot-pre-pivot.sh $(MODDIR)/
	install -m 0644 dracut/90preroot/preroot-fetch.service dracut/90preroot/preroot-grow.service \
		dracut/90preroot/preroot-sysroot.service $(MODDIR)/
	install -m 0644 dracut/90-preroot.conf $(DESTDIR)$(DRACUTCONFDIR)/90-preroot.conf
	install -D -m 0644 systemd/preroot-apply.service $(DESTDIR)$(UNITDIR)/preroot-apply.service

install-doc:
	install -D -m 0644 $(GENDOC)/man/preroot.8 $(DESTDIR)$(MANDIR)/man8/preroot.8
	install -D -m 0644 $(GENDOC)/man/preroot.conf.5 $(DESTDIR)$(MANDIR)/man5/preroot.conf.5
	install -D -m 0644 $(GENDOC)/man/preroot-cmdline.7 $(DESTDIR)$(MANDIR)/man7/preroot-cmdline.7
	install -D -m 0644 $(GENDOC)/completions/preroot.bash $(DESTDIR)$(BASHCOMPDIR)/preroot
	install -D -m 0644 $(GENDOC)/completions/_preroot $(DESTDIR)$(ZSHCOMPDIR)/_preroot
	install -D -m 0644 $(GENDOC)/completions/preroot.fish $(DESTDIR)$(FISHCOMPDIR)/preroot.fish

## make man: the man pages and shell completions, generated from the CLI declaration
## (examples/gendoc.rs), into $(GENDOC)/man and $(GENDOC)/completions.
man:
	$(CARGO) run --quiet --example gendoc -- $(GENDOC)

## make dist: the release tarballs in $(DIST): preroot-VERSION.tar.gz (`git archive` of HEAD:
## commit your changes first) and preroot-VERSION-vendor.tar.gz (`cargo vendor`: every crate
## Cargo.lock names, so a distribution's builder needs no network). The vendor step is the
## only one that uses the network (crates.io through cargo).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DIST := $(or $(CARGO_TARGET_DIR),target)/dist
dist:
	@command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1 || { echo "dist: needs a git checkout"; exit 1; }
	rm -rf $(DIST) && mkdir -p $(DIST)
	git archive --format=tar --prefix=preroot-$(VERSION)/ HEAD | gzip -n9 > $(DIST)/preroot-$(VERSION).tar.gz
	$(CARGO) vendor --locked --versioned-dirs $(DIST)/vendor > $(DIST)/vendor-config.toml
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$(git log -1 --format=%ct) \
		-C $(DIST) -cf - vendor | gzip -n9 > $(DIST)/preroot-$(VERSION)-vendor.tar.gz
	rm -rf $(DIST)/vendor $(DIST)/vendor-config.toml
	@cd $(DIST) && sha256sum preroot-$(VERSION).tar.gz preroot-$(VERSION)-vendor.tar.gz | tee SHA256SUMS

## make rpm: preroot and preroot-dracut RPMs from make dist's tarballs with this machine's
## rpmbuild (packaging/rpm/preroot.spec; Debian's rpm package works), into $(PKG)/rpm.
## rpmbuild --nodeps: the spec's BuildRequires name Fedora packages, which a Debian machine's
## empty rpm database cannot satisfy; the Rust toolchain is rustup's (Makefile deps-rust).
## PACKAGE_FROM_BIN=1 (tests/packages.rs): assemble from the built binary ($(STATIC)) and
## $(GENDOC) instead of building from the tarballs: no second cargo build.
PKG := $(or $(CARGO_TARGET_DIR),target)/packages
RPMTOP = $(abspath $(PKG))/rpm
RPM_PREBUILT = $(if $(PACKAGE_FROM_BIN),--define "preroot_prebuilt $(abspath $(STATIC))" --define "preroot_gendoc $(abspath $(GENDOC))")
# The working tree's tracked files as the source tarball (uncommitted edits included).
SRC_TAR = git ls-files -z | tar --null -T - --transform 's,^,preroot-$(VERSION)/,' -cf -
rpm: $(if $(PACKAGE_FROM_BIN)$(NO_DIST),,dist)
	rm -rf $(RPMTOP) && mkdir -p $(RPMTOP)/SOURCES
	$(if $(PACKAGE_FROM_BIN),$(SRC_TAR) | gzip -n > $(RPMTOP)/SOURCES/preroot-$(VERSION).tar.gz,cp $(DIST)/*.tar.gz $(RPMTOP)/SOURCES/)
	rpmbuild --nodeps -bb --define "_topdir $(RPMTOP)" $(RPM_PREBUILT) packaging/rpm/preroot.spec
	@find $(RPMTOP)/RPMS -name '*.rpm' | sort

## make deb: preroot and preroot-dracut .debs with dpkg-buildpackage -us -uc -b, from make
## dist's tarballs unpacked with packaging/debian as debian/, into $(PKG)/deb.
## PACKAGE_FROM_BIN=1: as for make rpm.
DEBTOP = $(abspath $(PKG))/deb
deb: $(if $(PACKAGE_FROM_BIN)$(NO_DIST),,dist)
	rm -rf $(DEBTOP) && mkdir -p $(DEBTOP)
	$(if $(PACKAGE_FROM_BIN),$(SRC_TAR) | tar -xf - -C $(DEBTOP),\
		tar -xzf $(DIST)/preroot-$(VERSION).tar.gz -C $(DEBTOP) && \
		tar -xzf $(DIST)/preroot-$(VERSION)-vendor.tar.gz -C $(DEBTOP)/preroot-$(VERSION))
	cp -a packaging/debian $(DEBTOP)/preroot-$(VERSION)/debian
	cd $(DEBTOP)/preroot-$(VERSION) && \
		$(if $(PACKAGE_FROM_BIN),PREROOT_PREBUILT=$(abspath $(STATIC)) PREROOT_GENDOC=$(abspath $(GENDOC))) \
		dpkg-buildpackage -us -uc -b
	@ls $(DEBTOP)/*.deb

## make packages: both, from the binary make static built (what tests/packages.rs checks).
packages: static man
	$(MAKE) --no-print-directory rpm deb PACKAGE_FROM_BIN=1

## make offline-packages: make dist (with the network), then the RPM and the .deb built from
## its tarballs inside `unshare -n` (a network namespace with only a down loopback: no network
## at all), as Fedora's and Debian's builders do. Root (or user namespaces). Not in make check.
offline-packages: dist
	unshare -n -- $(MAKE) --no-print-directory rpm deb NO_DIST=1

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
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

clean:
	$(CARGO) clean
	rm -rf $(DEMO)
