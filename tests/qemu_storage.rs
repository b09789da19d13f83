//! Issue 21's roots in real boots (`qemu/storage.sh`), each two boots on one disk around a
//! power cut, with the layout's assertions merged into them:
//!
//! - `qemu_btrfs_fedora_cloud_cut_during_resize`: the Fedora-Cloud-shaped disk (GPT, ext4
//!   `/boot`, btrfs with subvolumes `root` and `home`, `rootflags=subvol=root ro`) with a
//!   config drive. Boot 1 (`ro`, as Fedora boots: preroot remounts for the resize) grows p2
//!   and is SIGKILLed on the kernel's `resizing devid` line of preroot's online btrfs resize
//!   (inside the ioctl, before its commit); from the host the GPT verifies, p2 is grown, `btrfs check
//!   --readonly` is clean and the superblock has the old size or the new one, nothing else.
//!   Boot 2: multi-user, the config drive read, the network written, btrfs (its one device)
//!   filling p2, both subvolumes there, the sentinel intact.
//! - `qemu_luks_lvm_xfs_cut_after_luks_resize`: GPT, ext4 `/boot`, LUKS2 -> LVM -> xfs,
//!   the key file in the initramfs (`rd.luks.key=UUID=/etc/luks.key`). Boot 1 grows p2 and the
//!   LUKS2 mapping (`cryptsetup resize`, seen on its console), then holds and is SIGKILLed
//!   before `pvresize`; the host checks the GPT and the LUKS2 header. Boot 2 finishes PV, LV
//!   and xfs (all four layers grown) and, on a second disk whose key preroot never has, runs
//!   `preroot grow`: the partition grows, the mapping does not, one note says why.
//!
//! Needs root, QEMU and the harness's host packages (`qemu/host-deps.sh`), btrfs-progs and
//! cryptsetup; boots queue machine-wide behind one lock.

mod common;

use common::qemu::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

/// A storage layout's power-cut run (its files through `Deref`).
struct Run {
    files: CutFiles,
    /// Boot 1's console (cut short).
    cut_console: String,
    out: PathBuf,
}

impl Run {
    fn num(&self, key: &str) -> u64 {
        self.files.num(key, &self.out)
    }

    fn s(&self, key: &str) -> &str {
        self.check.get(key).map(String::as_str).unwrap_or("")
    }

    /// p2 grown to the 3 GiB overlay's last whole MiB before the backup GPT, bytes.
    fn p2_grown(&self) -> u64 {
        (3072 - 1) * MIB - self.num("P2_START") * 512
    }
}

fn storage(test: &str, layout: &str) -> Option<Run> {
    if !require_qemu(test) {
        return None;
    }
    for tool in ["btrfs", "mkfs.btrfs", "cryptsetup", "lvm", "mkfs.xfs"] {
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
        .arg(repo.join("qemu/storage.sh"))
        .arg(layout)
        .arg(&out)
        .status()
        .expect("run qemu/storage.sh");
    let killed = after_cut(test, &out, "", "storage.sh", status, started);
    let files = cut_files(test, &out, &format!("storage.sh {layout}"), status);
    let cut_console =
        String::from_utf8_lossy(&std::fs::read(out.join("console.log")).unwrap_or_default())
            .into_owned();
    eprintln!(
        "{test}: {}\n{test}: host check after the cut: {:?}\n{test}: {:?}",
        killed.lines().next().unwrap_or(""),
        files.check,
        files.result
    );
    Some(Run {
        files,
        cut_console,
        out,
    })
}

/// The host's view after the cut: the GPT verifies and p2 is grown (the table is written
/// before anything above it).
fn assert_table(test: &str, r: &Run) {
    assert_eq!(
        r.s("table_check_rc"),
        "0",
        "{test}: sgdisk -v: {:?}",
        r.check
    );
    assert_eq!(r.s("table_check_problems"), "0", "{test}: {:?}", r.check);
    assert_eq!(r.num("p2_start"), r.num("P2_START"), "{test}: p2 moved");
    assert_eq!(
        r.num("p2_sectors") * 512,
        r.p2_grown(),
        "{test}: p2 in the table after the cut; {:?}",
        r.check
    );
}

/// The grow report's action of `kind`.
fn action<'a>(ctx: &'a Value, kind: &str) -> &'a Value {
    ctx["extra"]["grow"]["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} in the grow report: {:#}", ctx["extra"]["grow"]))
}

fn sentinel(test: &str, r: &Run) {
    assert_eq!(
        r.after.sub("x-storage", "sentinel").trim(),
        r.result
            .get("SENTINEL_SHA256")
            .map(String::as_str)
            .unwrap_or("?"),
        "{test}: /var/lib/preroot-sentinel changed"
    );
}

#[test]
fn qemu_btrfs_fedora_cloud_cut_during_resize() {
    let test = "qemu_btrfs_fedora_cloud_cut_during_resize";
    let Some(r) = storage(test, "btrfs") else {
        return;
    };
    // Boot 1 grew the partition in the grow phase, then was cut in the sysroot phase's resize.
    assert!(
        r.cut_console
            .contains("preroot: grow: /dev/vda2 (gpt, partition 2 of /dev/vda)"),
        "{test}: boot 1 did not grow p2:\n{}",
        r.cut_console
    );
    assert_table(test, &r);
    assert_eq!(
        r.s("btrfs_check_rc"),
        "0",
        "{test}: btrfs check --readonly (output in {}); {:?}",
        r.out.join("disk-check.env.btrfs-check").display(),
        r.check
    );
    assert_eq!(
        r.s("btrfs_fsid"),
        r.result["BTRFS_UUID"],
        "{test}: {:?}",
        r.check
    );
    let (dev, total) = (r.num("btrfs_dev_total_bytes"), r.num("btrfs_total_bytes"));
    let built = r.num("P2_SECTORS") * 512;
    let grown = r.p2_grown();
    assert_eq!(
        dev, total,
        "{test}: one device, the filesystem's size; {:?}",
        r.check
    );
    assert!(
        dev == built || dev == grown,
        "{test}: btrfs of {dev} bytes after the cut: neither the old size ({built}) nor the \
         new ({grown}); {:?}",
        r.check
    );
    let resized_before_cut = dev == grown;
    eprintln!(
        "{test}: the cut landed {} the resize's commit",
        if resized_before_cut {
            "after"
        } else {
            "before"
        }
    );

    // Boot 2 on the same disk.
    let ctx = assert_booted_with_preroot(test, &r.after);
    assert_configdrive(test, &ctx);
    assert_configured(test, &r.after, "10.0.2.15", "preroot-qemu");
    assert_eq!(
        action(&ctx, "partition")["status"],
        "unchanged",
        "{test}: p2 grown in boot 1"
    );
    let fs = &ctx["extra"]["grow_filesystem"];
    assert_eq!(fs["format"], "btrfs", "{test}: {fs:#}");
    assert_eq!(
        fs["status"],
        if resized_before_cut {
            "unchanged"
        } else {
            "done"
        },
        "{test}: what the cut left for boot 2; {fs:#}"
    );
    assert_eq!(fs["new_size"].as_u64(), Some(grown), "{test}: {fs:#}");
    if !resized_before_cut {
        assert_eq!(fs["old_size"].as_u64(), Some(built), "{test}: {fs:#}");
    }
    let show = r.after.sub("x-storage", "btrfs-show");
    let devs: Vec<&str> = show
        .lines()
        .filter(|l| l.trim_start().starts_with("devid"))
        .collect();
    assert_eq!(devs.len(), 1, "{test}: {show}");
    assert_eq!(
        devs[0]
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse::<u64>().ok()),
        Some(grown),
        "{test}: btrfs's device fills p2:\n{show}"
    );
    let usage = r.after.sub("x-storage", "btrfs-usage");
    assert!(
        usage.contains(&format!("Device size:\t\t{grown}"))
            || usage.contains(&format!("Device size:{grown}"))
            || usage.split_whitespace().any(|w| w == grown.to_string()),
        "{test}: btrfs filesystem usage:\n{usage}"
    );
    let subvols = r.after.sub("x-storage", "subvolumes");
    assert!(
        subvols.contains("path root") && subvols.contains("path home"),
        "{test}: {subvols}"
    );
    let rootfs = r.after.sub("x-storage", "rootfs");
    assert!(
        rootfs.starts_with("btrfs ") && rootfs.contains("subvol=/root"),
        "{test}: {rootfs}"
    );
    sentinel(test, &r);
    eprintln!(
        "{test}: cut boot {} ms, re-boot {} ms, all {} ms (disk check {} ms); grow phase {} ms, sysroot phase {} ms",
        r.num("CUT_WALL_MS"), r.num("WALL_MS"), r.num("CUT_TOTAL_MS"), r.num("check_ms"),
        ctx["phases"][1]["duration_ms"], ctx["phases"][2]["duration_ms"]
    );
}

#[test]
fn qemu_luks_lvm_xfs_cut_after_luks_resize() {
    let test = "qemu_luks_lvm_xfs_cut_after_luks_resize";
    let Some(r) = storage(test, "luks") else {
        return;
    };
    let uuid = r.result.get("LUKS_UUID").cloned().unwrap_or_default();
    // Boot 1: p2 grown, then the mapping, by cryptsetup with the initramfs's key file.
    for line in [
        "preroot: grow: /dev/vda2 (gpt, partition 2 of /dev/vda)".to_string(),
        format!("preroot: grow: cryptsetup resize luks-{uuid}: "),
        format!("preroot: grow: LUKS2 luks-{uuid} (/dev/vda2): "),
    ] {
        assert!(
            r.cut_console.contains(&line),
            "{test}: boot 1 has no `{line}`:\n{}",
            r.cut_console
        );
    }
    assert_table(test, &r);
    assert_eq!(
        r.s("luksdump_rc"),
        "0",
        "{test}: cryptsetup luksDump; {:?}",
        r.check
    );
    assert_eq!(r.s("luks_uuid"), uuid, "{test}: {:?}", r.check);
    assert_eq!(r.s("luks_version"), "2", "{test}: {:?}", r.check);
    assert_eq!(r.s("luks_offset"), "16777216", "{test}: {:?}", r.check);
    assert_eq!(
        r.s("luks_whole_device"),
        "1",
        "{test}: the data segment still dynamic; {:?}",
        r.check
    );
    assert_eq!(r.s("luks_keyslots"), "1", "{test}: {:?}", r.check);

    // Boot 2: PV, LV and xfs finished; the mapping was opened whole.
    let ctx = assert_booted_with_preroot(test, &r.after);
    assert_configdrive(test, &ctx);
    assert_configured(test, &r.after, "10.0.2.15", "preroot-qemu");
    let grown = r.p2_grown();
    for (kind, want) in [
        ("partition", "unchanged"),
        ("luks", "unchanged"),
        ("pv", "done"),
        ("lv", "done"),
    ] {
        assert_eq!(
            action(&ctx, kind)["status"],
            want,
            "{test}: {kind} on the re-boot: {:#}",
            ctx["extra"]["grow"]
        );
    }
    let luks = action(&ctx, "luks");
    assert_eq!(
        luks["new_size"].as_u64(),
        Some(grown - 16 * MIB),
        "{test}: {luks:#}"
    );
    let fs = &ctx["extra"]["grow_filesystem"];
    assert_eq!(
        (fs["format"].as_str(), fs["status"].as_str()),
        (Some("xfs"), Some("done")),
        "{test}: {fs:#}"
    );
    let lvm = |topic: &str, table: &str| -> Value {
        let text = r.after.sub("x-storage", topic);
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{test}: {topic}: {e}:\n{text}"))["report"][0][table][0]
            .clone()
    };
    let num = |v: &Value, f: &str| {
        v[f].as_str()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{test}: {f} in {v}"))
    };
    let (pv, vg, lv) = (lvm("pvs", "pv"), lvm("vgs", "vg"), lvm("lvs", "lv"));
    assert_eq!(
        num(&pv, "dev_size"),
        grown - 16 * MIB,
        "{test}: the PV's device is the grown mapping: {pv}"
    );
    assert_eq!(num(&vg, "vg_free_count"), 0, "{test}: {vg}");
    assert_eq!(
        num(&lv, "lv_size"),
        num(&vg, "vg_size"),
        "{test}: {lv} {vg}"
    );
    assert_eq!(
        fs["new_size"].as_u64(),
        Some(num(&lv, "lv_size")),
        "{test}: xfs fills the LV; {fs:#}"
    );
    // The mapping's key is in the kernel keyring, not in its table: reloading the table
    // through the dm ioctl would need the key again, so the resize goes through cryptsetup.
    let table = r.after.sub("x-storage", "dm-table");
    assert!(
        table.contains(":64:logon:cryptsetup:"),
        "{test}: dm tables:\n{table}"
    );
    sentinel(test, &r);

    // The keyless disk: preroot grew its partition, not its mapping, and said why.
    let nokey = r.after.sub("x-storage", "nokey-grow");
    let json = nokey
        .rsplit_once("exit ")
        .map_or(nokey.as_str(), |(j, _)| j);
    let g: Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{test}: nokey-grow: {e}:\n{nokey}"));
    assert!(
        nokey.trim_end().ends_with("exit 0"),
        "{test}: preroot grow failed:\n{nokey}\n{}",
        r.after.sub("x-storage", "nokey-stderr")
    );
    let kinds: Vec<(&str, &str)> = g["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["kind"].as_str().unwrap_or(""),
                a["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("partition", "done"), ("luks", "skipped")],
        "{test}: {g:#}"
    );
    let note = g["actions"][1]["note"].as_str().unwrap_or("");
    assert!(
        note.starts_with("no key: no rd.luks.key= and no LUKS2 token")
            && note.contains("cryptsetup resize nokey"),
        "{test}: {note}"
    );
    assert_eq!(
        g["actions"][1]["new_size"], g["actions"][1]["old_size"],
        "{test}: {g:#}"
    );
    let sizes = |topic: &str| -> Vec<u64> {
        r.after
            .sub("x-storage", topic)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect()
    };
    let (before, after) = (sizes("nokey-before"), sizes("nokey-after"));
    assert_eq!(before.len(), 3, "{test}: vdb, vdb1, nokey: {before:?}");
    assert!(
        after[1] > before[1] && after[2] == before[2],
        "{test}: partition grown, mapping not: {before:?} -> {after:?}"
    );
    eprintln!(
        "{test}: cut boot {} ms, re-boot {} ms, all {} ms (disk check {} ms); boot 2 grow phase {} ms; the keyless disk: {note}",
        r.num("CUT_WALL_MS"), r.num("WALL_MS"), r.num("CUT_TOTAL_MS"), r.num("check_ms"),
        ctx["phases"][1]["duration_ms"]
    );
}

impl std::ops::Deref for Run {
    type Target = CutFiles;
    fn deref(&self) -> &CutFiles {
        &self.files
    }
}
