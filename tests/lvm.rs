//! The LVM metadata reader (`preroot::disk::lvmmeta`) on metadata lvm2 itself writes: a PV
//! on a loop device made by the test, a VG and LVs created without activating anything
//! (`--driverloaded n`: the host has no device-mapper), `pvresize` after the image grew, and
//! enough updates on a small metadata area that the text wraps around its circular buffer.
//! Each step's numbers are compared with `pvs`/`vgs`/`lvs`. Only the loop device the test
//! made is scanned (`--devices`). Needs root, loop devices and `lvm`.

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
