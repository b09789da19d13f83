//! Power cuts in the middle of growing the Atomic layout (issue 9, "Disk faults"): root on
//! LVM `atomicos/root` in xfs, PXE-booted like Ironic (`qemu/atomic.sh`, tests/qemu_atomic.rs).
//! Each test boots a fresh overlay whose p2 (the PV) must grow up to `config-2`, SIGKILLs
//! QEMU at one point of the grow work, checks the disk from the host, then boots the same disk
//! again and asserts the growth finished.
//!
//! Kill points: the `fault-injection` build of preroot (`ATOMIC_FAULT=1`, its own initramfs
//! and base image in the cache) holds, and says so on the console, when the first boot's
//! kernel command line has `systemd.setenv=PREROOT_FAULT_HOLD=1` and one of
//! - `systemd.setenv=PREROOT_FAULT_AFTER_WRITE=2`: both GPT copies written and fsynced, the
//!   kernel not yet told, no `pvresize`;
//! - `systemd.setenv=PREROOT_FAULT_AFTER_STEP=pvresize`: the PV grown, the LV not;
//! - `systemd.setenv=PREROOT_FAULT_AFTER_STEP=lvextend`: PV and LV grown, their metadata
//!   synced, xfs not yet grown (that is the `sysroot` phase).
//!
//! The host kills on that line (`qemu/atomic.sh cut`, `kill_on` in `qemu/lib.sh`) and checks
//! the disk (`atomic_check_disk`): the GPT verifies with `sgdisk -v`, p2 starts where it did,
//! the PV label is there and the newest VG metadata on the PV says what `pvresize` and
//! `lvextend` committed, `config-2` has the bytes of the base, and the xfs on the LV,
//! extracted, passes `xfs_repair -n`. The boot after the cut: p2 ends at `config-2`'s start
//! (1 MiB aligned), the PV fills p2, the VG has no free extent, the LV is the VG, xfs fills the
//! LV, the 64 MiB sentinel file in the root has its sha256, and preroot's grow report says what
//! was left to do. Two boots per test (the first cut short); boots queue machine-wide behind
//! one lock.

mod common;

use common::qemu::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The VG's extent size (lvm's default, as the builder made it).
const EXTENT: u64 = 4 * 1024 * 1024;

/// An Atomic power-cut run (its files through `Deref`; `boot2/result.env` holds the layout,
/// config-2's checksums, the sentinel's sha256).
struct Cut {
    files: CutFiles,
    out: PathBuf,
}

impl Cut {
    fn num(&self, key: &str) -> u64 {
        self.files.num(key, &self.out)
    }

    /// p2's size as built and as grown up to config-2 (aligned down to 1 MiB), in bytes.
    fn p2_bytes(&self) -> (u64, u64) {
        (
            (self.num("P2_END") + 1 - P2_START) * 512,
            (self.num("CFG2_START") / 2048 * 2048 - P2_START) * 512,
        )
    }
}

/// `qemu/atomic.sh cut OUT REGEX KARGS` for `test`: the cut boot, the host's check, the re-boot.
fn cut(test: &str, kill_on: &str, kargs: &str) -> Option<Cut> {
    if !require_qemu(test) {
        return None;
    }
    for tool in ["busybox", "cpio", "xfs_repair", "od"] {
        if !common::has_tool(tool) {
            common::missing(test, &format!("the tool `{tool}` (qemu/host-deps.sh)"));
            return None;
        }
    }
    let _one = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("preroot-qemu-{test}-{}", std::process::id()));
    let started = std::time::Instant::now();
    let status = Command::new("bash")
        .arg(repo.join("qemu/atomic.sh"))
        .args([
            "cut".as_ref(),
            out.as_os_str(),
            kill_on.as_ref(),
            kargs.as_ref(),
        ])
        .status()
        .expect("run qemu/atomic.sh");
    let killed = after_cut(test, &out, kill_on, "atomic.sh cut", status, started);
    let files = cut_files(test, &out, "atomic.sh cut", status);
    eprintln!(
        "{test}: {}\n{test}: host check after the cut: {:?}",
        killed.lines().next().unwrap_or(""),
        files.check
    );
    Some(Cut { files, out })
}

/// The host's check after the cut: a valid GPT with p2 already grown (every cut point comes
/// after the table write), the PV label in place, the newest VG metadata as `lvm_steps` of
/// the two LVM steps (`pvresize`, `lvextend`) left it, config-2 untouched, and the xfs on the
/// LV consistent and not yet grown.
fn assert_disk_intact(test: &str, c: &Cut, lvm_steps: u64) {
    let (built, grown) = c.p2_bytes();
    let chk = &c.check;
    let s = |k: &str| chk.get(k).map(String::as_str).unwrap_or("");
    assert_eq!(s("table_check_rc"), "0", "{test}: sgdisk -v: {chk:?}");
    assert_eq!(s("table_check_problems"), "0", "{test}: sgdisk -v: {chk:?}");
    assert_eq!(c.num("p2_start"), P2_START, "{test}: {chk:?}");
    assert_eq!(
        (c.num("p2_end") + 1 - P2_START) * 512,
        grown,
        "{test}: p2 in the table on disk; {chk:?}"
    );
    assert_eq!(s("pv_label"), "LABELONE", "{test}: no PV label; {chk:?}");
    // The newest VG metadata on the PV: what pvresize and lvextend committed.
    let (dev, pe, lv) = (
        c.num("lvm_pv_dev_sectors") * 512,
        c.num("lvm_pe_count"),
        c.num("lvm_lv_extents"),
    );
    assert!(
        c.num("lvm_seqno") >= 2 + lvm_steps,
        "{test}: VG metadata older than {lvm_steps} LVM steps; {chk:?}"
    );
    // (pvcreate records the partition's size; pvresize the size less the metadata area at
    // the PV's start, 1 MiB here: lvm2 2.03.16.)
    let pv_grown = dev > built && dev <= grown && dev + 5 * 1024 * 1024 >= grown;
    assert!(
        if lvm_steps >= 1 {
            pv_grown
        } else {
            dev <= built
        },
        "{test}: the PV's size in the VG metadata, {dev} bytes, after {lvm_steps} LVM steps \
         (p2 built {built}, grown {grown}); {chk:?}"
    );
    assert_eq!(
        pe > lv,
        lvm_steps == 1,
        "{test}: free extents ({pe} in the PV, {lv} in the LV) after {lvm_steps} LVM steps; {chk:?}"
    );
    if lvm_steps == 2 {
        assert!(pe * EXTENT + 5 * 1024 * 1024 >= grown, "{test}: {chk:?}");
    }
    assert_eq!(
        s("cfg2_sha256"),
        s("cfg2_sha256_base"),
        "{test}: config-2 changed; {chk:?}"
    );
    assert_eq!(
        s("xfs_magic"),
        "XFSB",
        "{test}: no xfs at the LV's start; {chk:?}"
    );
    assert_eq!(
        s("xfs_repair_rc"),
        "0",
        "{test}: xfs_repair -n of the root LV (output in {}); {chk:?}",
        c.out.join("disk-check.env.xfs-repair").display()
    );
    let xfs = c.num("xfs_bytes");
    assert!(
        xfs > 0 && xfs < built,
        "{test}: xfs of {xfs} bytes on a PV of {built}: grown before the cut?; {chk:?}"
    );
}

/// One `lvm … --reportformat json` table from the guest's `x-atomic` probe: its first row.
fn lvm_row(c: &Cut, topic: &str, table: &str) -> Value {
    c.after.json_sub("x-atomic", topic)["report"][0][table][0].clone()
}

fn lvm_num(row: &Value, field: &str) -> u64 {
    row[field]
        .as_str()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number {field} in {row}"))
}

/// The boot after the cut finished the job; `statuses` are what preroot's grow report must
/// say it found for the partition, the PV and the LV (`done` where the cut boot left the step
/// undone, `unchanged` where it was already done). Returns the context.
fn assert_finished(test: &str, c: &Cut, statuses: [(&str, &str); 3]) -> Value {
    let ctx = assert_booted_with_preroot(test, &c.after);
    assert_configdrive(test, &ctx);
    assert!(
        ctx["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{test}: errors after the re-boot: {:#}",
        ctx["errors"]
    );
    let (_, grown) = c.p2_bytes();
    let lsblk = c.after.json("lsblk");
    let devs = &lsblk["blockdevices"];
    let p2 = find_dev(devs, "vda2").unwrap_or_else(|| panic!("{test}: no vda2: {lsblk:#}"));
    let lv = find_dev(devs, "atomicos-root")
        .unwrap_or_else(|| panic!("{test}: no atomicos-root: {lsblk:#}"));
    assert_eq!(size(p2), grown, "{test}: p2 does not end at config-2");
    assert_eq!(lv["mountpoint"], "/", "{test}: {lv}");
    assert_eq!(
        c.result["CFG2_SHA256_AFTER"], c.result["CFG2_SHA256_BEFORE"],
        "{test}: config-2 changed"
    );

    // The PV fills p2 (but its metadata area and extent rounding), the VG has no free extent,
    // the LV is the whole VG, xfs fills the LV (but its internal log).
    let pv = lvm_row(c, "pvs", "pv");
    let vg = lvm_row(c, "vgs", "vg");
    let lvr = lvm_row(c, "lvs", "lv");
    assert_eq!(lvm_num(&pv, "dev_size"), grown, "{test}: {pv}");
    assert!(
        lvm_num(&pv, "pv_size") + 5 * 1024 * 1024 >= grown,
        "{test}: the PV does not fill p2: {pv}"
    );
    assert_eq!(
        lvm_num(&vg, "vg_free_count"),
        0,
        "{test}: free extents: {vg}"
    );
    assert_eq!(lvm_num(&vg, "vg_free"), 0, "{test}: {vg}");
    assert_eq!(
        lvm_num(&lvr, "lv_size"),
        lvm_num(&vg, "vg_size"),
        "{test}: the LV is not the whole VG: {lvr} {vg}"
    );
    assert_eq!(size(lv), lvm_num(&lvr, "lv_size"), "{test}: {lv} {lvr}");
    let fs = c.after.rootfs_bytes();
    // df leaves out xfs's internal log (64 MiB here); the grow report has the data size.
    assert_eq!(
        ctx["extra"]["grow_filesystem"]["new_size"].as_u64(),
        Some(size(lv)),
        "{test}: xfs grown to the LV; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
    assert!(
        fs + 128 * 1024 * 1024 >= size(lv) && fs <= size(lv),
        "{test}: xfs of {fs} bytes (df) on an LV of {}; {:#}",
        size(lv),
        ctx["extra"]["grow_filesystem"]
    );

    // The root's data: the sentinel's sha256 as the host computes it from lib.sh `sentinel`.
    let want = c
        .result
        .get("SENTINEL_SHA256")
        .map(String::as_str)
        .unwrap_or("");
    assert_eq!(want.len(), 64, "{test}: no SENTINEL_SHA256 in result.env");
    assert_eq!(
        c.after.sub("x-atomic", "sentinel").trim(),
        want,
        "{test}: /var/lib/preroot-sentinel changed"
    );

    // What preroot found left to do.
    let actions = ctx["extra"]["grow"]["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (kind, want) in statuses {
        let a = actions
            .iter()
            .find(|a| a["kind"] == kind)
            .unwrap_or_else(|| panic!("{test}: no {kind} in the grow report: {actions:#?}"));
        assert_eq!(a["status"], want, "{test}: {kind} on the re-boot: {a:#}");
    }
    assert_eq!(
        ctx["extra"]["grow_filesystem"]["status"], "done",
        "{test}: the re-boot grows xfs; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
    eprintln!(
        "{test}: re-boot: {}; xfs {fs} bytes on an LV of {}; cut + re-boot {} ms (check {} ms)",
        actions
            .iter()
            .map(|a| format!("{} {}", a["kind"], a["status"]))
            .collect::<Vec<_>>()
            .join(", "),
        size(lv),
        c.result
            .get("CUT_TOTAL_MS")
            .map(String::as_str)
            .unwrap_or("?"),
        c.check.get("check_ms").map(String::as_str).unwrap_or("?")
    );
    ctx
}

/// One cut test: hold after `point` (asked for by `env`, e.g.
/// `PREROOT_FAULT_AFTER_STEP=lvextend`), where `lvm_steps` LVM steps are done; the re-boot's
/// grow report must say `statuses`.
fn cut_at(test: &str, point: &str, env: &str, lvm_steps: u64, statuses: [(&str, &str); 3]) {
    let on = format!("fault injection: holding after {point} ");
    let kargs = format!("systemd.setenv={env} systemd.setenv=PREROOT_FAULT_HOLD=1");
    let Some(c) = cut(test, &on, &kargs) else {
        return;
    };
    assert_disk_intact(test, &c, lvm_steps);
    assert_finished(test, &c, statuses);
}

#[test]
fn qemu_atomic_cut_after_table_written() {
    // Write 1 is the backup GPT, write 2 the primary: the table is grown, nothing else.
    cut_at(
        "qemu_atomic_cut_after_table_written",
        "write 2",
        "PREROOT_FAULT_AFTER_WRITE=2",
        0,
        [("partition", "unchanged"), ("pv", "done"), ("lv", "done")],
    );
}

#[test]
fn qemu_atomic_cut_after_pvresize() {
    cut_at(
        "qemu_atomic_cut_after_pvresize",
        "step pvresize",
        "PREROOT_FAULT_AFTER_STEP=pvresize",
        1,
        [
            ("partition", "unchanged"),
            ("pv", "unchanged"),
            ("lv", "done"),
        ],
    );
}

#[test]
fn qemu_atomic_cut_after_lvextend() {
    cut_at(
        "qemu_atomic_cut_after_lvextend",
        "step lvextend",
        "PREROOT_FAULT_AFTER_STEP=lvextend",
        2,
        [
            ("partition", "unchanged"),
            ("pv", "unchanged"),
            ("lv", "unchanged"),
        ],
    );
}

impl std::ops::Deref for Cut {
    type Target = CutFiles;
    fn deref(&self) -> &CutFiles {
        &self.files
    }
}
