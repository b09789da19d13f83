//! The MIME splitter against every multipart fixture in `../shared/fixtures/multipart/`:
//! leaf parts with their content type, file name and payload hash, in order.

mod common;

use std::path::Path;

fn user_data(case: &Path) -> Option<Vec<u8>> {
    ["input/user_data", "input/openstack/latest/user_data"]
        .iter()
        .find_map(|p| std::fs::read(case.join(p)).ok())
}

#[test]
fn sha256_helper() {
    assert_eq!(
        common::sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn every_multipart_fixture_splits_into_its_parts() {
    let dir = common::fixtures().join("multipart");
    let mut compared = 0;
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let data = user_data(case).unwrap_or_else(|| panic!("{name}: no user_data"));
        let parts = preroot::mime::split(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!parts.is_empty(), "{name}: no parts");
        let Ok(expected) = std::fs::read(case.join("expected/parts.json")) else {
            continue;
        };
        let expected: Vec<serde_json::Value> = serde_json::from_slice(&expected).unwrap();
        assert_eq!(parts.len(), expected.len(), "{name}: number of parts");
        for (i, (part, want)) in parts.iter().zip(&expected).enumerate() {
            assert_eq!(
                Some(part.content_type.as_str()),
                want["content_type"].as_str(),
                "{name}: part {i} type"
            );
            assert_eq!(
                part.filename.as_deref(),
                want["filename"].as_str(),
                "{name}: part {i} file name"
            );
            if let Some(sha) = want["payload_sha256_of_utf8"].as_str() {
                assert_eq!(
                    common::sha256_hex(&part.payload),
                    sha,
                    "{name}: part {i} payload"
                );
            }
        }
        compared += 1;
    }
    assert!(compared >= 3, "only {compared} cases with parts.json");
}

/// cloud-init's launch-index emails: three leaf parts, two of them `text/plain` that the
/// payload refines (`#cloud-config-archive`, `#cloud-config`); a single-part message is one.
#[test]
fn launch_index_emails() {
    let dir = common::fixtures().join("multipart");
    let data = user_data(&dir.join("ci-multipart-launch-index")).unwrap();
    let parts = preroot::mime::split(&data).unwrap();
    let types: Vec<&str> = parts.iter().map(|p| p.effective_type()).collect();
    assert_eq!(
        types,
        [
            "text/cloud-config",
            "text/cloud-config-archive",
            "text/cloud-config"
        ]
    );
    let data = user_data(&dir.join("ci-mime-single-part-launch-index-header")).unwrap();
    let parts = preroot::mime::split(&data).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].effective_type(), "text/cloud-config");
}

/// The same fixtures gzip-compressed (`gzip -n`), and nested as the second part of an outer
/// multipart, give the same leaf parts with the same bytes.
#[test]
fn gzip_and_nested_fixtures_split_the_same() {
    require!("gzip_and_nested_fixtures_split_the_same"; "gzip");
    let dir = common::fixtures().join("multipart");
    for case in [
        "heat-cfntools",
        "heat-software-config",
        "ci-doc-boothook-cloud-config",
    ] {
        let data = user_data(&dir.join(case)).unwrap();
        let plain = preroot::mime::split(&data).unwrap();
        let mut child = std::process::Command::new("gzip")
            .arg("-nc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let gz = child.wait_with_output().unwrap().stdout;
        assert_eq!(preroot::mime::split(&gz).unwrap(), plain, "{case}: gzip");

        let body = String::from_utf8(data.clone()).unwrap();
        let (headers, rest) = body.split_once("\n\n").unwrap();
        let inline = format!(
            "Content-Type: multipart/mixed; boundary=\"outer\"\n\n--outer\n\
             Content-Type: text/x-shellscript\n\n#!/bin/sh\necho first\n--outer\n\
             {headers}\n\n{rest}\n--outer--\n"
        );
        let parts = preroot::mime::split(inline.as_bytes()).unwrap();
        assert_eq!(parts.len(), plain.len() + 1, "{case}: nested");
        assert_eq!(&parts[1..], &plain[..], "{case}: nested parts");
    }
}

/// Mutated fixtures (bytes flipped, cut, duplicated; a fixed xorshift seed, so failures
/// reproduce) never make the splitter or the user-data planner panic.
#[test]
fn mutated_user_data_never_panics() {
    let dir = common::fixtures().join("multipart");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| user_data(&e.unwrap().path()))
        .collect();
    seeds.push(b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed; boundary=c\nContent-Transfer-Encoding: quoted-printable\n\n--c\n\n=4=\n--c--\n--b--".to_vec());
    seeds.push(b"#cloud-config\nwrite_files: [{path: /a, encoding: gz+b64, content: H4sI}]\nusers: [{name: x, groups: 1}]\nchpasswd: {list: 'a:b'}\n".to_vec());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..3000 {
        let mut data = seeds[round % seeds.len()].clone();
        for _ in 0..(next() % 8 + 1) {
            if data.is_empty() {
                break;
            }
            let at = (next() as usize) % data.len();
            match next() % 4 {
                0 => data[at] = next() as u8,
                1 => data.truncate(at),
                2 => {
                    let chunk: Vec<u8> = data[at..].iter().take(40).copied().collect();
                    data.splice(at..at, chunk);
                }
                _ => data.insert(at, b"\n-=:\"\x1f\x8b"[(next() % 7) as usize]),
            }
        }
        let _ = preroot::mime::split(&data);
        let _ = preroot::userdata::plan(&data, "fuzz");
    }
}
