//! The `preroot` command line as a user meets it: help, version, usage errors, the bundled
//! sample config drive (a case written for this project, not taken from upstream), and
//! detection on fake machine trees.

mod common;

use common::TempDir;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn preroot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(args)
        .output()
        .expect("run preroot")
}

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
        .display()
        .to_string()
}

fn json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn help_names_every_command_and_option() {
    for args in [&["--help"][..], &["help"], &[]] {
        let out = preroot(args);
        assert_eq!(out.status.code(), Some(0), "case {args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for word in [
            "context",
            "--from",
            "--root",
            "--state-dir",
            "-v",
            "--version",
            "configdrive",
            "nocloud",
            "opennebula",
        ] {
            assert!(text.contains(word), "case {args:?}: help lacks {word}");
        }
    }
}

/// `git rev-parse --short=12 HEAD` in `dir`, if `dir` is the top of a git work tree.
fn git_head(dir: &Path) -> Option<String> {
    let top = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()?;
    let top = String::from_utf8_lossy(&top.stdout).trim().to_string();
    if fs::canonicalize(&top).ok()? != fs::canonicalize(dir).ok()? {
        return None;
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `preroot --version`: the version and, built from a git checkout, the commit (issue 18).
#[test]
fn version_names_the_commit() {
    let out = preroot(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let want = match git_head(repo) {
        Some(c) => format!("preroot {} (commit {c})", env!("CARGO_PKG_VERSION")),
        None => {
            eprintln!(
                "NOTE version_names_the_commit: not a git checkout, expecting the version alone"
            );
            format!("preroot {}", env!("CARGO_PKG_VERSION"))
        }
    };
    assert_eq!(text, want);
}

/// The newest compiled build script of this crate (`target/<profile>/build/preroot-*/`).
fn build_script() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let build = exe.parent()?.parent()?.join("build");
    fs::read_dir(build)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("preroot-"))
        .map(|e| e.path().join("build-script-build"))
        .filter(|p| p.exists())
        .max_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// What `build.rs` decides, run on three trees: this checkout (its commit), a tree with no
/// `.git` (a `make dist` tarball: nothing), and a tarball unpacked *inside* this checkout
/// (rpmbuild's BUILD directory under `target/`: nothing either, not the checkout's HEAD).
#[test]
fn version_commit_from_build_script() {
    let Some(script) = build_script() else {
        common::missing(
            "version_commit_from_build_script",
            "the compiled build script",
        );
        return;
    };
    let run = |dir: &Path| {
        let out = Command::new(&script)
            .env("CARGO_MANIFEST_DIR", dir)
            .env_remove("PREROOT_COMMIT")
            .output()
            .expect("run build script");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("cargo:rustc-env=PREROOT_COMMIT="))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no PREROOT_COMMIT in {text}"))
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(c) = git_head(repo) {
        assert_eq!(run(repo), c, "case checkout");
    }
    let outside = TempDir::new("version-tarball");
    assert_eq!(
        run(outside.path()),
        "",
        "case tarball outside any repository"
    );
    let inside = repo
        .join("target")
        .join(format!("version-nested-{}", std::process::id()));
    fs::create_dir_all(&inside).unwrap();
    let nested = run(&inside);
    let _ = fs::remove_dir_all(&inside);
    assert_eq!(nested, "", "case tarball unpacked inside the checkout");
}

/// `preroot CMD --help` (and `preroot help CMD`) is that command's help, not the general one.
#[test]
fn each_command_has_its_own_help() {
    for (cmd, options) in [
        (
            "context",
            &["--from KIND:PATH", "--platform P", "--metadata-url URL"][..],
        ),
        ("run", &["--phase PHASE"]),
        ("show", &["--json"]),
        (
            "render",
            &[
                "--context FILE",
                "--format FORMAT",
                "--out DIR",
                "--root DIR",
            ],
        ),
        ("grow", &["--dry-run", "--json", "[ROOTSPEC]"]),
        ("net", &["--iface NAME"]),
        ("apply", &["--root DIR", "default_user"]),
        ("status", &["--wait", "--timeout S"]),
        ("clean", &["--ssh-host-keys", "--homes"]),
    ] {
        for args in [[cmd, "--help"], ["help", cmd], [cmd, "-h"]] {
            let out = preroot(&args);
            assert_eq!(out.status.code(), Some(0), "case {args:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.starts_with(&format!("Usage: preroot {cmd}")),
                "case {args:?}: {text}"
            );
            assert!(
                !text.contains("\nCommands:"),
                "case {args:?}: the general help"
            );
            for o in options {
                assert!(text.contains(o), "case {args:?}: lacks {o}");
            }
        }
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        &["context", "--from"][..],
        &["context", "--from", "floppy:/x"],
        &["frobnicate"],
        &["context", "--bogus"],
    ] {
        let out = preroot(args);
        assert_eq!(out.status.code(), Some(2), "case {args:?}");
        assert!(out.stdout.is_empty(), "case {args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("preroot: "),
            "case {args:?}"
        );
    }
}

#[test]
fn missing_medium_is_a_clean_error() {
    let state = TempDir::new("cli-missing");
    let out = preroot(&[
        "context",
        "--from",
        "configdrive:/nonexistent/drive",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/drive"), "{err}");

    // A directory that is not a config drive.
    let empty = TempDir::new("cli-empty");
    let out = preroot(&[
        "context",
        "--from",
        &format!("configdrive:{}", empty.path().display()),
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a config drive"));
}

/// Issue 16 item 22: a bad OpenNebula `ETH0_IP` (the host name's last fallback) was reported
/// as "hostname refused", and its raw newline split the log line. Every line names the input,
/// shows the value escaped and says the rule, one line each (`-v` shows the log).
#[test]
fn bad_opennebula_value_is_named_escaped_in_one_line() {
    let tmp = TempDir::new("cli-one-eth0");
    let medium = tmp.path().join("medium");
    fs::create_dir_all(&medium).unwrap();
    fs::write(
        medium.join("context.sh"),
        "ETH0_IP='10.0.0.5\nrm -rf /'\nETH0_MAC='52:54:00:12:34:56'\n",
    )
    .unwrap();
    let from = format!("opennebula:{}", medium.display());
    let state = tmp.path().join("state");
    let args = [
        "context",
        "--from",
        &from,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let out = preroot(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(r#"ETH0_IP: "10.0.0.5\nrm -rf /" refused as the host name: hostname label"#),
        "{err}"
    );
    let mut verbose = vec!["-v"];
    verbose.extend(args);
    let out = preroot(&verbose);
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines() {
        assert!(
            line.starts_with("preroot: "),
            "a value split a log line: {line:?} in\n{err}"
        );
    }
}

/// The bundled bare-metal sample: values written by hand here, not computed by the code.
#[test]
fn sample_bare_metal_config_drive() {
    let state = TempDir::new("cli-sample");
    let out = preroot(&[
        "context",
        "--from",
        &format!("configdrive:{}", data("sample-configdrive")),
        "--root",
        &data("sample-machine"),
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    let ctx = json(&out);
    assert_eq!(
        ctx["instance_id"], "3f7c1c2e-5b1a-4d0e-9a44-0d3c6f1e2a10",
        "latest/ wins over the dated version"
    );
    assert_eq!(ctx["hostname"], "node-17.rack4.example.org");
    assert_eq!(
        ctx["ssh_keys"].as_array().unwrap().len(),
        2,
        "public_keys and keys merged without duplicates"
    );
    assert_eq!(ctx["random_seed"], "cHJlcm9vdCBzYW1wbGUgcmFuZG9tIHNlZWQ=");
    assert_eq!(ctx["extra"]["availability_zone"], "az-rack4");
    assert_eq!(ctx["extra"]["meta"]["role"], "compute");
    assert_eq!(ctx["user_data"]["type"], "cloud-config");
    assert!(
        !out.stdout.windows(19).any(|w| w == b"s3cret-Never-Logged"),
        "password inline"
    );
    assert!(
        !out.stderr.windows(19).any(|w| w == b"s3cret-Never-Logged"),
        "password logged"
    );
    assert_eq!(
        fs::read_to_string(ctx["password"]["path"].as_str().unwrap()).unwrap(),
        "s3cret-Never-Logged"
    );

    let links = ctx["network"]["links"].as_array().unwrap();
    let by_name = |n: &str| {
        links
            .iter()
            .find(|l| l["name"] == n)
            .unwrap_or_else(|| panic!("no link {n}: {links:?}"))
    };
    assert_eq!(by_name("eno1")["id"], "port-a");
    assert_eq!(by_name("eno2")["mtu"], 9000);
    let bond = by_name("bond0");
    assert_eq!(bond["type"], "bond");
    assert_eq!(bond["mode"], "802.3ad");
    assert_eq!(bond["members"], serde_json::json!(["port-a", "port-b"]));
    assert_eq!(bond["options"]["xmit_hash_policy"], "layer3+4");
    assert_eq!(
        bond["addressing"],
        serde_json::json!([
            {"method": "static", "address": "203.0.113.17", "prefix": 24, "gateway": "203.0.113.1"},
            {"method": "static", "address": "2001:db8:17::17", "prefix": 64, "gateway": "2001:db8:17::1"}
        ])
    );
    let vlan = by_name("bond0.40");
    assert_eq!(vlan["vlan_id"], 40);
    assert_eq!(vlan["id"], "storage");
    assert_eq!(
        vlan["routes"],
        serde_json::json!([{"to": "10.41.0.0/16", "via": "10.40.0.1"}])
    );
    let spare = by_name("enp3s0");
    assert_eq!(spare["origin"], "fallback");
    assert_eq!(
        spare["addressing"],
        serde_json::json!([{"method": "dhcp4"}])
    );
    assert_eq!(
        ctx["network"]["dns"]["nameservers"],
        serde_json::json!(["203.0.113.53", "2001:db8:17::53"])
    );
    assert_eq!(ctx["files"][0]["path"], "/etc/motd.d/preroot");
}

/// A machine tree with nothing to identify it: the context comes from the command line.
#[test]
fn unknown_machine_yields_cmdline_context() {
    let root = TempDir::new("cli-unknown");
    common::fake_machine(
        root.path(),
        "root=/dev/vda1 ro\n",
        &[("ens3", "52:54:00:12:34:56")],
    );
    let state = TempDir::new("cli-unknown-state");
    let ctx = json(&common::context_cmd(root.path(), state.path(), &[]));
    assert_eq!(ctx["platform"], Value::Null);
    assert_eq!(ctx["source"]["kind"], "kernel-cmdline");
    assert_eq!(ctx["host_nics"][0]["name"], "ens3");
}

/// DMI says EC2 but there is no medium: the context needs the metadata service, which is
/// the network stage's; the error says so instead of inventing a context.
#[test]
fn dmi_platform_without_medium_says_what_is_needed() {
    let root = TempDir::new("cli-ec2");
    let dmi = root.path().join("sys/class/dmi/id");
    fs::create_dir_all(&dmi).unwrap();
    fs::write(dmi.join("sys_vendor"), "Amazon EC2\n").unwrap();
    let state = TempDir::new("cli-ec2-state");
    // The network stage waits for a NIC until the deadline; this machine has none.
    let out = common::context_cmd(root.path(), state.path(), &["--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("platform ec2")
            && err.contains("Amazon EC2")
            && err.contains("169.254.169.254"),
        "{err}"
    );
}

/// dracut users' `ip=` alone configures the network: a static address with gateway, DNS
/// and hostname, the second NIC by DHCP; a bad parameter is a warning, not a failure.
#[test]
fn ip_only_cmdline_context() {
    let root = TempDir::new("cli-ip");
    common::fake_machine(
        root.path(),
        "root=/dev/vda1 ip=192.0.2.10::192.0.2.1:255.255.255.0:web-1:ens3:none:192.0.2.53 \
         ip=ens4:dhcp nameserver=[2001:db8::53] preroot.timeout=soon\n",
        &[("ens3", "52:54:00:00:00:03"), ("ens4", "52:54:00:00:00:04")],
    );
    let state = TempDir::new("cli-ip-state");
    let ctx = json(&common::context_cmd(root.path(), state.path(), &[]));
    assert_eq!(ctx["source"]["kind"], "kernel-cmdline");
    assert_eq!(ctx["hostname"], "web-1");
    let links = ctx["network"]["links"].as_array().unwrap();
    let ens3 = links.iter().find(|l| l["name"] == "ens3").expect("ens3");
    assert_eq!(
        ens3["addressing"],
        serde_json::json!([{"method": "static", "address": "192.0.2.10", "prefix": 24, "gateway": "192.0.2.1"}])
    );
    assert_eq!(
        ens3["dns"]["nameservers"],
        serde_json::json!(["192.0.2.53"])
    );
    let ens4 = links.iter().find(|l| l["name"] == "ens4").expect("ens4");
    assert_eq!(ens4["addressing"], serde_json::json!([{"method": "dhcp4"}]));
    assert_eq!(
        ctx["network"]["dns"]["nameservers"],
        serde_json::json!(["2001:db8::53"])
    );
    let warned = ctx["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["message"].as_str().unwrap().contains("preroot.timeout"));
    assert!(warned, "bad preroot.timeout= not reported: {ctx}");
}

/// The same drive as a directory, an ISO9660 image (Rock Ridge + Joliet, as Nova writes it)
/// and a FAT image (as Ironic can write it) gives the same context, but for `source`.
#[test]
fn sample_drive_same_context_from_dir_iso_and_fat() {
    require!("sample_drive_same_context_from_dir_iso_and_fat"; "xorriso", "mkfs.vfat", "mcopy");
    let tmp = TempDir::new("cli-media");
    let iso = tmp.path().join("cd.iso");
    let fat = tmp.path().join("cd.img");
    let src = data("sample-configdrive");
    let run = |cmd: &str| {
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .status()
                .unwrap()
                .success(),
            "{cmd}"
        )
    };
    run(&format!(
        "xorriso -as mkisofs -quiet -R -J -V config-2 -o {} {src}",
        iso.display()
    ));
    run(&format!(
        "mkfs.vfat -n CONFIG-2 -C {} 4096 >/dev/null && mcopy -s -i {0} {src}/* ::",
        fat.display()
    ));
    let mut seen = Vec::new();
    for (medium, path) in [
        ("directory", src.clone()),
        ("iso9660", iso.display().to_string()),
        ("fat", fat.display().to_string()),
    ] {
        let state = tmp.path().join(medium);
        let mut ctx = json(&preroot(&[
            "context",
            "--from",
            &format!("configdrive:{path}"),
            "--root",
            &data("sample-machine"),
            "--state-dir",
            state.to_str().unwrap(),
        ]));
        assert_eq!(ctx["source"]["medium"], medium);
        assert_eq!(
            fs::read_to_string(state.join("files/0000")).unwrap(),
            "Provisioned by preroot from the config drive.\n"
        );
        // Paths differ by state dir only; compare the rest.
        let text = ctx.to_string().replace(state.to_str().unwrap(), "STATE");
        ctx = serde_json::from_str(&text).unwrap();
        ctx.as_object_mut().unwrap().remove("source");
        seen.push(ctx);
    }
    assert_eq!(seen[0], seen[1], "directory and ISO differ");
    assert_eq!(seen[0], seen[2], "directory and FAT differ");
}
