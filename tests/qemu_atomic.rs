//! Scenario (b) of the QEMU harness (issue 4): the Fedora-Atomic-like layout (GPT: ext4
//! `/boot`, an LVM PV with VG `atomicos` and LV `root` in xfs, and an Ironic-style `config-2`
//! partition at the disk end, free space before it), PXE-booted like Ironic: iPXE from QEMU's
//! built-in TFTP loads the kernel and the initramfs (dracut's `lvm` module and 90preroot).
//!
//! `qemu/atomic.sh run OUTDIR` builds what is missing (cached: the guest tree, the base image
//! made in a builder guest) and boots one fresh overlay; this test reads what the guest
//! reported on its second serial port and what the host sees in the overlay afterwards.
//! Needs root (debootstrap, chroot), QEMU and the harness's host packages (`qemu/host-deps.sh`
//! installs them); takes minutes under TCG.

mod common;

use common::qemu::{console_tail, env_file, find_dev, size, Report, P2_START};

use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn atomic_layout_pxe_boot_reads_config2_partition() {
    let test = "atomic_layout_pxe_boot_reads_config2_partition";
    require!(test; root, "qemu-system-x86_64", "qemu-img", "debootstrap", "sgdisk", "xorriso",
        "busybox", "mkfs.ext4", "cpio", "flock", "unshare");
    let kernel = std::fs::read_dir("/boot").ok().is_some_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    if !kernel {
        common::missing(
            test,
            "a Debian kernel in /boot (qemu/host-deps.sh installs it)",
        );
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Kept after the test (console, report, overlay) for a look when it fails.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qemu-atomic");
    let started = std::time::Instant::now();
    let status = Command::new(repo.join("qemu/atomic.sh"))
        .arg("run")
        .arg(&out)
        .status()
        .expect("run qemu/atomic.sh");
    eprintln!("atomic: qemu/atomic.sh run took {:?}", started.elapsed());
    if let Ok(r) = std::fs::read_to_string(out.join("result.env")) {
        eprintln!("atomic: {}", r.replace('\n', " "));
    }
    let report_text =
        String::from_utf8_lossy(&std::fs::read(out.join("report.log")).unwrap_or_default())
            .into_owned();
    assert!(
        status.success() && report_text.contains("@@@ END"),
        "the guest did not finish its report ({status}); console tail:\n{}\nreport:\n{report_text}",
        console_tail(&out, 40)
    );
    let report = Report::parse(&report_text, &out)
        .unwrap_or_else(|| panic!("the report does not parse:\n{report_text}"));
    let result = env_file(&std::fs::read_to_string(out.join("result.env")).unwrap());
    let section = |name: &str| -> &str {
        report
            .sections
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no section {name} in the report:\n{report_text}"))
    };

    // PXE-booted with the Atomic root: no -kernel, iPXE fetched boot.ipxe, the kernel and the
    // initramfs over QEMU's TFTP (iPXE itself prints to the VGA console, which is not kept).
    let qemu_cmdline = std::fs::read_to_string(out.join("qemu-cmdline")).unwrap();
    assert!(
        qemu_cmdline.contains("-boot n")
            && qemu_cmdline.contains("bootfile=boot.ipxe")
            && qemu_cmdline.contains("restrict=on")
            && !qemu_cmdline.contains("-kernel"),
        "{qemu_cmdline}"
    );
    assert!(
        !result["KERNEL_START_MS"].is_empty(),
        "the kernel never started"
    );
    let cmdline = section("cmdline");
    assert!(
        cmdline.contains("root=/dev/mapper/atomicos-root") && cmdline.contains("rootfstype=xfs"),
        "{cmdline}"
    );

    // The boot reached multi-user.target.
    let units = section("units");
    assert!(
        units
            .lines()
            .any(|l| l.starts_with("multi-user.target ") && l.ends_with(" active")),
        "multi-user.target not reached:\n{units}\nfailed units:\n{}",
        section("failed")
    );

    // preroot ran in the initramfs: every phase left its record, before the switch root.
    let ctx = report.context();
    let phases: Vec<&str> = ctx["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(phases, ["fetch", "grow", "sysroot"], "{}", ctx["phases"]);
    assert_eq!(ctx["phases"][0]["outcome"], "ok", "{}", ctx["phases"]);
    let switch_root_us: u64 = units
        .lines()
        .find_map(|l| l.strip_prefix("initrd-switch-root.target "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    assert!(switch_root_us > 0, "no initrd switch root:\n{units}");
    for p in ctx["phases"].as_array().unwrap() {
        let started_ms = p["started_ms"].as_u64().expect("started_ms");
        assert!(
            started_ms * 1000 < switch_root_us,
            "phase {p} started after the switch root ({switch_root_us} µs)"
        );
    }
    assert!(
        section("run-preroot").contains("context.json"),
        "{}",
        section("run-preroot")
    );

    // The datasource: OpenStack, from the config-2 *partition* of the root disk.
    assert_eq!(ctx["platform"], "openstack", "{ctx:#}");
    assert_eq!(ctx["source"]["kind"], "config-drive", "{}", ctx["source"]);
    assert_eq!(ctx["source"]["medium"], "iso9660", "{}", ctx["source"]);
    assert_eq!(ctx["source"]["location"], "/dev/vda3", "{}", ctx["source"]);
    assert_eq!(
        ctx["source"]["partition_of"], "/dev/vda",
        "{}",
        ctx["source"]
    );
    assert_eq!(ctx["instance_id"], "6a1c1a3b-1111-4222-8333-444455556666");
    assert_eq!(ctx["hostname"], "preroot-qemu.example.test");
    assert_eq!(ctx["errors"], Value::Array(vec![]), "{}", ctx["errors"]);

    // The layout as the guest sees it.
    let lsblk = report.json("lsblk");
    let devs = &lsblk["blockdevices"];
    let vda = find_dev(devs, "vda").expect("vda");
    let p2 = find_dev(devs, "vda2").expect("vda2");
    let cfg2 = find_dev(devs, "vda3").expect("vda3");
    let lv = find_dev(devs, "atomicos-root").expect("atomicos-root");
    assert_eq!(lv["type"], "lvm");
    assert_eq!(lv["fstype"], "xfs");
    assert_eq!(lv["mountpoint"], "/");
    assert_eq!(find_dev(devs, "vda1").expect("vda1")["mountpoint"], "/boot");
    assert_eq!(cfg2["fstype"], "iso9660");
    assert_eq!(cfg2["label"], "config-2");
    let num = |k: &str| -> u64 { result[k].parse().unwrap_or_else(|_| panic!("{k}")) };
    assert_eq!(size(vda), num("DISK_BYTES"));

    // Both LVM steps in one `lvm` process, run with the private /etc/lvm that turns lvm's
    // reserved memory off (src/disk/lvm.rs `ConfOverlay`; Debian's lvmlocal.conf has no
    // activation settings, so it must be used).
    let journal = section("journal-preroot");
    assert!(
        journal.contains("grow: lvm pvresize + lvextend:"),
        "no single lvm script in the journal:\n{journal}"
    );
    assert!(
        !journal.contains("lvm keeps its reserved memory"),
        "the lvm configuration overlay was not used:\n{journal}"
    );

    // config-2 is intact: the same bytes in the overlay after the boot as in the base.
    assert_eq!(
        result["CFG2_SHA256_AFTER"], result["CFG2_SHA256_BEFORE"],
        "the config-2 partition changed"
    );

    // Growth: up to config-2 (aligned down to 1 MiB), never past it; PV, LV and xfs with it.
    let p2_grown = (num("CFG2_START") / 2048 * 2048 - P2_START) * 512;
    let fs_size = report.rootfs_bytes();
    assert_eq!(size(p2), p2_grown, "p2 did not grow up to config-2");
    // The LV takes the whole PV but its metadata area (1 MiB) and extent rounding (4 MiB).
    assert!(
        size(lv) + 5 * 1024 * 1024 >= p2_grown,
        "the LV did not grow: {lv}"
    );
    assert!(
        fs_size + 64 * 1024 * 1024 >= size(lv),
        "xfs did not grow: {fs_size} bytes on an LV of {}",
        size(lv)
    );
    assert!(size(p2) <= p2_grown, "p2 runs into config-2");
}
