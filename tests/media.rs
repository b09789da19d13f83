//! Datasource media read without mounting: real ISO9660 (Rock Ridge, Joliet, plain), FAT12/16/32
//! and ext4 images built here with the same tools that write config drives and NoCloud seeds,
//! plus damaged images that must end in an error, never a panic or a hang.
mod common;

use common::{fixtures, TempDir};
use preroot::context::Access;
use preroot::media::label::{probe_path, FsType, Label};
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
    assert_eq!(medium, Access::Iso9660, "medium");
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
    require!("fat_config_drive_all_widths"; "mkfs.vfat", "mcopy");
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
        assert_eq!(medium, Access::Fat, "{case}: medium");
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
    require!("fat_root_label_entry_wins"; "mkfs.vfat", "fatlabel");
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
    require!("nocloud_seeds_iso_and_fat"; "xorriso", "mkfs.vfat", "mcopy");
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

// ---- ext2/3/4 seeds (mkfs.extN -d), read in user space ----

/// `mkfs.<fs> -q -F -L <label> <args> -d <src> <img> <size>`, with a fixed clock.
fn mkfs_ext(fs: &str, args: &[&str], src: &Path, img: &Path, size: &str, label: &str) {
    let _ = std::fs::remove_file(img);
    run(Command::new(format!("mkfs.{fs}"))
        .args(["-q", "-F", "-L", label])
        .args(args)
        .arg("-d")
        .arg(src)
        .arg(img)
        .arg(size)
        .env("E2FSPROGS_FAKE_TIME", "1700000000"));
}

/// Runs debugfs commands (one a line) on `img`, read-write; any complaint fails the test.
fn debugfs(img: &Path, commands: &str) {
    let script = img.with_extension("debugfs");
    std::fs::write(&script, commands).unwrap();
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(img)
        .output()
        .unwrap();
    let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(
        out.status.success() && errors.is_empty(),
        "debugfs {commands:?}: {errors:?}"
    );
}

/// The physical block of logical block `n` of `path` in `img` (debugfs `bmap`).
fn bmap(img: &Path, path: &str, n: u64) -> u64 {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("bmap {path} {n}"))
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("bmap {path} {n}: {e}: {out:?}"))
}

/// Overwrites bytes of `img` at `at`.
fn patch(img: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

/// The config drive tree, plus what makes ext layouts differ: a 100-byte file (inline data
/// past `i_block`), and 150 files in one directory (a multi-block directory; with few inodes
/// per group, inodes in many groups). With the `lost+found` that mkfs makes anyway.
fn ext_tree(tmp: &TempDir) -> PathBuf {
    let src = config_drive_tree(tmp);
    std::fs::create_dir_all(src.join("lost+found")).unwrap();
    std::fs::write(src.join("openstack/hundred"), [b'h'; 100]).unwrap();
    let spread = src.join("spread");
    std::fs::create_dir_all(&spread).unwrap();
    for i in 0..150 {
        std::fs::write(
            spread.join(format!("file-with-a-longish-name-{i:03}")),
            format!("{i}\n"),
        )
        .unwrap();
    }
    src
}

#[test]
fn ext_seeds_every_layout() {
    require!("ext_seeds_every_layout"; "mkfs.ext4", "e2fsck", "debugfs");
    let tmp = TempDir::new("ext");
    let src = ext_tree(&tmp);
    // (case, mkfs.<fs>, options, size, then e2fsck -fyD to index directories)
    let cases: &[(&str, &str, &[&str], &str, bool)] = &[
        ("ext2", "ext2", &[], "16M", false),
        ("ext2 revision 0", "ext2", &["-r", "0"], "16M", false),
        ("ext3", "ext3", &[], "16M", false),
        ("ext4", "ext4", &[], "16M", false),
        ("ext4 4 KiB blocks", "ext4", &["-b", "4096"], "16M", false),
        ("ext4 64 KiB blocks", "ext4", &["-b", "65536"], "32M", false),
        (
            "ext4 32-byte descriptors",
            "ext4",
            &["-O", "^64bit"],
            "16M",
            false,
        ),
        ("ext4 128-byte inodes", "ext4", &["-I", "128"], "16M", false),
        ("ext4 1 KiB inodes", "ext4", &["-I", "1024"], "16M", false),
        (
            "ext4 inline data",
            "ext4",
            &["-O", "inline_data"],
            "16M",
            false,
        ),
        (
            "ext4 block maps, no extents",
            "ext4",
            &["-O", "^extent,^64bit"],
            "16M",
            false,
        ),
        (
            "ext4 bigalloc",
            "ext4",
            &["-O", "bigalloc", "-C", "16384"],
            "32M",
            false,
        ),
        (
            "ext4 meta_bg, 64 groups of 8 inodes",
            "ext4",
            &[
                "-O",
                "meta_bg,^resize_inode",
                "-N",
                "200",
                "-g",
                "1024",
                "-b",
                "1024",
            ],
            "64M",
            false,
        ),
        (
            "ext4 sparse_super2",
            "ext4",
            &["-O", "sparse_super2"],
            "16M",
            false,
        ),
        ("ext4 casefold", "ext4", &["-O", "casefold"], "16M", false),
        ("ext4 htree directories", "ext4", &[], "16M", true),
        ("ext3 htree directories", "ext3", &[], "16M", true),
    ];
    for (case, fs, args, size, index) in cases {
        let img = tmp.path().join("seed.img");
        mkfs_ext(fs, args, &src, &img, size, "cidata");
        if *index {
            // e2fsck -D builds htree indexes; exit 1 means "changed", as wanted.
            let st = Command::new("e2fsck")
                .args(["-fyD"])
                .arg(&img)
                .output()
                .unwrap();
            assert!(matches!(st.status.code(), Some(0 | 1)), "{case}: {st:?}");
            let stat = Command::new("debugfs")
                .args(["-R", "stat /spread"])
                .arg(&img)
                .output()
                .unwrap();
            let stat = String::from_utf8_lossy(&stat.stdout);
            let flags = stat
                .split("Flags: 0x")
                .nth(1)
                .and_then(|r| u32::from_str_radix(r.split_whitespace().next()?, 16).ok())
                .unwrap();
            assert_ne!(flags & 0x1000, 0, "{case}: /spread is not indexed");
        }
        assert_eq!(
            probe_path(&img).unwrap(),
            label(FsType::Ext4, "cidata"),
            "{case}: label"
        );
        let (tree, medium) = media::open(&img).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(medium, Access::Ext4, "{case}: medium");
        assert_same_tree(tree.as_ref(), &src, case);
        assert_paths_and_caps(tree.as_ref(), case);
    }
}

/// Files past the direct blocks: the single, double and triple indirect maps of ext2 (1 KiB
/// blocks: 12 direct, then 256, 65536, 16777216 blocks) and extents, with holes.
#[test]
fn ext_large_and_sparse_files() {
    require!("ext_large_and_sparse_files"; "mkfs.ext4");
    let tmp = TempDir::new("ext-large");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut big = Vec::new();
    let mut rng = Rng(7);
    while big.len() < (1 << 20) + 5 {
        big.extend_from_slice(&rng.next().to_le_bytes());
    }
    std::fs::write(src.join("big"), &big).unwrap();
    // Data at the start and past block 12 + 256 + 65536: the triple indirect block.
    let sparse_len = 65 << 20;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(src.join("sparse")).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", sparse_len - 4).unwrap();
    }
    for (case, fs, args) in [
        ("ext2 indirect maps", "ext2", &["-b", "1024"][..]),
        ("ext4 extents", "ext4", &["-b", "1024"][..]),
    ] {
        let img = tmp.path().join("seed.img");
        mkfs_ext(fs, args, &src, &img, "8M", "cidata");
        let (tree, _) = media::open(&img).unwrap();
        assert_eq!(
            tree.read("big", 2 << 20).unwrap().as_deref(),
            Some(&big[..]),
            "{case}: big"
        );
        let got = tree.read("sparse", 80 << 20).unwrap().unwrap();
        assert_eq!(got.len() as u64, sparse_len, "{case}: sparse length");
        assert_eq!(&got[..4], b"head", "{case}: sparse head");
        assert_eq!(&got[got.len() - 4..], b"tail", "{case}: sparse tail");
        assert!(
            got[4..got.len() - 4].iter().all(|b| *b == 0),
            "{case}: holes read as zeros"
        );
    }
}

/// Every byte read from one open image counts against MAX_IMAGE_READ, so reading one file
/// over and over ends in an error, not minutes of I/O.
#[test]
fn ext_read_budget_per_image() {
    require!("ext_read_budget_per_image"; "mkfs.ext4");
    let tmp = TempDir::new("ext-budget");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("four"), vec![b'4'; 4 << 20]).unwrap();
    let img = tmp.path().join("seed.img");
    mkfs_ext("ext4", &[], &src, &img, "8M", "cidata");
    let (tree, _) = media::open(&img).unwrap();
    let limit = media::ext4::MAX_IMAGE_READ / (4 << 20);
    let mut reads = 0;
    let e = loop {
        match tree.read("four", 8 << 20) {
            Ok(_) => reads += 1,
            Err(e) => break e,
        }
        assert!(reads <= limit, "{reads} reads of 4 MiB and no error");
    };
    assert_eq!(reads, limit - 1, "reads before the budget ran out");
    assert!(e.to_string().contains("bytes read from this image"), "{e}");
}

/// What is done to a fresh seed image.
type Damage = Box<dyn Fn(&Path)>;

/// What a hostile ext4 seed must end in.
enum Want {
    /// `media::open` fails, its message containing this.
    Open(&'static str),
    /// Reading this path fails as damaged or unsupported, the message containing this.
    Read(&'static str, &'static str),
    /// Reading this path is refused as larger than the cap.
    TooLarge(&'static str),
    /// Reading this path gives this many bytes (the rest of the file is a hole).
    Size(&'static str, usize),
}

/// A 4 KiB-block ext4 NoCloud seed (with an OpenStack directory for the directory cases),
/// then `damage` applied to it with debugfs or by hand.
fn hostile_seed(tmp: &TempDir, name: &str, damage: &dyn Fn(&Path)) -> PathBuf {
    let src = tmp.path().join("src");
    if !src.exists() {
        copy_tree(
            &fixtures().join("nocloud/afterburn-kubevirt-nocloud-v2/input"),
            &src,
        );
        std::fs::create_dir_all(src.join("openstack/latest")).unwrap();
        std::fs::write(src.join("openstack/latest/meta_data.json"), b"{}\n").unwrap();
    }
    let img = tmp.path().join(format!("{name}.img"));
    mkfs_ext(
        "ext4",
        &["-b", "4096", "-O", "^has_journal"],
        &src,
        &img,
        "8M",
        "cidata",
    );
    damage(&img);
    img
}

/// Every hostile seed ends in its documented error (or result) within a second, through the
/// library; then `preroot context --from nocloud:IMG` runs under `ulimit -v` 128 MiB, ends
/// within 5 s with exit 0 (the error recorded in the context) or 1 (one line), never by a
/// signal, and never stores what a link points at.
#[test]
fn ext_hostile_seeds() {
    require!("ext_hostile_seeds"; "mkfs.ext4", "debugfs");
    let tmp = TempDir::new("ext-hostile");
    let long_target = format!("/{}etc/shadow", "x/".repeat(50));
    let long_link = format!("rm /user-data\nsymlink /user-data {long_target}\n");
    // The root directory's first block, and where the entry for `meta-data` starts in it.
    let root_block = |img: &Path| bmap(img, "/", 0) * 4096;
    let cases: Vec<(&str, Damage, Want)> = vec![
        (
            "symlink to /etc/shadow",
            Box::new(|i| debugfs(i, "rm /user-data\nsymlink /user-data /etc/shadow\n")),
            Want::Read("user-data", "symbolic link to \"/etc/shadow\""),
        ),
        (
            "relative symlink out of the medium",
            Box::new(|i| debugfs(i, "rm /user-data\nsymlink /user-data ../../../etc/shadow\n")),
            Want::Read("user-data", "symbolic link to \"../../../etc/shadow\""),
        ),
        (
            "symlink with its target in a block",
            Box::new(move |i| debugfs(i, &long_link)),
            Want::Read(
                "user-data",
                "x/x/etc/shadow\": links on a medium are never followed",
            ),
        ),
        (
            "symlinked directory on the path",
            Box::new(|i| debugfs(i, "symlink /openstack/current latest\n")),
            Want::Read(
                "openstack/current/meta_data.json",
                "openstack/current: damaged or unsupported: a symbolic link to \"latest\"",
            ),
        ),
        (
            "FIFO as user-data",
            Box::new(|i| debugfs(i, "rm /user-data\nmknod user-data p\n")),
            Want::Read("user-data", "a FIFO"),
        ),
        (
            "directory that lists itself",
            Box::new(|i| debugfs(i, "ln /openstack /openstack/again\n")),
            Want::Read("openstack/again/latest/meta_data.json", "directory loop"),
        ),
        (
            "root that lists itself",
            Box::new(|i| debugfs(i, "ln / /again\n")),
            Want::Read("again/meta-data", "directory loop"),
        ),
        (
            "extent tree 6 deep",
            Box::new(|i| debugfs(i, "sif /user-data block[1] 0x00060004\n")),
            Want::Read("user-data", "deeper than 5 levels"),
        ),
        (
            "extent tree loop: an index node pointing at itself",
            Box::new(|i| {
                let b = bmap(i, "/user-data", 0);
                // Header: magic, 1 entry, room for 340, depth 1; index: block 0 -> b.
                let mut node = Vec::new();
                for v in [0xF30Au16, 1, 340, 1] {
                    node.extend(v.to_le_bytes());
                }
                node.extend(0u32.to_le_bytes());
                node.extend(0u32.to_le_bytes());
                node.extend((b as u32).to_le_bytes());
                patch(i, b * 4096, &node);
                debugfs(
                    i,
                    &format!(
                        "sif /user-data block[0] 0x0001F30A\nsif /user-data block[1] 0x00010004\n\
                         sif /user-data block[3] 0\nsif /user-data block[4] {b}\nsif /user-data block[5] 0\n"
                    ),
                );
            }),
            Want::Read("user-data", "depth 1 where 0 was expected"),
        ),
        (
            "i_size 2^63-1",
            Box::new(|i| debugfs(i, "sif /user-data size 0x7fffffffffffffff\n")),
            Want::TooLarge("user-data"),
        ),
        (
            "i_size 8 MiB over one block",
            Box::new(|i| debugfs(i, "sif /user-data size 0x800000\n")),
            Want::Size("user-data", 8 << 20),
        ),
        (
            "extent past the end of the filesystem",
            Box::new(|i| debugfs(i, "sif /user-data block[5] 0x0fffffff\n")),
            Want::Read("user-data", "outside the filesystem"),
        ),
        (
            "zero-length record in the root directory",
            Box::new(move |i| patch(i, root_block(i) + 4, &[0, 0])),
            Want::Read("meta-data", "rec_len is smaller than the minimal 12"),
        ),
        (
            "entry naming an inode past the last",
            Box::new(move |i| {
                let at = root_block(i);
                let block = &std::fs::read(i).unwrap()[at as usize..at as usize + 4096];
                let name = block.windows(9).position(|w| w == b"meta-data").unwrap();
                patch(i, at + name as u64 - 8, &0x00FF_FFFFu32.to_le_bytes());
            }),
            Want::Read("meta-data", "past the filesystem's"),
        ),
        (
            "root directory of 1 GiB",
            Box::new(|i| debugfs(i, "sif / size 0x40000000\n")),
            Want::Read("meta-data", "more than the 1048576-byte limit"),
        ),
        (
            "unused inode",
            Box::new(|i| debugfs(i, "sif /user-data links_count 0\n")),
            Want::Read("user-data", "unused (no links)"),
        ),
        (
            "encrypted inode",
            Box::new(|i| debugfs(i, "sif /user-data flags 0x80800\n")),
            Want::Read("user-data", "encrypted"),
        ),
        (
            "inode table past the end",
            Box::new(|i| debugfs(i, "set_bg 0 inode_table 0xfffffff\n")),
            Want::Open("inode table of group 0"),
        ),
        (
            "encrypt feature",
            Box::new(|i| debugfs(i, "feature encrypt\n")),
            Want::Open("unsupported incompatible feature encrypt"),
        ),
        (
            "journal needs recovery",
            Box::new(|i| debugfs(i, "feature needs_recovery\n")),
            Want::Open("needs_recovery"),
        ),
        (
            "unknown incompatible feature",
            Box::new(|i| patch(i, 1024 + 0x60 + 3, &[0x80])),
            Want::Open("unknown to this reader (bits 0x80000000)"),
        ),
    ];
    for (n, (case, damage, want)) in cases.into_iter().enumerate() {
        let img = hostile_seed(&tmp, &format!("h{n}"), damage.as_ref());
        let started = std::time::Instant::now();
        let cap = 16 << 20;
        let (needle, outcome) = match (media::open(&img), &want) {
            (Err(e), Want::Open(needle)) => (*needle, e.to_string()),
            (Ok(_), Want::Open(_)) => panic!("{case}: opened"),
            (Err(e), _) => panic!("{case}: open: {e}"),
            (Ok((tree, _)), Want::Read(path, needle)) => match tree.read(path, cap) {
                Err(e) => {
                    assert!(matches!(e.kind, MediaErrorKind::Corrupt(_)), "{case}: {e}");
                    (*needle, e.to_string())
                }
                Ok(r) => panic!("{case}: read {r:?}"),
            },
            (Ok((tree, _)), Want::TooLarge(path)) => match tree.read(path, cap) {
                Err(e) => {
                    assert!(
                        matches!(e.kind, MediaErrorKind::TooLarge { cap: c, .. } if c == cap),
                        "{case}: {e}"
                    );
                    ("more than the", e.to_string())
                }
                Ok(r) => panic!("{case}: read {} bytes", r.map_or(0, |r| r.len())),
            },
            (Ok((tree, _)), Want::Size(path, len)) => {
                let got = tree.read(path, cap).unwrap().unwrap();
                assert_eq!(got.len(), *len, "{case}: size");
                assert!(got.starts_with(b"#cloud-config"), "{case}: data first");
                ("", String::new())
            }
        };
        assert!(
            outcome.contains(needle),
            "{case}: {outcome:?} lacks {needle:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{case}: took {:?}",
            started.elapsed()
        );
        if case.starts_with("directory that") {
            let (tree, _) = media::open(&img).unwrap();
            assert!(
                tree.list("openstack")
                    .unwrap()
                    .unwrap()
                    .contains(&"again".to_string()),
                "{case}: listed"
            );
            assert_eq!(
                tree.read("openstack/latest/meta_data.json", 64)
                    .unwrap()
                    .as_deref(),
                Some(&b"{}\n"[..]),
                "{case}: the way without the loop still works"
            );
        }

        // The whole datasource read, as the boot does it, under a memory limit.
        let state = tmp.path().join(format!("state{n}"));
        let started = std::time::Instant::now();
        let out = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 131072 && exec \"$0\" context --from \"nocloud:$1\" --state-dir \"$2\"")
            .arg(env!("CARGO_BIN_EXE_preroot"))
            .arg(&img)
            .arg(&state)
            .output()
            .unwrap();
        let took = started.elapsed();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{case}: preroot ended with {:?}: {text}",
            out.status
        );
        assert!(
            took < std::time::Duration::from_secs(5),
            "{case}: preroot took {took:?}"
        );
        // NoCloud reads only its own files: the OpenStack paths are checked above only.
        let size = format!("\"size\": {}", 8 << 20);
        let cli_needle = match &want {
            Want::Read(path, _) | Want::TooLarge(path) if path.contains('/') => "",
            Want::Size(..) => &size,
            _ => needle,
        };
        assert!(
            text.contains(cli_needle),
            "{case}: preroot said {text:?}, lacks {cli_needle:?}"
        );
        if let Ok(secrets) = std::fs::read_dir(&state) {
            for f in secrets.flatten() {
                let data = std::fs::read(f.path()).unwrap_or_default();
                assert!(
                    !data.starts_with(b"root:"),
                    "{case}: {} holds a password file",
                    f.path().display()
                );
            }
        }
    }
}

#[test]
fn nocloud_seeds_ext2_3_4() {
    require!("nocloud_seeds_ext2_3_4"; "mkfs.ext4");
    let tmp = TempDir::new("nocloud-ext");
    let mut n = 0;
    for case in std::fs::read_dir(fixtures().join("nocloud")).unwrap() {
        let input = case.unwrap().path().join("input");
        if !input.is_dir() {
            continue;
        }
        // The context from the image is the context from the directory, but for its source.
        let from_dir = context_from(&format!("nocloud:{}", input.display()), tmp.path());
        let src = tmp.path().join(format!("src{n}"));
        copy_tree(&input, &src);
        std::fs::create_dir_all(src.join("lost+found")).unwrap();
        let input = src;
        for fs in ["ext2", "ext3", "ext4"] {
            n += 1;
            let img = tmp.path().join(format!("seed{n}.img"));
            mkfs_ext(fs, &[], &input, &img, "8M", "cidata");
            let (tree, medium) = media::open(&img).unwrap();
            assert_eq!(medium, Access::Ext4, "{fs} {input:?}");
            assert_same_tree(tree.as_ref(), &input, &format!("{fs} {input:?}"));
            let mut from_img = context_from(&format!("nocloud:{}", img.display()), tmp.path());
            assert_eq!(from_img["source"]["medium"], "ext4", "{fs} {input:?}");
            from_img["source"] = from_dir["source"].clone();
            assert_eq!(from_img, from_dir, "{fs} {input:?}: context");
        }
    }
    assert!(n >= 3, "no nocloud fixtures found");
}

/// `preroot context --from SPEC` with a fresh state directory under `tmp`; the JSON, with
/// the state directory's path replaced by `STATE`.
fn context_from(spec: &str, tmp: &Path) -> serde_json::Value {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let state = tmp.join(format!("state{}", N.fetch_add(1, Ordering::Relaxed)));
    let out = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(["context", "--from", spec, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace(state.to_str().unwrap(), "STATE");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn iso_genisoimage_relocated_deep_dirs() {
    require!("iso_genisoimage_relocated_deep_dirs"; "genisoimage");
    let tmp = TempDir::new("iso-geniso");
    let src = config_drive_tree(&tmp);
    let iso = tmp.path().join("config.iso");
    // genisoimage moves directories deeper than 8 levels to rr_moved and links them back with
    // Rock Ridge CL/PL/RE entries; the reader must show them in their real place only.
    run(Command::new("genisoimage")
        .args(["-quiet", "-R", "-J", "-V", "config-2", "-o"])
        .arg(&iso)
        .arg(&src));
    assert_eq!(
        probe_path(&iso).unwrap(),
        label(FsType::Iso9660, "config-2"),
        "label"
    );
    let (tree, _) = media::open(&iso).unwrap();
    let mut root = tree.list("").unwrap().unwrap();
    root.retain(|n| n != "rr_moved");
    assert_eq!(root, vec!["a", "ec2", "openstack", "sys"], "root listing");
    let (files, _) = walk(&src);
    for f in &files {
        let want = std::fs::read(src.join(f)).unwrap();
        assert_eq!(
            tree.read(f, 1 << 20).unwrap(),
            Some(want),
            "contents of {f}"
        );
    }
    assert_eq!(
        tree.list("a/b/c/d/e/f/g/h/i/j").unwrap(),
        Some(vec!["Deep_File.Txt".to_string()]),
        "relocated directory listed in place"
    );
    assert_paths_and_caps(tree.as_ref(), "genisoimage");
}

// ---- damaged and hostile images ----

/// Expects a clean error of kind Corrupt (not Io, not a panic).
fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, media::MediaError>, case: &str) {
    match r {
        Err(e) => assert!(matches!(e.kind, MediaErrorKind::Corrupt(_)), "{case}: {e}"),
        Ok(v) => panic!("{case}: expected a Corrupt error, got {v:?}"),
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Sets a both-byte-order 32-bit field (ECMA-119 §7.3.3).
fn put_both32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    b[at + 4..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// A Rock Ridge config drive ISO and the byte offsets of its root directory's records.
struct RrIso {
    _tmp: TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
    /// Byte offset of the root directory.
    root: usize,
    /// Offsets of the root's records: `.`, `..`, then `a`, `ec2`, …
    records: Vec<usize>,
}

fn rr_iso(tag: &str) -> RrIso {
    let tmp = TempDir::new(tag);
    let src = config_drive_tree(&tmp);
    let path = tmp.path().join("x.iso");
    xorriso(&src, &path, &["-R", "-J"], "config-2");
    let bytes = std::fs::read(&path).unwrap();
    let root = le32(&bytes, 32768 + 156 + 2) as usize * 2048;
    let mut records = Vec::new();
    let mut at = root;
    while bytes[at] != 0 {
        records.push(at);
        at += bytes[at] as usize;
    }
    RrIso {
        _tmp: tmp,
        path,
        bytes,
        root,
        records,
    }
}

#[test]
fn iso_truncated() {
    require!("iso_truncated"; "xorriso");
    let iso = rr_iso("iso-trunc");
    std::fs::write(&iso.path, &iso.bytes[..40 * 1024]).unwrap();
    // The descriptors are still there, so the label is; the directories are not.
    assert_eq!(
        probe_path(&iso.path).unwrap(),
        label(FsType::Iso9660, "config-2"),
        "label"
    );
    assert_corrupt(media::open(&iso.path).map(|_| ()), "open truncated");
}

#[test]
fn iso_bad_record_length() {
    require!("iso_bad_record_length"; "xorriso");
    let mut iso = rr_iso("iso-reclen");
    // The third root record (`a`) claims 20 bytes: shorter than a record's fixed part.
    iso.bytes[iso.records[2]] = 20;
    std::fs::write(&iso.path, &iso.bytes).unwrap();
    let (tree, _) = media::open(&iso.path).unwrap();
    assert_corrupt(tree.list(""), "list root");
    assert_corrupt(
        tree.read("openstack/latest/meta_data.json", 1 << 20),
        "read",
    );
    // A name length running past its record.
    let mut iso = rr_iso("iso-reclen2");
    let last = *iso.records.last().unwrap();
    iso.bytes[last + 32] = 250;
    std::fs::write(&iso.path, &iso.bytes).unwrap();
    let (tree, _) = media::open(&iso.path).unwrap();
    assert_corrupt(tree.list(""), "name past its record");
}

#[test]
fn iso_directory_pointing_at_itself() {
    require!("iso_directory_pointing_at_itself"; "xorriso");
    let mut iso = rr_iso("iso-self");
    // `a` now has the root's extent: a/a/a/… is the root again, forever.
    let root_lba = (iso.root / 2048) as u32;
    let root_len = le32(&iso.bytes, iso.records[0] + 10);
    let a = iso.records[2];
    put_both32(&mut iso.bytes, a + 2, root_lba);
    put_both32(&mut iso.bytes, a + 10, root_len);
    std::fs::write(&iso.path, &iso.bytes).unwrap();
    let (tree, _) = media::open(&iso.path).unwrap();
    let root = tree.list("").unwrap();
    let deep = vec!["a"; 64].join("/");
    assert_eq!(
        tree.list(&deep).unwrap(),
        root,
        "64 levels of a/ is the root"
    );
    let too_deep = vec!["a"; 65].join("/");
    let e = tree.list(&too_deep).expect_err("65 levels");
    assert!(matches!(e.kind, MediaErrorKind::BadPath), "{e}");
}

#[test]
fn iso_continuation_loop() {
    require!("iso_continuation_loop"; "xorriso");
    let mut iso = rr_iso("iso-ce");
    // Point the root `.` record's CE entry back at its own System Use field: an endless chain.
    let dot = iso.records[0];
    let su = dot + 34;
    let end = dot + iso.bytes[dot] as usize;
    let mut at = su;
    while &iso.bytes[at..at + 2] != b"CE" {
        at += iso.bytes[at + 2] as usize;
        assert!(at + 4 <= end, "xorriso wrote no CE entry in the root");
    }
    put_both32(&mut iso.bytes, at + 4, (iso.root / 2048) as u32);
    put_both32(&mut iso.bytes, at + 12, (su - iso.root) as u32);
    put_both32(&mut iso.bytes, at + 20, (end - su) as u32);
    std::fs::write(&iso.path, &iso.bytes).unwrap();
    assert_corrupt(media::open(&iso.path).map(|_| ()), "CE loop");
}

/// A FAT16 image with `DIR/` (several files) and a multi-cluster `BIG.TXT` in the root.
struct Fat16 {
    _tmp: TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
    bpb: preroot::media::label::fat::Bpb,
}

impl Fat16 {
    fn root_entry(&self, name: &[u8; 11]) -> usize {
        let (at, len) = self.bpb.root_dir_region().unwrap();
        (at as usize..(at + len) as usize)
            .step_by(32)
            .find(|e| &self.bytes[*e..*e + 11] == name)
            .unwrap_or_else(|| panic!("no {:?} in the root", String::from_utf8_lossy(name)))
    }

    fn first_cluster(&self, name: &[u8; 11]) -> u16 {
        let e = self.root_entry(name);
        u16::from_le_bytes([self.bytes[e + 26], self.bytes[e + 27]])
    }

    fn set_fat(&mut self, cluster: u16, value: u16) {
        let at = self.bpb.fat_offset() as usize + 2 * cluster as usize;
        self.bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
        std::fs::write(&self.path, &self.bytes).unwrap();
    }
}

fn fat16(tag: &str) -> Fat16 {
    let tmp = TempDir::new(tag);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("DIR")).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("DIR/F{i}.TXT")), format!("{i}\n")).unwrap();
    }
    std::fs::write(src.join("BIG.TXT"), vec![b'x'; 10_000]).unwrap();
    let path = tmp.path().join("x.img");
    run(Command::new("mkfs.vfat")
        .args(["-F", "16", "-s", "1", "-n", "CIDATA", "-C"])
        .arg(&path)
        .arg("16384"));
    let mut mcopy = Command::new("mcopy");
    run(mcopy
        .args(["-s", "-i"])
        .arg(&path)
        .arg(src.join("DIR"))
        .arg(src.join("BIG.TXT"))
        .arg("::"));
    let bytes = std::fs::read(&path).unwrap();
    let bpb = preroot::media::label::fat::parse_bpb(&bytes).unwrap();
    Fat16 {
        _tmp: tmp,
        path,
        bytes,
        bpb,
    }
}

#[test]
fn fat_cluster_chain_loops() {
    require!("fat_cluster_chain_loops"; "mkfs.vfat", "mcopy");
    let mut img = fat16("fat-loop");
    let (tree, _) = media::open(&img.path).unwrap();
    assert_eq!(
        tree.list("dir").unwrap().map(|l| l.len()),
        Some(40),
        "before: 40 files"
    );
    assert_eq!(
        tree.read("big.txt", 1 << 20).unwrap().map(|v| v.len()),
        Some(10_000),
        "before"
    );
    // The directory's first cluster points at itself.
    let dir = img.first_cluster(b"DIR        ");
    img.set_fat(dir, dir);
    let (tree, _) = media::open(&img.path).unwrap();
    assert_corrupt(tree.list("dir"), "directory loop");
    assert_corrupt(
        tree.read("dir/f1.txt", 100),
        "lookup through a directory loop",
    );
    // A file's second cluster points back at its first.
    let big = img.first_cluster(b"BIG     TXT");
    let second = u16::from_le_bytes({
        let at = img.bpb.fat_offset() as usize + 2 * big as usize;
        [img.bytes[at], img.bytes[at + 1]]
    });
    img.set_fat(second, big);
    let (tree, _) = media::open(&img.path).unwrap();
    assert_corrupt(tree.read("big.txt", 1 << 20), "file loop");
    // A free cluster in the middle of a chain.
    img.set_fat(big, 0);
    let (tree, _) = media::open(&img.path).unwrap();
    assert_corrupt(tree.read("big.txt", 1 << 20), "free cluster in chain");
}

/// A deterministic xorshift stream, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_are_not_a_medium() {
    let tmp = TempDir::new("random");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (n, len) in [0usize, 1, 511, 512, 4096, 40 * 1024, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let path = tmp.path().join(format!("r{n}"));
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(probe_path(&path).unwrap(), None, "{len} random bytes");
        assert_corrupt(
            media::open(&path).map(|_| ()),
            &format!("{len} random bytes"),
        );
    }
}

/// Flips bytes in the metadata of real images (ISO9660, FAT16, FAT32, ext2, ext4), then
/// probes, opens, lists and reads: any result is fine except a panic or a hang (a watchdog
/// fails the test, after 120 s plus 0.1 s a case).
/// 400 cases per image; `PREROOT_MUTATIONS=N` runs N.
#[test]
fn mutated_images_never_panic_or_hang() {
    require!("mutated_images_never_panic_or_hang"; "xorriso", "mkfs.vfat", "mcopy", "mkfs.ext4");
    let tmp = TempDir::new("mutate");
    let src = config_drive_tree(&tmp);
    let (files, dirs) = walk(&src);
    let iso = tmp.path().join("base.iso");
    xorriso(&src, &iso, &["-R", "-J"], "config-2");
    let fat = tmp.path().join("base.img");
    mkfs_vfat(&src, &fat, "16", "16384", "CONFIG-2");
    let fat32 = tmp.path().join("base32.img");
    mkfs_vfat(&src, &fat32, "32", "40960", "CONFIG-2");
    // Few inodes and no journal: inode tables, directories and small files in the first
    // 128 KiB, where the mutations land.
    let ext = |fs: &str| {
        let img = tmp.path().join(format!("base.{fs}"));
        let args = ["-b", "1024", "-N", "128", "-O", "^has_journal"];
        mkfs_ext(fs, &args, &src, &img, "4M", "config-2");
        img
    };
    let (ext2, ext4) = (ext("ext2"), ext("ext4"));
    let work = tmp.path().to_path_buf();
    let cases: u32 = std::env::var("PREROOT_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for (base, region) in [
            (iso, 200 * 1024),
            (fat, 160 * 1024),
            (fat32, 600 * 1024),
            (ext2, 128 * 1024),
            (ext4, 128 * 1024),
        ] {
            use std::os::unix::fs::FileExt;
            // Only the metadata region is rewritten per case; the rest is copied once.
            let path = work.join("mutated");
            std::fs::copy(&base, &path).unwrap();
            let orig = std::fs::read(&base).unwrap()[..region].to_vec();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            for _ in 0..cases {
                let mut b = orig.clone();
                for _ in 0..1 + rng.next() % 8 {
                    let at = (rng.next() % region as u64) as usize;
                    b[at] = rng.next() as u8;
                }
                file.write_all_at(&b, 0).unwrap();
                let _ = probe_path(&path);
                if let Ok((tree, _)) = media::open(&path) {
                    for d in &dirs {
                        let _ = tree.list(d);
                    }
                    for f in &files {
                        let _ = tree.read(f, 1 << 20);
                    }
                }
            }
        }
        done_tx.send(()).unwrap();
    });
    match done_rx.recv_timeout(std::time::Duration::from_secs(120 + u64::from(cases) / 10)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("a mutated image hung the reader")
        }
        Err(e) => panic!("the mutation worker panicked ({e})"),
    }
}

// ---- a config drive partition on a GPT disk, through a loop device ----

#[test]
fn loop_gpt_config_drive_partition() {
    require!("loop_gpt_config_drive_partition"; root, loop, "sgdisk", "partx", "xorriso", "mkfs.vfat", "mcopy");
    use std::os::unix::fs::FileExt;
    let tmp = TempDir::new("gpt");
    let src = config_drive_tree(&tmp);
    let iso = tmp.path().join("config.iso");
    xorriso(&src, &iso, &["-R", "-J"], "config-2");
    let fat = tmp.path().join("fat.img");
    mkfs_vfat(&src, &fat, "16", "16384", "CIDATA");
    // Like Ironic: the OS partition first, a config-2 partition at the end of the disk.
    let disk = tmp.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(48 << 20)
        .unwrap();
    run(Command::new("sgdisk")
        .args([
            "-n",
            "1:2048:+16M",
            "-t",
            "1:0700",
            "-n",
            "2:-8M:0",
            "-c",
            "2:config-2",
        ])
        .arg(&disk));
    let start = |n: u32| -> u64 {
        let out = Command::new("sgdisk")
            .arg("-i")
            .arg(n.to_string())
            .arg(&disk)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("First sector:"))
            .unwrap();
        line.split_whitespace()
            .nth(2)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 512
    };
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.write_all_at(&std::fs::read(&fat).unwrap(), start(1))
        .unwrap();
    f.write_all_at(&std::fs::read(&iso).unwrap(), start(2))
        .unwrap();
    drop(f);
    let dev = common::LoopDev::attach(&disk, None);
    let whole = probe_path(Path::new(&dev.dev)).unwrap();
    assert_eq!(
        whole, None,
        "the whole disk is no filesystem (protective MBR)"
    );
    let meta = std::fs::read(src.join("openstack/latest/meta_data.json")).unwrap();
    for (n, want) in [
        (1, label(FsType::Fat, "CIDATA")),
        (2, label(FsType::Iso9660, "config-2")),
    ] {
        let part = dev.partition(n);
        assert_eq!(
            probe_path(&part).unwrap(),
            want,
            "label of {}",
            part.display()
        );
        let (tree, _) = media::open(&part).unwrap();
        assert_eq!(
            tree.read("openstack/latest/meta_data.json", 1 << 20)
                .unwrap(),
            Some(meta.clone()),
            "meta_data.json on {}",
            part.display()
        );
        assert_same_tree(tree.as_ref(), &src, &part.display().to_string());
    }
}

/// Issue 16 item 7 (its ISO9660 side): a Rock Ridge symbolic link read as an empty file, so
/// `user-data -> /etc/shadow` dropped the user data with no error. A link (read, or as a
/// directory on the way) is now an error naming its target, as in ext4; a FIFO (its `PX`
/// mode) is an error too; the files beside them read as before.
#[test]
fn iso_rock_ridge_links_and_fifos_are_errors() {
    require!("iso_rock_ridge_links_and_fifos_are_errors"; "xorriso", "mkfifo");
    let tmp = TempDir::new("iso-links");
    let src = config_drive_tree(&tmp);
    std::os::unix::fs::symlink("/etc/shadow", src.join("openstack/latest/user_data_link")).unwrap();
    std::os::unix::fs::symlink("latest", src.join("openstack/current")).unwrap();
    std::os::unix::fs::symlink("../../../etc/passwd", src.join("user-data")).unwrap();
    run(Command::new("mkfifo").arg(src.join("openstack/latest/vendor_fifo")));
    let img = tmp.path().join("links.iso");
    xorriso(&src, &img, &["-R", "-J"], "config-2");
    let (tree, _) = media::open(&img).unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "openstack/latest/user_data_link",
            "openstack/latest/user_data_link: damaged or unsupported: a symbolic link to \"/etc/shadow\": links on a medium are never followed",
        ),
        ("user-data", "a symbolic link to \"../../../etc/passwd\""),
        (
            "openstack/current/meta_data.json",
            "openstack/current: damaged or unsupported: a symbolic link to \"latest\"",
        ),
        ("openstack/latest/vendor_fifo", "a FIFO (mode 0o10644), not a regular file"),
    ];
    for (path, want) in cases {
        let e = tree.read(path, 1 << 20).expect_err(path);
        assert!(
            matches!(e.kind, MediaErrorKind::Corrupt(_)) && e.to_string().contains(want),
            "{path}: {e}"
        );
    }
    let e = tree
        .list("openstack/current")
        .expect_err("list through a link");
    assert!(e.to_string().contains("symbolic link to \"latest\""), "{e}");
    let names = tree.list("openstack/latest").unwrap().unwrap();
    assert!(
        names.contains(&"user_data_link".to_string()),
        "listed: {names:?}"
    );
    assert_eq!(
        tree.read("openstack/latest/meta_data.json", 1 << 20)
            .unwrap()
            .as_deref(),
        Some(&std::fs::read(src.join("openstack/latest/meta_data.json")).unwrap()[..]),
        "a file beside them"
    );
}
