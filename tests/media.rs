//! Datasource media read without mounting: real ISO9660 (Rock Ridge, Joliet, plain), FAT12/16/32
//! and ext4 images built here with the same tools that write config drives and NoCloud seeds,
//! plus damaged images that must end in an error, never a panic or a hang.
mod common;

use common::{fixtures, TempDir};
use preroot::context::Medium;
use preroot::detect::label::{probe_path, FsType, Label};
use preroot::media::{self, MediaErrorKind, Tree};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command and fails the test with its stderr if it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The OpenStack config drive fixture, plus a long mixed-case name and a 10-deep directory.
fn config_drive_tree(tmp: &TempDir) -> PathBuf {
    let src = tmp.path().join("src");
    copy_tree(
        &fixtures().join("openstack/cloudinit-configdrive-v2-full/input"),
        &src,
    );
    let deep = src.join("a/b/c/d/e/f/g/h/i/j");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("Deep_File.Txt"), b"deep\n").unwrap();
    std::fs::write(
        src.join("openstack/latest/Mixed_Case_Long_File_Name.Json"),
        b"{\"long\": true}\n",
    )
    .unwrap();
    src
}

/// Every file under `dir`, relative, `/`-separated; and every directory (with "" for the root).
fn walk(dir: &Path) -> (Vec<String>, Vec<String>) {
    fn go(base: &Path, rel: &str, files: &mut Vec<String>, dirs: &mut Vec<String>) {
        dirs.push(rel.to_string());
        for e in std::fs::read_dir(base.join(rel)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().unwrap().is_dir() {
                go(base, &r, files, dirs);
            } else {
                files.push(r);
            }
        }
    }
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    go(dir, "", &mut files, &mut dirs);
    (files, dirs)
}

/// The medium holds exactly `src`: every file byte for byte, every directory's listing, with
/// names compared case-sensitively.
fn assert_same_tree(tree: &dyn Tree, src: &Path, case: &str) {
    let (files, dirs) = walk(src);
    for f in &files {
        let want = std::fs::read(src.join(f)).unwrap();
        let got = tree
            .read(f, 1 << 20)
            .unwrap_or_else(|e| panic!("{case}: read {f}: {e}"));
        assert_eq!(got.as_deref(), Some(&want[..]), "{case}: contents of {f}");
    }
    for d in &dirs {
        let mut want: Vec<String> = std::fs::read_dir(src.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        want.sort();
        let got = tree
            .list(d)
            .unwrap_or_else(|e| panic!("{case}: list {d:?}: {e}"));
        assert_eq!(got, Some(want), "{case}: listing of {d:?}");
    }
}

/// Lookups that must fail cleanly on any medium holding the config drive tree.
fn assert_paths_and_caps(tree: &dyn Tree, case: &str) {
    let meta = "openstack/latest/meta_data.json";
    let len = tree.read(meta, 1 << 20).unwrap().unwrap().len() as u64;
    match tree.read(meta, len - 1) {
        Err(e) => assert!(
            matches!(e.kind, MediaErrorKind::TooLarge { size, cap } if size == len && cap == len - 1),
            "{case}: cap one short: {e}"
        ),
        Ok(r) => panic!("{case}: cap one short gave {r:?}"),
    }
    assert_eq!(
        tree.read(meta, len).unwrap().map(|v| v.len() as u64),
        Some(len),
        "{case}: cap exact"
    );
    for bad in [
        "../etc/passwd",
        "openstack/../openstack/latest/user_data",
        "./x",
    ] {
        let e = tree.read(bad, 1 << 20).expect_err(bad);
        assert!(
            matches!(e.kind, MediaErrorKind::BadPath),
            "{case}: {bad}: {e}"
        );
        let e = tree.list(bad).expect_err(bad);
        assert!(
            matches!(e.kind, MediaErrorKind::BadPath),
            "{case}: list {bad}: {e}"
        );
    }
    assert_eq!(
        tree.read("openstack/nope/meta_data.json", 1 << 20).unwrap(),
        None,
        "{case}: missing dir"
    );
    assert_eq!(
        tree.read("openstack/latest/nope", 1 << 20).unwrap(),
        None,
        "{case}: missing file"
    );
    assert_eq!(
        tree.read("openstack/latest", 1 << 20).unwrap(),
        None,
        "{case}: read of a dir"
    );
    assert_eq!(tree.list(meta).unwrap(), None, "{case}: list of a file");
    assert_eq!(
        tree.read("openstack/latest/meta_data.json/x", 1 << 20)
            .unwrap(),
        None,
        "{case}: file used as a dir"
    );
    let deep = "/a/b/c/d/e/f/g/h/i/j/Deep_File.Txt";
    assert_eq!(
        tree.read(deep, 64).unwrap().as_deref(),
        Some(&b"deep\n"[..]),
        "{case}: leading /"
    );
}

fn xorriso(src: &Path, out: &Path, flags: &[&str], volid: &str) {
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet"])
        .args(flags)
        .args(["-V", volid, "-o"])
        .arg(out)
        .arg(src));
}

fn mkfs_vfat(src: &Path, img: &Path, fat_bits: &str, kib: &str, label: &str) {
    run(Command::new("mkfs.vfat")
        .args(["-F", fat_bits, "-n", label, "-C"])
        .arg(img)
        .arg(kib));
    let mut mcopy = Command::new("mcopy");
    mcopy.args(["-s", "-i"]).arg(img);
    for e in std::fs::read_dir(src).unwrap() {
        mcopy.arg(e.unwrap().path());
    }
    run(mcopy.arg("::"));
}

fn label(fs: FsType, label: &str) -> Option<Label> {
    Some(Label {
        fs,
        label: label.to_string(),
    })
}

#[test]
fn iso_rock_ridge_joliet_config_drive() {
    require!("iso_rock_ridge_joliet_config_drive"; "xorriso");
    let tmp = TempDir::new("iso-rr");
    let src = config_drive_tree(&tmp);
    // Names only Rock Ridge keeps (Joliet forbids `;` and `:` and stops at 64 characters), so
    // the comparison below proves the Rock Ridge names are the ones read.
    std::fs::write(src.join("openstack/x;y:z"), b"rr").unwrap();
    std::fs::write(src.join("openstack").join("n".repeat(100)), b"long").unwrap();
    let iso = tmp.path().join("config.iso");
    xorriso(&src, &iso, &["-R", "-J"], "config-2");
    assert_eq!(
        probe_path(&iso).unwrap(),
        label(FsType::Iso9660, "config-2"),
        "label"
    );
    let (tree, medium) = media::open(&iso).unwrap();
    assert_eq!(medium, Medium::Iso9660, "medium");
    assert_same_tree(tree.as_ref(), &src, "rock ridge");
    assert_paths_and_caps(tree.as_ref(), "rock ridge");
}

#[test]
fn iso_joliet_only() {
    require!("iso_joliet_only"; "xorriso");
    let tmp = TempDir::new("iso-joliet");
    let src = config_drive_tree(&tmp);
    let iso = tmp.path().join("joliet.iso");
    // xorriso writes Rock Ridge unless told not to.
    xorriso(&src, &iso, &["--norock", "-J"], "config-2");
    let (tree, _) = media::open(&iso).unwrap();
    assert_same_tree(tree.as_ref(), &src, "joliet");
    assert_paths_and_caps(tree.as_ref(), "joliet");
}

#[test]
fn iso_plain_names() {
    require!("iso_plain_names"; "xorriso");
    let tmp = TempDir::new("iso-plain");
    // Names that survive ISO level 1 (8.3, upper case): shown lower case, found in any case.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("config/latest")).unwrap();
    std::fs::write(src.join("config/latest/meta.js"), b"{}").unwrap();
    std::fs::write(src.join("config/latest/USERDATA"), b"#cloud-config\n").unwrap();
    std::fs::write(src.join("README"), b"r").unwrap();
    let iso = tmp.path().join("plain.iso");
    xorriso(&src, &iso, &["--norock"], "CONFIG-2");
    assert_eq!(
        probe_path(&iso).unwrap(),
        label(FsType::Iso9660, "CONFIG-2"),
        "label"
    );
    let (tree, _) = media::open(&iso).unwrap();
    assert_eq!(
        tree.list("").unwrap(),
        Some(vec!["config".to_string(), "readme".to_string()]),
        "root listing"
    );
    assert_eq!(
        tree.list("config/latest").unwrap(),
        Some(vec!["meta.js".to_string(), "userdata".to_string()]),
        "listing: no ;1, no trailing dot, lower case"
    );
    assert_eq!(
        tree.read("Config/LATEST/userdata", 100).unwrap().as_deref(),
        Some(&b"#cloud-config\n"[..]),
        "any case"
    );
    assert_eq!(
        tree.read("config/latest/meta.js", 100).unwrap().as_deref(),
        Some(&b"{}"[..]),
        "ext"
    );
}

#[test]
fn fat_config_drive_all_widths() {
    require!("fat_config_drive_all_widths"; "mkfs.vfat" "mcopy");
    let tmp = TempDir::new("fat");
    let src = config_drive_tree(&tmp);
    // FAT12 (8 MiB with 4 KiB clusters), FAT16, FAT32 (needs 65525+ clusters to be proper).
    for (bits, kib, extra) in [
        ("12", "8192", None),
        ("16", "16384", None),
        ("32", "40960", Some("-s1")),
    ] {
        let img = tmp.path().join(format!("fat{bits}.img"));
        let mut mk = Command::new("mkfs.vfat");
        mk.args(["-F", bits, "-n", "CONFIG-2"]);
        if let Some(x) = extra {
            mk.arg(x);
        }
        run(mk.arg("-C").arg(&img).arg(kib));
        let mut mcopy = Command::new("mcopy");
        mcopy.args(["-s", "-i"]).arg(&img);
        for e in std::fs::read_dir(&src).unwrap() {
            mcopy.arg(e.unwrap().path());
        }
        run(mcopy.arg("::"));
        let case = format!("FAT{bits}");
        assert_eq!(
            probe_path(&img).unwrap(),
            label(FsType::Fat, "CONFIG-2"),
            "{case}: label"
        );
        let (tree, medium) = media::open(&img).unwrap();
        assert_eq!(medium, Medium::Fat, "{case}: medium");
        assert_same_tree(tree.as_ref(), &src, &case);
        assert_paths_and_caps(tree.as_ref(), &case);
        assert_eq!(
            tree.read("OPENSTACK/Latest/mixed_case_long_file_name.json", 100)
                .unwrap()
                .as_deref(),
            Some(&b"{\"long\": true}\n"[..]),
            "{case}: case-insensitive long name"
        );
    }
}

#[test]
fn fat_root_label_entry_wins() {
    require!("fat_root_label_entry_wins"; "mkfs.vfat" "fatlabel");
    let tmp = TempDir::new("fat-label");
    let img = tmp.path().join("seed.img");
    run(Command::new("mkfs.vfat")
        .args(["-n", "OLD"])
        .arg("-C")
        .arg(&img)
        .arg("4096"));
    // fatlabel rewrites both places; patch the BPB copy back so only the root entry says cidata.
    run(Command::new("fatlabel").arg(&img).arg("cidata"));
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[0x2B..0x36].copy_from_slice(b"NO NAME    ");
    std::fs::write(&img, &bytes).unwrap();
    let got = probe_path(&img).unwrap().unwrap();
    assert_eq!(got.label.to_lowercase(), "cidata", "root entry label");
}

#[test]
fn nocloud_seeds_iso_and_fat() {
    require!("nocloud_seeds_iso_and_fat"; "xorriso" "mkfs.vfat" "mcopy");
    let tmp = TempDir::new("nocloud");
    let mut n = 0;
    for case in std::fs::read_dir(fixtures().join("nocloud")).unwrap() {
        let input = case.unwrap().path().join("input");
        if !input.is_dir() {
            continue;
        }
        n += 1;
        let iso = tmp.path().join(format!("seed{n}.iso"));
        xorriso(&input, &iso, &["-R", "-J"], "cidata");
        assert_eq!(
            probe_path(&iso).unwrap(),
            label(FsType::Iso9660, "cidata"),
            "{input:?}"
        );
        let (tree, _) = media::open(&iso).unwrap();
        assert_same_tree(tree.as_ref(), &input, &format!("iso {input:?}"));
        let img = tmp.path().join(format!("seed{n}.img"));
        mkfs_vfat(&input, &img, "12", "2048", "CIDATA");
        assert_eq!(
            probe_path(&img).unwrap(),
            label(FsType::Fat, "CIDATA"),
            "{input:?}"
        );
        let (tree, _) = media::open(&img).unwrap();
        assert_same_tree(tree.as_ref(), &input, &format!("fat {input:?}"));
    }
    assert!(n >= 1, "no nocloud fixtures found");
}

#[test]
fn ext4_label_only() {
    require!("ext4_label_only"; "mkfs.ext4");
    let tmp = TempDir::new("ext4");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("meta-data"), b"instance-id: x\n").unwrap();
    let img = tmp.path().join("seed.img");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-L", "cidata", "-d"])
        .arg(&src)
        .arg(&img)
        .arg("4M"));
    assert_eq!(
        probe_path(&img).unwrap(),
        label(FsType::Ext4, "cidata"),
        "label"
    );
    let e = media::open(&img)
        .err()
        .expect("ext4 is not read in user space");
    assert!(matches!(e.kind, MediaErrorKind::Corrupt(_)), "{e}");
}
