//! Writing into a system root: `preroot render --root` and the `sysroot` phase of `preroot run`
//! on fake root trees — format choice, once per instance, moving an image's file aside,
//! planted symlinks, hostile values, an ostree deployment, and the hand-off files.

mod common;

use common::TempDir;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

fn preroot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(args)
        .output()
        .expect("run preroot")
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sample config drive's context, as `preroot context` gives it.
fn sample_context(tmp: &Path) -> Value {
    let out = preroot(&[
        "context",
        "--from",
        "configdrive:tests/data/sample-configdrive",
        "--root",
        "tests/data/sample-machine",
        "--state-dir",
        tmp.join("state").to_str().unwrap(),
    ]);
    serde_json::from_str(&ok(&out)).unwrap()
}

fn save(path: &Path, ctx: &Value) -> String {
    fs::write(path, serde_json::to_vec(ctx).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

/// A root whose systemd enables networkd (a Debian cloud image).
fn networkd_root(root: &Path) {
    enable_unit(root, "systemd-networkd.service");
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
}

/// Enables `unit` in `root` as `systemctl enable` does: a link in multi-user.target.wants.
fn enable_unit(root: &Path, unit: &str) {
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(format!("/lib/systemd/system/{unit}"), wants.join(unit)).unwrap();
}

/// `preroot run` of the three initramfs phases on the fake machine, each of which must succeed.
fn run_phases(machine: &Path, state: &Path) {
    for phase in ["fetch", "grow", "sysroot"] {
        ok(&preroot(&[
            "run",
            "--phase",
            phase,
            "--root",
            machine.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ]));
    }
}

fn render_root(ctx: &str, root: &Path) -> Output {
    preroot(&["render", "--context", ctx, "--root", root.to_str().unwrap()])
}

fn tree(root: &Path) -> Vec<(String, u64, i64)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            out.push((
                e.path().strip_prefix(root).unwrap().display().to_string(),
                m.ino(),
                m.mtime_nsec(),
            ));
        }
    }
    out.sort();
    out
}

/// A temporary directory with the sample context saved as `ctx.json`, and the path of an
/// empty root in it: (dir, context, context file path, root).
fn sample_setup(tag: &str) -> (TempDir, Value, String, std::path::PathBuf) {
    let tmp = TempDir::new(tag);
    let ctx = sample_context(tmp.path());
    let ctx_file = save(&tmp.path().join("ctx.json"), &ctx);
    let root = tmp.path().join("root");
    (tmp, ctx, ctx_file, root)
}

#[test]
fn networkd_root_once_per_instance() {
    let (tmp, ctx, ctx_file, root) = sample_setup("sysroot-once");
    networkd_root(&root);

    let summary = ok(&render_root(&ctx_file, &root));
    assert!(summary.contains("(networkd)"), "{summary}");
    let net = root.join("etc/systemd/network");
    let names: Vec<String> = fs::read_dir(&net)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("10-preroot-")),
        "{names:?}"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "node-17\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n127.0.1.1 node-17.rack4.example.org node-17 # preroot\n"
    );
    let iid = ctx["instance_id"].as_str().unwrap();
    assert_eq!(
        fs::read_to_string(root.join("etc/preroot/instance-id")).unwrap(),
        format!("{iid}\n")
    );
    let manifest: Value =
        serde_json::from_slice(&fs::read(root.join("etc/preroot/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["renderer"], "networkd");
    assert!(manifest["files"]
        .as_array()
        .unwrap()
        .contains(&Value::from("etc/hostname")));

    // Same instance again, after the user edited a file: nothing is written.
    fs::write(root.join("etc/hostname"), "mine\n").unwrap();
    let before = tree(&root);
    let summary = ok(&render_root(&ctx_file, &root));
    assert!(summary.contains("already configured"), "{summary}");
    assert_eq!(
        tree(&root),
        before,
        "second run of the same instance writes nothing"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "mine\n"
    );

    // The image booted as another instance with no network data: renders afresh, removes
    // the old instance's network files, keeps one hosts line.
    let mut other = ctx.clone();
    other["instance_id"] = "another-instance".into();
    other["hostname"] = "fresh".into();
    other["network"]["links"] = Value::Array(Vec::new());
    let other_file = save(&tmp.path().join("other.json"), &other);
    ok(&render_root(&other_file, &root));
    assert_eq!(
        fs::read_dir(&net).unwrap().count(),
        0,
        "stale files removed"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "fresh\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n127.0.1.1 fresh # preroot\n"
    );
}

#[test]
fn image_files_with_fixed_names_are_moved_aside_once() {
    let (tmp, ctx, ctx_file, root) = sample_setup("sysroot-aside");
    let scripts = root.join("etc/sysconfig/network-scripts");
    fs::create_dir_all(&scripts).unwrap();
    fs::write(
        root.join("etc/sysconfig/network-scripts/ifcfg-lo"),
        "DEVICE=lo\n",
    )
    .unwrap();
    // Which ifcfg files the render produces for this context:
    let plain = tmp.path().join("plain");
    let listed = ok(&preroot(&[
        "render",
        "--context",
        &ctx_file,
        "--format",
        "ifcfg",
        "--out",
        plain.to_str().unwrap(),
    ]));
    let first = listed.lines().next().unwrap().to_string();
    fs::write(root.join(&first), "# the image's own\n").unwrap();

    ok(&render_root(&ctx_file, &root));
    let aside = root.join(format!("{first}.preroot-orig"));
    assert_eq!(fs::read_to_string(&aside).unwrap(), "# the image's own\n");
    assert!(fs::read_to_string(root.join(&first))
        .unwrap()
        .starts_with("# Written by preroot"));
    assert_eq!(
        fs::read_to_string(root.join("etc/sysconfig/network-scripts/ifcfg-lo")).unwrap(),
        "DEVICE=lo\n",
        "a file preroot does not write is never touched"
    );
    // A new instance: the file is preroot's now (in the manifest), nothing is moved again.
    let mut other = ctx.clone();
    other["instance_id"] = "second".into();
    let other_file = save(&tmp.path().join("other.json"), &other);
    ok(&render_root(&other_file, &root));
    assert_eq!(fs::read_to_string(&aside).unwrap(), "# the image's own\n");
}

#[test]
fn planted_symlinks_are_not_followed() {
    let tmp = TempDir::new("sysroot-links");
    let ctx = sample_context(tmp.path());
    let ctx_file = save(&tmp.path().join("ctx.json"), &ctx);
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();

    // NetworkManager enabled, its configuration directory a link out of the root.
    let root = tmp.path().join("root");
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants).unwrap();
    fs::write(wants.join("NetworkManager.service"), "").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc/NetworkManager")).unwrap();
    std::os::unix::fs::symlink(outside.join("hostname"), root.join("etc/hostname")).unwrap();
    let out = render_root(&ctx_file, &root);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written through a link"
    );
    assert!(
        !root.join("etc/preroot/instance-id").exists(),
        "not recorded as configured"
    );

    // Without the directory link, the hostname link is replaced, never written through.
    fs::remove_file(root.join("etc/NetworkManager")).unwrap();
    ok(&render_root(&ctx_file, &root));
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert!(fs::symlink_metadata(root.join("etc/hostname"))
        .unwrap()
        .is_file());
    let conns = root.join("etc/NetworkManager/system-connections");
    for e in fs::read_dir(&conns).unwrap() {
        let mode = e.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "keyfiles hold secrets: 0600");
    }
}

#[test]
fn hostile_values_never_reach_a_file() {
    let tmp = TempDir::new("sysroot-hostile");
    let ctx = sample_context(tmp.path());
    for (field, value) in [
        ("hostname", "evil\n[Match]"),
        ("hostname", "../../etc/shadow"),
        ("hostname", "a;b"),
        ("hostname", "nul\u{0}byte"),
        ("link-name", "eth0\nDNS=6.6.6.6"),
        ("link-name", "../../x"),
        ("link-name", "[Network]"),
        ("link-name", "e;0"),
    ] {
        let mut bad = ctx.clone();
        match field {
            "hostname" => bad["hostname"] = value.into(),
            _ => bad["network"]["links"][0]["name"] = value.into(),
        }
        let root = tmp.path().join(format!("root-{}", value.len()));
        let _ = fs::remove_dir_all(&root);
        networkd_root(&root);
        let ctx_file = save(&tmp.path().join("bad.json"), &bad);
        let out = render_root(&ctx_file, &root);
        assert_eq!(out.status.code(), Some(1), "case {value:?}");
        // The bad value is skipped with an error; the rest of the root is configured
        // (issue 16 item 15: one bad value never means nothing written).
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.trim().lines().count() >= 1, "case {value:?}: {err}");
        assert!(
            root.join("etc/preroot/instance-id").exists(),
            "case {value:?}: {err}"
        );
        for (path, _, _) in tree(&root) {
            let p = root.join(&path);
            assert!(!path.contains(".."), "case {value:?}: {path}");
            if p.is_file() {
                let text = fs::read_to_string(&p).unwrap_or_default();
                // `[Network]` is also a section every .network file has: as a value it
                // would follow `Name=`.
                let reached = match value {
                    "[Network]" => text.contains("=[Network]"),
                    _ => text.contains(value),
                };
                assert!(!reached, "case {value:?} reached {path}");
            }
        }
    }
}

/// Issue 16 item 15: OpenNebula's `SEARCH_DOMAIN='example.com,corp.local'` is refused where it
/// enters the context (an error naming it and the rule), and `render --root` of a context that
/// still holds it skips that one value: the network files, the hostname and the instance id
/// are written. Before, `context` took it silently and `render` wrote nothing at all.
#[test]
fn one_bad_value_is_skipped_not_everything() {
    let (tmp, ctx, _, root) = sample_setup("sysroot-skip-one");
    let medium = tmp.path().join("one");
    fs::create_dir_all(&medium).unwrap();
    fs::write(
        medium.join("context.sh"),
        "VMID='7'\nSET_HOSTNAME='web1'\nSEARCH_DOMAIN='example.com,corp.local'\n\
         ETH0_MAC='52:54:00:aa:00:01'\nETH0_IP='192.0.2.10'\n",
    )
    .unwrap();
    let out = preroot(&[
        "context",
        "--from",
        &format!("opennebula:{}", medium.display()),
        "--root",
        "tests/data/sample-machine",
        "--state-dir",
        tmp.path().join("state-one").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(r#"search domain "example.com,corp.local" refused: hostname label"#),
        "{err}"
    );
    // A context file that still holds such a value (hand-written, or from an older preroot).
    let mut bad = ctx.clone();
    bad["network"]["dns"]["search"] = serde_json::json!(["good.example", "example.com,corp.local"]);
    let ctx_file = save(&tmp.path().join("bad.json"), &bad);
    networkd_root(&root);
    let out = render_root(&ctx_file, &root);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("example.com,corp.local"), "{err}");
    let mut networks = 0;
    for e in fs::read_dir(root.join("etc/systemd/network")).unwrap() {
        let text = fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains("corp.local"), "{text}");
        networks += usize::from(text.contains("Domains=good.example"));
    }
    assert!(networks > 0, "the good domain is written");
    assert!(root.join("etc/hostname").exists());
    assert!(root.join("etc/preroot/instance-id").exists());
}

/// Issue 16 item 16: a symlinked `/etc/hosts` gets the rule a symlinked `/etc/hostname` gets:
/// replaced by a regular file (holding the text it pointed to, read inside the root, plus
/// preroot's line), never written through; before, `render --root` aborted entirely.
#[test]
fn symlinked_hosts_is_replaced_like_hostname() {
    let (tmp, _ctx, ctx_file, root) = sample_setup("sysroot-hosts-link");
    networkd_root(&root);
    let outside = tmp.path().join("outside-hosts");
    fs::write(&outside, "10.9.9.9 outside\n").unwrap();
    fs::create_dir_all(root.join("usr/share/base")).unwrap();
    fs::write(
        root.join("usr/share/base/hosts"),
        "127.0.0.1 localhost image\n",
    )
    .unwrap();
    for (case, target) in [
        ("link inside the root", "/usr/share/base/hosts".to_string()),
        ("link out of the root", outside.display().to_string()),
        ("dangling link", "/run/nowhere/hosts".to_string()),
    ] {
        let _ = fs::remove_dir_all(root.join("etc/preroot"));
        let _ = fs::remove_file(root.join("etc/hosts"));
        std::os::unix::fs::symlink(&target, root.join("etc/hosts")).unwrap();
        let summary = ok(&render_root(&ctx_file, &root));
        let hosts = root.join("etc/hosts");
        assert!(
            fs::symlink_metadata(&hosts).unwrap().is_file(),
            "case {case}: {summary}"
        );
        let text = fs::read_to_string(&hosts).unwrap();
        assert!(text.ends_with("# preroot\n"), "case {case}: {text}");
        assert!(
            !text.contains("outside"),
            "case {case}: read through a link out of the root"
        );
        if case == "link inside the root" {
            assert!(
                text.starts_with("127.0.0.1 localhost image\n"),
                "case {case}: {text}"
            );
        }
        assert_eq!(fs::read_to_string(&outside).unwrap(), "10.9.9.9 outside\n");
        assert!(root.join("etc/hostname").exists(), "case {case}");
    }
}

#[test]
fn user_data_can_keep_the_hostname() {
    let tmp = TempDir::new("sysroot-preserve");
    let mut ctx = sample_context(tmp.path());
    let ud = tmp.path().join("user-data");
    fs::write(&ud, "#cloud-config\npreserve_hostname: true\n").unwrap();
    ctx["user_data"]["path"] = ud.to_str().unwrap().into();
    let ctx_file = save(&tmp.path().join("ctx.json"), &ctx);
    let root = tmp.path().join("root");
    networkd_root(&root);
    fs::write(root.join("etc/hostname"), "image\n").unwrap();
    ok(&render_root(&ctx_file, &root));
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "image\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
}

/// The three phases on a fake machine whose /sysroot holds an ostree repository layout and
/// the command line names the deployment through its `ostree=` link, as the boot loader does.
#[test]
fn ostree_deployment_gets_the_files() {
    let tmp = TempDir::new("sysroot-ostree");
    let machine = tmp.path().join("machine");
    common::fake_machine(
        &machine,
        "root=LABEL=root preroot.grow=0 ostree=/ostree/boot.1/debian/6d1f/0 ip=192.0.2.10::192.0.2.1:255.255.255.0:box1:ens3:none\n",
        &[("ens3", "52:54:00:12:34:56")],
    );
    let sysroot = machine.join("sysroot");
    let deploy = sysroot.join("ostree/deploy/debian/deploy/0a1b2c.0");
    fs::create_dir_all(deploy.join("etc")).unwrap();
    fs::create_dir_all(deploy.join("usr/lib/systemd")).unwrap();
    fs::write(deploy.join("usr/lib/systemd/systemd-networkd"), "").unwrap();
    fs::create_dir_all(sysroot.join("ostree/boot.1/debian/6d1f")).unwrap();
    std::os::unix::fs::symlink(
        "../../../deploy/debian/deploy/0a1b2c.0",
        sysroot.join("ostree/boot.1/debian/6d1f/0"),
    )
    .unwrap();
    fs::create_dir_all(sysroot.join("etc")).unwrap();
    let state = tmp.path().join("state");
    run_phases(&machine, &state);
    let net =
        fs::read_to_string(deploy.join("etc/systemd/network/10-preroot-ens3.network")).unwrap();
    assert!(net.contains("Address=192.0.2.10/24"), "{net}");
    assert_eq!(
        fs::read_to_string(deploy.join("etc/hostname")).unwrap(),
        "box1\n"
    );
    assert_eq!(
        fs::read_dir(sysroot.join("etc")).unwrap().count(),
        0,
        "/sysroot/etc untouched"
    );
    let env = fs::read_to_string(machine.join("run/metadata/preroot")).unwrap();
    assert!(env.contains("PREROOT_HOSTNAME=box1\n"), "{env}");
    let ctx: Value =
        serde_json::from_slice(&fs::read(state.join("context.json")).unwrap()).unwrap();
    let outcome = ctx["phases"][2]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("0a1b2c.0") && outcome.contains("(networkd)"),
        "{outcome}"
    );
}

/// Every multipart user data in the shared fixtures (cloud-init's MIME documents, Heat's
/// cfn-init and software-config payloads) yields its directives without error.
#[test]
fn multipart_fixtures_read_cleanly() {
    let dir = common::fixtures().join("multipart");
    let mut seen = 0;
    for case in fs::read_dir(&dir).unwrap() {
        let input = case.unwrap().path().join("input");
        for rel in ["user_data", "openstack/latest/user_data"] {
            let Ok(data) = fs::read(input.join(rel)) else {
                continue;
            };
            let d = preroot::cloudconfig::directives(&data);
            assert!(d.is_ok(), "{}: {d:?}", input.display());
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "only {seen} multipart cases found under {}",
        dir.display()
    );
}

/// The context's physical links with a MAC: (name, mac).
fn physical_with_mac(ctx: &Value) -> Vec<(String, String)> {
    ctx["network"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["type"] == "physical" && l["name"].is_string() && l["mac"].is_string())
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["mac"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn manifest_files(root: &Path) -> Vec<String> {
    let m: Value =
        serde_json::from_slice(&fs::read(root.join("etc/preroot/manifest.json")).unwrap()).unwrap();
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// A Debian root with ifupdown and no networkd: preroot chooses `eni` by itself, and since
/// ifupdown knows interfaces only by the initramfs's names, each physical NIC with a MAC gets
/// a `.link` pin (udev applies it without networkd), listed in the manifest like the stanza
/// file, so a later instance removes it too.
#[test]
fn ifupdown_root_gets_stanzas_and_name_pins() {
    let (tmp, ctx, ctx_file, root) = sample_setup("sysroot-eni");
    fs::create_dir_all(root.join("etc/network/interfaces.d")).unwrap();
    fs::create_dir_all(root.join("usr/sbin")).unwrap();
    fs::write(
        root.join("etc/network/interfaces"),
        "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n",
    )
    .unwrap();
    fs::write(root.join("usr/sbin/ifup"), "").unwrap();

    let summary = ok(&render_root(&ctx_file, &root));
    assert!(summary.contains("(eni)"), "{summary}");
    let files = manifest_files(&root);
    assert!(
        files.contains(&"etc/network/interfaces.d/50-preroot".to_string()),
        "{files:?}"
    );
    let nics = physical_with_mac(&ctx);
    assert!(
        nics.len() >= 2,
        "sample has physical NICs with MACs: {nics:?}"
    );
    let stanzas = fs::read_to_string(root.join("etc/network/interfaces.d/50-preroot")).unwrap();
    for (name, mac) in &nics {
        let pin = format!("etc/systemd/network/10-preroot-{name}.link");
        assert!(files.contains(&pin), "{pin} not in the manifest: {files:?}");
        let text = fs::read_to_string(root.join(&pin)).unwrap();
        assert!(
            text.contains(&format!("MACAddress={mac}\n"))
                && text.contains(&format!("Name={name}\n")),
            "{pin}:\n{text}"
        );
        assert!(stanzas.contains(&format!("auto {name}\n")), "{stanzas}");
    }
    // Only pins: no networkd configuration in a root that does not run networkd.
    let net: Vec<String> = fs::read_dir(root.join("etc/systemd/network"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(net.iter().all(|n| n.ends_with(".link")), "{net:?}");

    // Another instance without network data removes the pins with the stanza file.
    let mut other = ctx.clone();
    other["instance_id"] = "another-instance".into();
    other["network"]["links"] = Value::Array(Vec::new());
    ok(&render_root(
        &save(&tmp.path().join("o.json"), &other),
        &root,
    ));
    assert_eq!(
        fs::read_dir(root.join("etc/systemd/network"))
            .unwrap()
            .count(),
        0
    );
    assert!(!root.join("etc/network/interfaces.d/50-preroot").exists());
}

/// A root with NetworkManager enabled: preroot chooses `nm`; physical NICs are matched by
/// MAC (the booted system names them differently) and no pin is written.
#[test]
fn networkmanager_root_matches_nics_by_mac() {
    let (_tmp, ctx, ctx_file, root) = sample_setup("sysroot-nm");
    enable_unit(&root, "NetworkManager.service");
    let summary = ok(&render_root(&ctx_file, &root));
    assert!(summary.contains("(nm)"), "{summary}");
    assert!(!root.join("etc/systemd/network").exists(), "no pins for nm");
    for (name, mac) in physical_with_mac(&ctx) {
        let path = root.join(format!(
            "etc/NetworkManager/system-connections/preroot-{name}.nmconnection"
        ));
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("mac-address={}\n", mac.to_uppercase()))
                && !text.contains("interface-name="),
            "{name}: matched by MAC, not by name:\n{text}"
        );
    }
}

/// A root that keeps cloud-init gets the hand-off (NoCloud seed and drop-in) from the
/// sysroot phase, before it boots: cloud-init's generator (ds-identify) and local stage run
/// long before `preroot apply`. `preroot.handoff=none` writes none of it.
#[test]
fn sysroot_phase_writes_the_cloud_init_handoff() {
    for (case, karg, want) in [
        ("detected", "", true),
        ("turned off", " preroot.handoff=none", false),
    ] {
        let tmp = TempDir::new("sysroot-handoff");
        let machine = tmp.path().join("machine");
        common::fake_machine(
            &machine,
            &format!(
                "root=LABEL=root preroot.grow=0 ip=192.0.2.10::192.0.2.1:255.255.255.0:box1:ens3:none{karg}\n"
            ),
            &[("ens3", "52:54:00:12:34:56")],
        );
        let sysroot = machine.join("sysroot");
        networkd_root(&sysroot);
        fs::create_dir_all(sysroot.join("usr/bin")).unwrap();
        fs::write(sysroot.join("usr/bin/cloud-init"), "").unwrap();
        let state = tmp.path().join("state");
        run_phases(&machine, &state);
        let dropin = sysroot.join("etc/cloud/cloud.cfg.d/99-preroot.cfg");
        let meta = sysroot.join("var/lib/cloud/seed/nocloud/meta-data");
        assert_eq!(dropin.exists(), want, "{case}: drop-in");
        assert_eq!(meta.exists(), want, "{case}: seed");
        if want {
            let text = fs::read_to_string(&dropin).unwrap();
            assert!(
                text.contains("datasource_list: [ NoCloud, None ]"),
                "{case}: {text}"
            );
            let meta: Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
            assert_eq!(meta["local-hostname"], "box1", "{case}: {meta}");
            let ctx: Value =
                serde_json::from_slice(&fs::read(state.join("context.json")).unwrap()).unwrap();
            let outcome = ctx["phases"][2]["outcome"].as_str().unwrap_or_default();
            assert!(outcome.contains("cloud-init hand-off"), "{case}: {outcome}");
        }
    }
}
