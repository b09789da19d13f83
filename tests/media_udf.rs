//! The UDF reader on images made by real tools in user space (this kernel cannot mount UDF):
//! `genisoimage -udf` (hybrid ISO9660/UDF 1.02 with files, the shape of Azure's provisioning
//! medium) and `mkudffs` (udftools: empty volumes of each UDF revision; it cannot add files
//! without a mount). Shapes no tool here writes (Extended File Entries with files, long_ad,
//! 16-bit names, a metadata partition with files) and damaged images are built by the
//! test-only writer in `src/media/udf.rs`.
mod common;

use common::TempDir;
use preroot::media::udf::UdfTree;
use preroot::media::Tree;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

#[test]
fn udf_genisoimage_provisioning_medium() {
    require!("udf_genisoimage_provisioning_medium"; "genisoimage");
    let tmp = TempDir::new("udf-geniso");
    let src = tmp.path().join("src");
    let ovf = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/platforms/azure/ovf-env.xml"),
    )
    .unwrap();
    write(&src.join("ovf-env.xml"), &ovf);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    write(&src.join("a/b/c/big.bin"), &big);
    write(&src.join("empty"), b"");
    // A name outside Latin-1: genisoimage records it in 16-bit Compressed Unicode.
    write(&src.join("na\u{ef}ve-\u{4e2d}.txt"), b"unicode");
    let img = tmp.path().join("ovf.iso");
    run(Command::new("genisoimage")
        .args([
            "-quiet",
            "-udf",
            "-input-charset",
            "utf-8",
            "-V",
            "rd_rdfe_stable.161212",
        ])
        .arg("-o")
        .arg(&img)
        .arg(&src));
    let tree = UdfTree::open(&img).unwrap();
    assert_eq!(tree.volume_id(), "rd_rdfe_stable.161212", "PVD volume id");
    assert_eq!(tree.revision().1, 2, "genisoimage writes NSR02 (UDF 1.02)");
    let mut root = tree.list("").unwrap().unwrap();
    root.sort();
    assert_eq!(
        root,
        ["a", "empty", "na\u{ef}ve-\u{4e2d}.txt", "ovf-env.xml"],
        "root listing"
    );
    assert_eq!(
        tree.read("ovf-env.xml", 1 << 20).unwrap().unwrap(),
        ovf,
        "ovf-env.xml"
    );
    assert_eq!(
        tree.read("a/b/c/big.bin", 1 << 20).unwrap().unwrap(),
        big,
        "multi-block file"
    );
    assert_eq!(tree.read("empty", 0).unwrap().unwrap(), b"", "empty file");
    assert_eq!(
        tree.read("na\u{ef}ve-\u{4e2d}.txt", 99).unwrap().unwrap(),
        b"unicode",
        "16-bit name"
    );
    assert_eq!(
        tree.read("a/b", 99).unwrap(),
        None,
        "a directory is not a file"
    );
}

#[test]
fn udf_mkudffs_each_revision() {
    require!("udf_mkudffs_each_revision"; "mkudffs");
    let tmp = TempDir::new("udf-mkudffs");
    // (revision, media type, sector size). mkudffs writes 2.50+ only for BD-R, with a Virtual
    // Allocation Table (a virtual partition map), which the reader refuses by name: Azure's
    // medium is no BD-R. The 2.50 metadata partition is covered by the unit tests' writer.
    let cases = [
        ("1.02", "hd", 2048u32),
        ("1.50", "hd", 2048),
        ("2.01", "hd", 2048),
        ("2.01", "hd", 512),
        ("2.01", "hd", 4096),
        ("2.50", "bdr", 2048),
        ("2.60", "bdr", 2048),
    ];
    for (rev, media, bs) in cases {
        let case = format!("UDF {rev} on {media}, {bs}-byte blocks");
        let img = tmp.path().join(format!("{rev}-{media}-{bs}.img"));
        std::fs::File::create(&img)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        run(Command::new("mkudffs")
            .args(["-b", &bs.to_string(), "-m", media, "--udfrev", rev])
            .args(["--vid=rd_rdfe_stable", "--lvid=AzureLV"])
            .arg(&img));
        if media == "bdr" {
            let e = UdfTree::open(&img)
                .err()
                .unwrap_or_else(|| panic!("{case}: accepted"));
            assert!(
                e.to_string()
                    .contains("\"*UDF Virtual Partition\" partitions are not supported"),
                "{case}: {e}"
            );
            continue;
        }
        let tree = UdfTree::open(&img).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(tree.volume_id(), "rd_rdfe_stable", "{case}: volume id");
        assert_eq!(tree.label(), "AzureLV", "{case}: label");
        let want = u16::from_str_radix(&rev.replace('.', ""), 16).unwrap();
        assert_eq!(tree.revision().0, want, "{case}: revision");
        assert_eq!(tree.list("").unwrap(), Some(vec![]), "{case}: empty root");
        assert_eq!(
            tree.read("ovf-env.xml", 99).unwrap(),
            None,
            "{case}: no file"
        );
    }
}

/// Renames the ISO 9660 volume descriptors of a hybrid image (`CD001` from sector 16 on) to
/// ECMA-168's `CDW02`: still a valid record of UDF's recognition sequence, no longer
/// ISO 9660, so the image is UDF only, as Azure's provisioning medium is.
fn udf_only(img: &Path) {
    let mut data = std::fs::read(img).unwrap();
    let mut sector = 16;
    while data.get(sector * 2048 + 1..sector * 2048 + 6) == Some(b"CD001") {
        data[sector * 2048 + 1..sector * 2048 + 6].copy_from_slice(b"CDW02");
        sector += 1;
    }
    assert!(sector > 16, "{}: no ISO 9660 descriptor", img.display());
    std::fs::write(img, data).unwrap();
}

#[test]
fn media_open_probes_udf() {
    require!("media_open_probes_udf"; "genisoimage", "mkudffs");
    use preroot::context::Access;
    let tmp = TempDir::new("udf-open");
    let ovf = b"<Environment/>\n";
    write(&tmp.path().join("src/ovf-env.xml"), ovf);
    let hybrid = tmp.path().join("hybrid.iso");
    run(Command::new("genisoimage")
        .args(["-quiet", "-udf", "-V", "rd_rdfe_stable.1"])
        .arg("-o")
        .arg(&hybrid)
        .arg(tmp.path().join("src")));
    let pure = tmp.path().join("pure.udf");
    std::fs::copy(&hybrid, &pure).unwrap();
    udf_only(&pure);
    let empty = tmp.path().join("empty.udf");
    std::fs::File::create(&empty)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    run(Command::new("mkudffs").arg(&empty));
    let junk = tmp.path().join("junk.img");
    std::fs::write(&junk, vec![0x5a; 1 << 20]).unwrap();
    type Case<'a> = (&'a str, &'a Path, Option<Access>, Option<&'a [u8]>);
    let cases: [Case; 4] = [
        (
            "hybrid: read by its UDF side",
            &hybrid,
            Some(Access::Udf),
            Some(ovf),
        ),
        ("UDF only", &pure, Some(Access::Udf), Some(ovf)),
        ("empty UDF (mkudffs)", &empty, Some(Access::Udf), None),
        ("neither", &junk, None, None),
    ];
    for (case, path, access, file) in cases {
        match preroot::media::open(path) {
            Ok((tree, got)) => {
                assert_eq!(Some(got), access, "case {case}: access");
                assert_eq!(
                    tree.read("ovf-env.xml", 1024).unwrap().as_deref(),
                    file,
                    "case {case}: ovf-env.xml"
                );
            }
            Err(e) => {
                assert_eq!(access, None, "case {case}: {e}");
                assert!(e.to_string().contains("or UDF image"), "case {case}: {e}");
            }
        }
    }
}
