//! The LVM metadata reader (`preroot::disk::lvmmeta`) on metadata lvm2 itself writes: a PV
//! on a loop device made by the test, a VG and LVs created without activating anything
//! (`--driverloaded n`: the host has no device-mapper), `pvresize` after the image grew, and
//! enough updates on a small metadata area that the text wraps around its circular buffer.
//! Each step's numbers are compared with `pvs`/`vgs`/`lvs`. Only the loop device the test
//! made is scanned (`--devices`). Needs root, loop devices and `lvm`. Also the private
//! `/etc/lvm` the grow script runs with (`ConfOverlay`), as lvm itself reads it.

mod common;

use common::{LoopDev, TempDir};
use preroot::disk::lvmmeta;
use std::process::Command;

const LVM_CFG: &str = "devices { use_devicesfile = 0 } backup { backup = 0 archive = 0 }";

/// `lvm ARGS --devices DEV --driverloaded n`; its stdout.
fn lvm(dev: &str, args: &str) -> String {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(format!(
            "lvm {args} --devices {dev} --driverloaded n --config '{LVM_CFG}'"
        ))
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lvm {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One number from `lvm REPORT --noheadings --nosuffix --units b -o FIELD`.
fn num(dev: &str, report: &str, field: &str) -> u64 {
    lvm(
        dev,
        &format!("{report} --noheadings --nosuffix --units b -o {field}"),
    )
    .trim()
    .parse()
    .unwrap()
}

/// The label, the metadata area and the VG, as preroot reads them from the image.
fn read(img: &std::path::Path) -> (lvmmeta::Label, lvmmeta::Vg) {
    let b = std::fs::read(img).unwrap();
    let label = lvmmeta::label(&b[..lvmmeta::LABEL_SCAN_LEN]).unwrap();
    let (start, size) = label.mda;
    let area = &b[start as usize..(start + size) as usize];
    let h = lvmmeta::mda_header(area, start).unwrap();
    let text = lvmmeta::metadata_text(area, &h).unwrap();
    (label, lvmmeta::parse_vg(&text).unwrap())
}

#[test]
fn metadata_lvm_writes() {
    require!("metadata_lvm_writes"; root, loop, "lvm");
    let dir = TempDir::new("lvm");
    let img = dir.path().join("pv.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(200 << 20)
        .unwrap();
    let lo = LoopDev::attach(&img, None);
    let d = lo.dev.as_str();
    // A 32 KiB metadata area (the smallest lvm allows): the text wraps after a few updates.
    lvm(d, &format!("pvcreate -q --metadatasize 32k {d}"));
    lvm(d, &format!("vgcreate -q -s 4m pvtest {d}"));
    lvm(d, "lvcreate -q -an -Zn -l 20 -n root pvtest");
    lvm(d, "lvcreate -q -an -Zn -l 5 -n swap pvtest");
    let check = |case: &str| {
        let (label, vg) = read(&img);
        let pv = vg.pv_by_uuid(&label.pv_uuid).unwrap();
        let ext = vg.extent_bytes();
        assert_eq!(vg.name, "pvtest", "case {case}");
        assert_eq!(vg.seqno, num(d, "vgs", "vg_seqno"), "case {case}: seqno");
        assert_eq!(ext, num(d, "vgs", "vg_extent_size"), "case {case}");
        assert_eq!(label.pe_start, num(d, "pvs", "pe_start"), "case {case}");
        assert_eq!(pv.pe_count, num(d, "pvs", "pv_pe_count"), "case {case}");
        assert_eq!(
            vg.free(),
            num(d, "vgs", "vg_free_count"),
            "case {case}: free"
        );
        assert_eq!(
            vg.lv("root").unwrap().extents * ext,
            num(d, "lvs", "lv_size --select lv_name=root"),
            "case {case}: root LV"
        );
        (vg, label)
    };
    check("created");
    // The disk grows: preroot predicts what pvresize gives, then pvresize does it.
    drop(lo);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(333 << 20)
        .unwrap();
    let lo = LoopDev::attach(&img, None);
    let d2 = lo.dev.clone();
    let (label, vg) = read(&img);
    let pv = vg.pv_by_uuid(&label.pv_uuid).unwrap().clone();
    let predicted = lvmmeta::extents_fitting(&pv, vg.extent_bytes(), 333 << 20);
    assert!(predicted > pv.pe_count, "room to grow");
    lvm(&d2, &format!("pvresize -q {d2}"));
    let (vg, label) = {
        let d = d2.as_str();
        let (label, vg) = read(&img);
        assert_eq!(
            vg.pv_by_uuid(&label.pv_uuid).unwrap().pe_count,
            num(d, "pvs", "pv_pe_count"),
            "after pvresize"
        );
        (vg, label)
    };
    assert_eq!(
        vg.pv_by_uuid(&label.pv_uuid).unwrap().pe_count,
        predicted,
        "preroot's prediction is pvresize's"
    );
    // Many updates: the text wraps around the 32 KiB circular buffer, and every copy reads.
    for i in 0..40 {
        let size = if i % 2 == 0 { "+1" } else { "-1" };
        lvm(&d2, &format!("lvresize -q -f -l {size} pvtest/swap"));
        let (_, vg) = read(&img);
        assert_eq!(vg.seqno, num(&d2, "vgs", "vg_seqno"), "update {i}");
    }
    lvm(&d2, "lvextend -q -l +100%FREE pvtest/root");
    let (_, vg) = read(&img);
    assert_eq!(vg.free(), 0, "all extents in LVs after lvextend +100%FREE");
    assert_eq!(
        vg.lv("root").unwrap().extents * vg.extent_bytes(),
        num(&d2, "lvs", "lv_size --select lv_name=root")
    );
}

/// `lvm lvmconfig --type full KEY` with `LVM_SYSTEM_DIR=sys`: the value lvm takes from its
/// files, or its default.
fn lvmconfig(sys: &std::path::Path, key: &str) -> String {
    let out = Command::new("lvm")
        .args(["lvmconfig", "--type", "full", key])
        .env("LVM_SYSTEM_DIR", sys)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The private `/etc/lvm` the grow script's `lvm` reads (`preroot::disk::lvm::ConfOverlay`):
/// lvm itself finds `reserved_memory = 0` in it (on `--config` lvm ignores that setting), and
/// still the system's lvm.conf, lvmlocal.conf and devices directory; an lvmlocal.conf with
/// activation settings of its own gets no overlay; the overlay is gone when dropped.
#[test]
fn conf_overlay_turns_the_reserve_off_and_keeps_the_system_config() {
    require!("conf_overlay_turns_the_reserve_off_and_keeps_the_system_config"; "lvm");
    use preroot::disk::lvm::ConfOverlay;
    let dir = TempDir::new("lvmconf");
    let etc = dir.path().join("etc-lvm");
    let run = dir.path().join("run");
    std::fs::create_dir_all(etc.join("devices")).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        etc.join("lvm.conf"),
        "devices { use_devicesfile = 0 }\nactivation { udev_sync = 0 }\n",
    )
    .unwrap();
    std::fs::write(etc.join("lvmlocal.conf"), "local {\n\thost_id = 7\n}\n").unwrap();
    assert_eq!(
        lvmconfig(&etc, "activation/reserved_memory"),
        "reserved_memory=8192"
    );
    let overlay = ConfOverlay::new(&etc, &run).expect("an overlay");
    let sys = overlay.dir().to_path_buf();
    for (key, want) in [
        ("activation/reserved_memory", "reserved_memory=0"),
        ("activation/udev_sync", "udev_sync=0"),
        ("devices/use_devicesfile", "use_devicesfile=0"),
        ("local/host_id", "host_id=7"),
    ] {
        assert_eq!(lvmconfig(&sys, key), want, "case {key}");
    }
    assert!(
        sys.join("devices").is_dir(),
        "the devices directory is seen"
    );
    assert_eq!(
        std::fs::read_to_string(etc.join("lvmlocal.conf")).unwrap(),
        "local {\n\thost_id = 7\n}\n",
        "the system's file is not touched"
    );
    drop(overlay);
    assert!(!sys.exists(), "removed on drop");
    std::fs::write(
        etc.join("lvmlocal.conf"),
        "activation { reserved_memory = 16 }\n",
    )
    .unwrap();
    assert!(
        ConfOverlay::new(&etc, &run).is_none(),
        "case its own activation section"
    );
    std::fs::remove_file(etc.join("lvmlocal.conf")).unwrap();
    let overlay = ConfOverlay::new(&etc, &run).expect("an overlay without lvmlocal.conf");
    assert_eq!(
        lvmconfig(overlay.dir(), "activation/reserved_memory"),
        "reserved_memory=0",
        "case no lvmlocal.conf"
    );
}
