//! Power cuts in the middle of growth (issue 9, "Disk faults"): each test boots a QEMU guest
//! whose root must grow, SIGKILLs QEMU at one point of the grow work, checks the disk from the
//! host (the partition table verified, the root filesystem extracted at its offset and checked
//! with `e2fsck -fn`, a 64 MiB sentinel file compared), then boots again on the same disk and
//! asserts the growth finished: the root partition ends at the disk's end and ext4 fills it.
//!
//! Kill points: the `preroot-fault` build (`qemu/lib.sh`: preroot with the `fault-injection`
//! feature) holds after its k-th table write when the first boot's kernel command line says
//! `systemd.setenv=PREROOT_FAULT_AFTER_WRITE=k systemd.setenv=PREROOT_FAULT_HOLD=1` (the write
//! is fsynced, the next one is not made) and says so on the console; the host kills on that
//! line. The online ext4 resize has no hold: QEMU is killed as soon as the kernel's
//! `resizing filesystem` line shows, and the test records whether the kill landed before the
//! kernel's `resized filesystem` line. `qemu/scenario.sh` (`KILL_ON`, `KARGS_FIRST`) and
//! `kill_on`/`check_disk` in `qemu/lib.sh` do the work; docs/faults.md has the results.
//!
//! Two boots per test (one cut short at ~15-25 s of guest time, one full); the boots queue
//! machine-wide behind one lock.

mod common;

use common::qemu::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// Partition 1's size in sectors as the harness made it (`ROOT_MIB` 1200).
const OLD_SECTORS: u64 = 1200 * 2048;

struct Cut {
    /// `disk-check.env` of the host's check after the kill.
    check: BTreeMap<String, String>,
    /// What the console showed after the trigger line, up to the kill.
    killed: String,
    /// The report of the boot after the power cut.
    after: Report,
}

fn cut(test: &str, scenario: &str, kill_on: &str, kargs_first: &str) -> Option<Cut> {
    if !require_qemu(test) {
        return None;
    }
    let started = std::time::Instant::now();
    let (out, status) = run_scenario(
        test,
        scenario,
        &[
            ("VARIANT", "preroot-fault".into()),
            ("BOOTS", "2".into()),
            ("KILL_ON", kill_on.into()),
            ("KARGS_FIRST", kargs_first.into()),
        ],
    );
    let killed = after_cut(test, &out, kill_on, "scenario.sh", status, started);
    let check: BTreeMap<String, String> = std::fs::read_to_string(out.join("disk-check.env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(
        status.success(),
        "{test}: scenario.sh exited {status}; files in {}",
        out.display()
    );
    let dir = out.join("boot2");
    let report = std::fs::read(dir.join("report.log")).unwrap_or_default();
    let after = Report::parse(&String::from_utf8_lossy(&report), &dir)
        .unwrap_or_else(|| panic!("{test}: no report from the boot after the power cut"));
    eprintln!(
        "{test}: after the cut: {check:?}\n{test}: {}",
        killed.lines().take(4).collect::<Vec<_>>().join(" | ")
    );
    Some(Cut {
        check,
        killed,
        after,
    })
}

fn num(c: &Cut, key: &str) -> u64 {
    c.check
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the disk check: {:?}", c.check))
}

/// The host's check after the cut: the table in one of its two valid states (old size with
/// at most the "backup not at the disk end" remark every grown disk has before growth; or
/// the new size and no problem), partition 1 still at sector 2048, the root filesystem
/// clean (after replaying its journal, as the next mount does) and the sentinel intact.
/// Returns whether the table on disk already had the new size.
fn assert_disk_intact(test: &str, c: &Cut, gpt: bool) -> bool {
    assert_eq!(num(c, "part_start"), 2048, "{test}: {:?}", c.check);
    let sectors = num(c, "part_sectors");
    let disk_sectors = num(c, "disk_bytes") / 512;
    let grown = sectors != OLD_SECTORS;
    if grown {
        assert!(
            2048 + sectors + 2048 + if gpt { 33 } else { 0 } >= disk_sectors,
            "{test}: partition 1 has {sectors} sectors, neither the old size nor the disk's end \
             ({disk_sectors}); {:?}",
            c.check
        );
        assert_eq!(num(c, "table_check_problems"), 0, "{test}: {:?}", c.check);
    } else {
        assert_eq!(
            num(c, "table_check_problems"),
            num(c, "table_backup_not_at_end"),
            "{test}: the only remark on an ungrown table is the backup's place; {:?}",
            c.check
        );
    }
    assert_eq!(num(c, "table_check_rc"), 0, "{test}: {:?}", c.check);
    let fsck = num(c, "fsck_rc");
    assert!(
        fsck == 0 || c.check.get("fsck_after_replay_rc").map(String::as_str) == Some("0"),
        "{test}: e2fsck -fn of the root partition: {:?}",
        c.check
    );
    assert_eq!(
        num(c, "sentinel_ok"),
        1,
        "{test}: the sentinel file changed; {:?}",
        c.check
    );
    assert!(
        num(c, "fs_bytes") <= sectors * 512,
        "{test}: filesystem larger than its partition; {:?}",
        c.check
    );
    grown
}

/// The boot after the cut finished the job: the partition reaches the disk's end and ext4
/// fills it (grown by this boot, or already by the cut one: `done` or `unchanged`).
fn assert_finished(test: &str, c: &Cut, pttype: &str) -> Value {
    let ctx = assert_booted_with_preroot(test, &c.after);
    let lsblk = c.after.json("lsblk");
    let vda = lsblk["blockdevices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "vda"))
        .unwrap_or_else(|| panic!("{test}: no vda in lsblk: {lsblk:#}"))
        .clone();
    assert_eq!(vda["pttype"], pttype, "{test}: {vda:#}");
    let disk = vda["size"].as_u64().unwrap_or(0);
    let part = vda["children"][0]["size"].as_u64().unwrap_or(0);
    assert!(
        part + (3 << 20) >= disk && part < disk,
        "{test}: root partition {part} of {disk} bytes after the re-boot; {:#}",
        ctx["extra"]["grow"]
    );
    let fs = c.after.rootfs_bytes();
    assert!(
        fs >= part / 100 * 90,
        "{test}: root filesystem {fs} bytes in a {part}-byte partition; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
    let st = ctx["extra"]["grow_filesystem"]["status"]
        .as_str()
        .unwrap_or("");
    assert!(
        st == "done" || st == "unchanged",
        "{test}: filesystem growth {st:?}; {:#}",
        ctx["extra"]["grow_filesystem"]
    );
    assert!(
        ctx["errors"].as_array().is_none_or(|e| e.is_empty()),
        "{test}: errors after the re-boot: {:#}",
        ctx["errors"]
    );
    eprintln!(
        "{test}: re-boot: partition {} , filesystem {st}",
        ctx["extra"]["grow"]["actions"][0]["status"]
    );
    ctx
}

fn hold_after(k: u32) -> (String, String) {
    (
        format!("fault injection: holding after write {k} "),
        format!("systemd.setenv=PREROOT_FAULT_AFTER_WRITE={k} systemd.setenv=PREROOT_FAULT_HOLD=1"),
    )
}

#[test]
fn qemu_gpt_cut_after_backup_written() {
    let test = "qemu_gpt_cut_after_backup_written";
    let (on, kargs) = hold_after(1);
    let Some(c) = cut(test, "gpt-configdrive", &on, &kargs) else {
        return;
    };
    // Write 1 is the backup at the new end; the primary (and so the table) is the old one.
    assert!(!assert_disk_intact(test, &c, true), "{test}: {:?}", c.check);
    assert_finished(test, &c, "gpt");
}

#[test]
fn qemu_gpt_cut_after_primary_written() {
    let test = "qemu_gpt_cut_after_primary_written";
    let (on, kargs) = hold_after(2);
    let Some(c) = cut(test, "gpt-configdrive", &on, &kargs) else {
        return;
    };
    // Both copies new: the table is grown, the kernel was never told, ext4 is the old size.
    assert!(assert_disk_intact(test, &c, true), "{test}: {:?}", c.check);
    assert!(num(&c, "fs_bytes") <= OLD_SECTORS * 512, "{test}");
    let ctx = assert_finished(test, &c, "gpt");
    assert_eq!(
        ctx["extra"]["grow_filesystem"]["status"], "done",
        "{test}: the re-boot grows ext4"
    );
}

#[test]
fn qemu_gpt_cut_during_ext4_resize() {
    let test = "qemu_gpt_cut_during_ext4_resize";
    let Some(c) = cut(
        test,
        "gpt-configdrive",
        r"EXT4-fs \(vda1\): resizing filesystem",
        "",
    ) else {
        return;
    };
    assert!(assert_disk_intact(test, &c, true), "{test}: {:?}", c.check);
    let landed = if c.killed.contains("resized filesystem") {
        "after the resize finished"
    } else {
        "during the resize (no `resized filesystem` line before the kill)"
    };
    eprintln!(
        "{test}: the kill landed {landed}; filesystem on disk {} bytes",
        num(&c, "fs_bytes")
    );
    assert_finished(test, &c, "gpt");
}

#[test]
fn qemu_mbr_cut_after_table_written() {
    let test = "qemu_mbr_cut_after_table_written";
    let (on, kargs) = hold_after(1);
    let Some(c) = cut(test, "mbr-configdrive", &on, &kargs) else {
        return;
    };
    // A primary partition is one write (sector 0): the table is grown.
    assert!(assert_disk_intact(test, &c, false), "{test}: {:?}", c.check);
    assert_finished(test, &c, "dos");
}
