//! The LUKS2 header reader (`preroot::disk::luks`) on headers cryptsetup itself writes:
//! `cryptsetup luksFormat` on image files (no device-mapper needed: nothing is opened), each
//! case compared with what `cryptsetup luksDump` says. Needs the tool `cryptsetup`.

mod common;

use common::TempDir;
use preroot::disk::luks::{self, HeaderError, LuksError, SegmentSize};
use std::path::Path;
use std::process::Command;

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-ec").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_image(img: &Path) -> Result<luks::Luks2, LuksError> {
    let bytes = std::fs::read(img).unwrap();
    luks::read(&mut |off, len| {
        let off = usize::try_from(off).map_err(|_| ())?;
        bytes.get(off..off + len).map(<[u8]>::to_vec).ok_or(())
    })
}

/// `luksDump`'s value of `key` (the first line `KEY: value` under any section).
fn dump_value(dump: &str, key: &str) -> String {
    dump.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{dump}"))
        .trim()
        .to_string()
}

#[test]
fn headers_cryptsetup_writes() {
    require!("headers_cryptsetup_writes"; "cryptsetup");
    let dir = TempDir::new("luks");
    let d = dir.path().display();
    sh(&format!("printf secret > {d}/key"));
    let fmt = |img: &str, opts: &str| {
        sh(&format!(
            "truncate -s 64M {d}/{img} && cryptsetup luksFormat -q --key-file {d}/key \
             --pbkdf pbkdf2 --pbkdf-force-iterations 1000 {opts} {d}/{img}"
        ))
    };
    // (case, image, luksFormat options, hdr_size, data offset, sector size, label)
    for (case, img, opts, hdr, offset, sector, label) in [
        (
            "defaults",
            "a.img",
            "--type luks2 --sector-size 4096",
            16384,
            16 << 20,
            4096,
            "",
        ),
        (
            "label, 512-byte sectors, data at 32 MiB",
            "b.img",
            "--type luks2 --label rootfs --sector-size 512 --offset 65536",
            16384,
            32 << 20,
            512,
            "rootfs",
        ),
        (
            "64 KiB metadata, 1 MiB keyslots",
            "c.img",
            "--type luks2 --sector-size 4096 --luks2-metadata-size 64k --luks2-keyslots-size 1m",
            65536,
            // (2 x 64 KiB + 1 MiB, aligned up to 1 MiB by cryptsetup)
            2 << 20,
            4096,
            "",
        ),
    ] {
        fmt(img, opts);
        let path = dir.path().join(img);
        let l = read_image(&path).unwrap_or_else(|e| panic!("case {case}: {e}"));
        let dump = sh(&format!("cryptsetup luksDump {}", path.display()));
        assert_eq!(
            l.header.uuid(),
            sh(&format!("cryptsetup luksUUID {}", path.display())).trim(),
            "case {case}"
        );
        assert_eq!(l.header.label(), label, "case {case}");
        assert_eq!(l.header.hdr_size, hdr, "case {case}");
        assert_eq!(
            dump_value(&dump, "Metadata area"),
            format!("{hdr} [bytes]"),
            "case {case}"
        );
        let s = l.segment().unwrap_or_else(|e| panic!("case {case}: {e}"));
        assert_eq!((s.offset, s.sector_size), (offset, sector), "case {case}");
        assert_eq!(
            dump_value(&dump, "offset"),
            format!("{offset} [bytes]"),
            "case {case}"
        );
        assert_eq!(s.size, SegmentSize::Dynamic, "case {case}");
        assert_eq!(s.encryption, "aes-xts-plain64", "case {case}");
        assert_eq!(l.keyslots, 1, "case {case}");
        assert!(!l.header.secondary, "case {case}: the primary is read");
        // The mapping on a 64 MiB device: the device less the data offset.
        assert_eq!(
            l.target_bytes(64 << 20),
            Ok((64 << 20) - offset),
            "case {case}"
        );
    }

    // A second key raises the sequence id of both copies; a systemd-tpm2 token without a PIN
    // is one preroot may use, with a PIN it is not.
    let a = dir.path().join("a.img");
    let before = read_image(&a).unwrap().header.seqid;
    sh(&format!(
        "printf other > {d}/key2 && cryptsetup luksAddKey -q --key-file {d}/key \
         --pbkdf pbkdf2 --pbkdf-force-iterations 1000 {d}/a.img {d}/key2"
    ));
    for (pin, want) in [(false, 1), (true, 0)] {
        std::fs::write(
            dir.path().join("token.json"),
            format!(
                r#"{{"type":"systemd-tpm2","keyslots":["1"],"tpm2-blob":"AA==","tpm2-pcrs":[7],"tpm2-pcr-bank":"sha256","tpm2-primary-alg":"ecc","tpm2-policy-hash":"00","tpm2-pin":{pin}}}"#
            ),
        )
        .unwrap();
        sh(&format!(
            "cryptsetup token remove --token-id 0 {d}/a.img 2>/dev/null || true; \
             cryptsetup token import --token-id 0 --json-file {d}/token.json {d}/a.img"
        ));
        let l = read_image(&a).unwrap();
        assert!(
            l.header.seqid > before,
            "seqid {} after {before}",
            l.header.seqid
        );
        assert_eq!(l.keyslots, 2);
        assert_eq!(
            l.unattended_tokens().count(),
            want,
            "tpm2-pin {pin}: {:?}",
            l.tokens
        );
    }

    // The primary wiped: the secondary copy is read, as cryptsetup would.
    let b = dir.path().join("b.img");
    let uuid = read_image(&b).unwrap().header.uuid().to_string();
    sh(&format!(
        "dd if=/dev/zero of={d}/b.img bs=4096 count=1 conv=notrunc status=none"
    ));
    let l = read_image(&b).unwrap();
    assert!(l.header.secondary, "the secondary copy");
    assert_eq!(l.header.uuid(), uuid);
    assert_eq!(l.segment().unwrap().offset, 32 << 20);

    // LUKS1 is recognised, not read.
    sh(&format!(
        "truncate -s 8M {d}/l1.img && cryptsetup luksFormat -q --type luks1 --key-file {d}/key \
         --pbkdf-force-iterations 1000 {d}/l1.img"
    ));
    assert_eq!(
        read_image(&dir.path().join("l1.img")),
        Err(LuksError::Header(HeaderError::Luks1))
    );
}
