//! Real consumers of preroot's network files (issue 7), booted in QEMU like `tests/qemu.rs`:
//! NetworkManager (extra guest `nm`) and ifupdown (extra guest `ifupdown`) load the files
//! preroot chose and wrote by itself, on the NIC the booted system names differently from the
//! initramfs; and a second boot of the same instance (systemd-networkd and NetworkManager)
//! leaves every file preroot wrote alone, a user's edit included.
//!
//! The user's edit is made the way a user would make it at first boot: the config drive's
//! user data (`write_files` with `append: true`, applied by `preroot apply` once per
//! instance in boot 1) appends a comment line to a file preroot rendered.
//!
//! Needs what `tests/qemu.rs` needs; without it each test prints `SKIP`, or fails under
//! `PREROOT_REQUIRE_ALL=1`. `qemu/README.md` lists the scenarios and their cost.

mod common;

use common::qemu::*;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The comment line the user data appends in boot 1.
const USER_EDIT: &str = "# edited by the user at first boot";

/// A config drive like the build's, whose user data appends [`USER_EDIT`] to `file` (a path
/// in the booted system) once per instance, leaving it with `mode` (write_files sets one).
fn configdrive_with_edit(test: &str, file: &str, mode: &str) -> String {
    let dir = std::env::temp_dir().join(format!("preroot-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let user_data = dir.join("user-data");
    std::fs::write(
        &user_data,
        format!(
            "#cloud-config\nwrite_files:\n  - path: {file}\n    append: true\n    permissions: '{mode}'\n    content: |\n      {USER_EDIT}\nruncmd:\n  - [ touch, /run/user-data-ran ]\n"
        ),
    )
    .unwrap();
    let iso = dir.join("configdrive.iso");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg("-c")
        .arg(r#". "$1/qemu/lib.sh" && make_configdrive "$2""#)
        .arg("_")
        .arg(repo)
        .arg(&iso)
        .env("CD_USER_DATA", &user_data)
        .status()
        .expect("run make_configdrive");
    assert!(status.success(), "{test}: make_configdrive: {status}");
    iso.display().to_string()
}

/// The report's `etc-preroot` section: the manifest, the recorded instance id, and
/// `path → (mtime, size, mode)` of every file listed under `# mtimes`.
struct EtcPreroot {
    manifest: Value,
    instance_id: String,
    stat: BTreeMap<String, (String, u64, String)>,
}

fn etc_preroot(test: &str, r: &Report) -> EtcPreroot {
    let text = r.get("etc-preroot");
    let mut part: BTreeMap<&str, String> = BTreeMap::new();
    let mut cur = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            cur = name;
            continue;
        }
        let e = part.entry(cur).or_default();
        e.push_str(line);
        e.push('\n');
    }
    let manifest = r
        .try_json_sub("etc-preroot", "/etc/preroot/manifest.json")
        .unwrap_or_else(|e| panic!("{test}: manifest.json in the guest: {e}"));
    let instance_id = part
        .get("/etc/preroot/instance-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let stat = part
        .get("mtimes")
        .map(String::as_str)
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [path, mtime, size, mode] => Some((
                    path.to_string(),
                    (mtime.to_string(), size.parse().ok()?, mode.to_string()),
                )),
                _ => None,
            }
        })
        .collect();
    EtcPreroot {
        manifest,
        instance_id,
        stat,
    }
}

/// The files preroot's manifest lists, as absolute paths in the guest.
fn manifest_files(e: &EtcPreroot) -> Vec<String> {
    e.manifest["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|p| format!("/{p}"))
        .collect()
}

/// The sysroot phase's outcome as the context recorded it (`ok: … /sysroot (FORMAT): N of M
/// files written`, or the skip of an instance already configured).
fn sysroot_outcome(r: &Report) -> String {
    r.context()["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["phase"] == "sysroot")
        .and_then(|p| p["outcome"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// preroot's own log lines of the initramfs, from the guest's console (the kernel log
/// carries them), whole rather than the report's last 60 `journal-preroot` lines.
fn console_preroot_lines(r: &Report) -> String {
    let console = std::fs::read(r.dir.join("console.log")).unwrap_or_default();
    String::from_utf8_lossy(&console)
        .lines()
        .filter(|l| l.contains("] preroot: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// preroot chose `format` by itself: no `preroot.render=` on the command line, the manifest
/// records it, and the sysroot phase's outcome names it.
fn assert_chose(test: &str, r: &Report, e: &EtcPreroot, format: &str) {
    assert!(
        !r.get("cmdline").contains("preroot.render="),
        "{test}: the format must not be forced: {}",
        r.get("cmdline")
    );
    assert_eq!(
        e.manifest["renderer"], format,
        "{test}: renderer in the manifest; {}",
        e.manifest
    );
    let summary = format!("({format}):");
    assert!(
        sysroot_outcome(r).contains(&summary),
        "{test}: the sysroot phase does not name {format}: {:?}",
        sysroot_outcome(r)
    );
}

/// `ip -j addr`: the interface that holds `address/prefix`, if it is a permanent (static,
/// not DHCP-leased) address: slirp's DHCP server would hand out the same address, so only
/// a permanent one shows the files were used.
fn static_address_on(test: &str, r: &Report, address: &str, prefix: u64) -> String {
    let ip = r.json("ip");
    for link in ip.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["local"] == address && a["prefixlen"] == prefix {
                assert!(
                    a["dynamic"] != true && a["valid_life_time"] == 4_294_967_295u64,
                    "{test}: {address} on {} is a DHCP lease, not preroot's static address: {a:#}",
                    link["ifname"]
                );
                return link["ifname"].as_str().unwrap_or_default().to_string();
            }
        }
    }
    panic!("{test}: no {address}/{prefix} in the guest; ip -j addr: {ip:#}");
}

/// The default route (from the `x-routes` probe) goes via `gateway` on `dev`.
fn assert_default_route(test: &str, r: &Report, gateway: &str, dev: &str) {
    let routes = r.json("x-routes");
    let ok = routes
        .as_array()
        .into_iter()
        .flatten()
        .any(|rt| rt["dst"] == "default" && rt["gateway"] == gateway && rt["dev"] == dev);
    assert!(
        ok,
        "{test}: no default route via {gateway} on {dev}; routes: {routes:#}"
    );
}

/// Boot 2 of the same instance: same id, the skip logged, every file of the manifest (and
/// preroot's own state) with boot 1's mtime and size, the user's edit still there once.
fn assert_second_boot_left_files_alone(test: &str, r1: &Report, r2: &Report, edited: &str) {
    let (e1, e2) = (etc_preroot(test, r1), etc_preroot(test, r2));
    let (c1, c2) = (r1.context(), r2.context());
    assert_eq!(
        c1["instance_id"], c2["instance_id"],
        "{test}: both boots read the same instance"
    );
    assert!(
        !e1.instance_id.is_empty() && e1.instance_id == e2.instance_id,
        "{test}: /etc/preroot/instance-id {:?} then {:?}",
        e1.instance_id,
        e2.instance_id
    );
    assert!(
        sysroot_outcome(r1).contains("files written"),
        "{test}: boot 1 rendered: {:?}",
        sysroot_outcome(r1)
    );
    let skip = format!(
        "instance {} already configured; its files are left as they are",
        e1.instance_id
    );
    assert!(
        sysroot_outcome(r2).contains(&skip),
        "{test}: boot 2's sysroot phase: {:?}, not {skip:?}",
        sysroot_outcome(r2)
    );
    let logged = console_preroot_lines(r2);
    assert!(
        logged.contains(&format!("preroot: sysroot: {skip}")),
        "{test}: boot 2 did not log {skip:?}; preroot's console lines:\n{logged}"
    );
    let mut files = manifest_files(&e1);
    assert!(
        files.iter().any(|f| f == edited),
        "{test}: {edited} is not preroot's: {files:?}"
    );
    assert_eq!(
        files,
        manifest_files(&e2),
        "{test}: the manifest changed between the boots"
    );
    files.push("/etc/preroot/instance-id".into());
    files.push("/etc/preroot/manifest.json".into());
    for f in &files {
        let (a, b) = (e1.stat.get(f), e2.stat.get(f));
        assert!(
            a.is_some(),
            "{test}: {f} missing after boot 1:\n{:?}",
            e1.stat
        );
        assert_eq!(
            a, b,
            "{test}: {f} (mtime, size, mode) changed in boot 2 of the same instance"
        );
    }
    for (k, r) in [(1, r1), (2, r2)] {
        let files = r.get("network-files");
        let body = files
            .split(&format!("# {edited}\n"))
            .nth(1)
            .map(|rest| rest.split("\n# /").next().unwrap_or(rest))
            .unwrap_or_else(|| panic!("{test}: boot {k}: {edited} not shown:\n{files}"));
        assert_eq!(
            body.lines().filter(|l| *l == USER_EDIT).count(),
            1,
            "{test}: boot {k}: the user's edit once in {edited}:\n{body}"
        );
    }
    eprintln!(
        "{test}: boot 2 left {} files as boot 1 and the user left them",
        files.len()
    );
}

/// systemd-networkd (the base guest), booted twice on the same disk.
#[test]
fn qemu_networkd_second_boot_leaves_files_alone() {
    let test = "qemu_networkd_second_boot_leaves_files_alone";
    if !require_qemu(test) {
        return;
    }
    let edited = "/etc/systemd/network/10-preroot-eth0.network";
    let cd = configdrive_with_edit(test, edited, "0644");
    let r = boots(test, "gpt-configdrive", &[("CONFIGDRIVE", cd)], 2);
    for (k, b) in r.iter().enumerate() {
        let t = format!("{test} (boot {})", k + 1);
        let ctx = assert_booted_with_preroot(&t, b);
        assert_configdrive(&t, &ctx);
        assert_configured(&t, b, "10.0.2.15", "preroot-qemu");
    }
    assert_chose(test, &r[0], &etc_preroot(test, &r[0]), "networkd");
    assert_second_boot_left_files_alone(test, &r[0], &r[1], edited);
}

/// NetworkManager: preroot chooses `nm` by itself; NetworkManager activates preroot's
/// profile, matched by MAC, on the NIC the booted system named (not the initramfs's `eth0`);
/// a second boot leaves the keyfile alone.
#[test]
fn qemu_networkmanager_guest() {
    let test = "qemu_networkmanager_guest";
    if !require_qemu(test) {
        return;
    }
    let keyfile = "/etc/NetworkManager/system-connections/preroot-eth0.nmconnection";
    // NetworkManager ignores a keyfile others can read: the edit keeps it 0600.
    let cd = configdrive_with_edit(test, keyfile, "0600");
    let r = boots(
        test,
        "gpt-configdrive",
        &[("VARIANT", "preroot+nm".into()), ("CONFIGDRIVE", cd)],
        2,
    );
    for (k, b) in r.iter().enumerate() {
        let t = format!("{test} (boot {})", k + 1);
        let ctx = assert_booted_with_preroot(&t, b);
        assert_configdrive(&t, &ctx);
        let e = etc_preroot(&t, b);
        assert_eq!(
            e.stat.get(keyfile).map(|s| s.2.as_str()),
            Some("600"),
            "{t}: preroot's keyfile, mode 0600; {:?}",
            e.stat
        );
        assert!(
            !e.stat.keys().any(|p| p.ends_with(".link")),
            "{t}: nm matches by MAC and needs no name pin: {:?}",
            e.stat
        );
        // `nmcli -t -f DEVICE,TYPE,STATE,CONNECTION dev`
        let dev = b
            .get("x-nm-dev")
            .lines()
            .find(|l| l.ends_with(":preroot eth0"))
            .unwrap_or_else(|| {
                panic!(
                    "{t}: NetworkManager has preroot's profile on no device:\n{}\nprofiles:\n{}",
                    b.get("x-nm-dev"),
                    b.get("x-nm-con")
                )
            });
        let f: Vec<&str> = dev.split(':').collect();
        assert_eq!(
            f.get(1..3),
            Some(&["ethernet", "connected"][..]),
            "{t}: {dev}"
        );
        let ifname = f[0];
        assert_ne!(
            ifname, "eth0",
            "{t}: the booted system's udev should have renamed the NIC (the point of matching by MAC)"
        );
        assert!(
            b.get("x-nm-con")
                .lines()
                .any(|l| l.starts_with("preroot eth0:")
                    && l.ends_with(&format!(":{ifname}:{keyfile}"))),
            "{t}: the active profile is preroot's file:\n{}",
            b.get("x-nm-con")
        );
        let ip = b.get("x-nm-ip");
        for want in ["IP4.ADDRESS[1]:10.0.2.15/24", "IP4.GATEWAY:10.0.2.2"] {
            assert!(ip.contains(want), "{t}: NetworkManager lacks {want}:\n{ip}");
        }
        assert_eq!(static_address_on(&t, b, "10.0.2.15", 24), ifname);
        assert_default_route(&t, b, "10.0.2.2", ifname);
        assert_eq!(b.get("hostname").trim(), "preroot-qemu", "{t}: hostname");
        eprintln!("{t}: NetworkManager activated 'preroot eth0' on {ifname}");
    }
    assert_chose(test, &r[0], &etc_preroot(test, &r[0]), "nm");
    assert_second_boot_left_files_alone(test, &r[0], &r[1], keyfile);
}

/// ifupdown: preroot chooses `eni` by itself; the `.link` pin keeps the initramfs's `eth0`,
/// and networking.service brings it up from preroot's stanza file.
#[test]
fn qemu_ifupdown_guest() {
    let test = "qemu_ifupdown_guest";
    if !require_qemu(test) {
        return;
    }
    let r = boot(
        test,
        "gpt-configdrive",
        &[("VARIANT", "preroot+ifupdown".into())],
    );
    let ctx = assert_booted_with_preroot(test, &r);
    assert_configdrive(test, &ctx);
    let e = etc_preroot(test, &r);
    assert_chose(test, &r, &e, "eni");
    let files = manifest_files(&e);
    for want in [
        "/etc/network/interfaces.d/50-preroot",
        "/etc/systemd/network/10-preroot-eth0.link",
    ] {
        assert!(
            files.iter().any(|f| f == want),
            "{test}: {want} not written: {files:?}"
        );
    }
    // `ifquery --state` lists what ifupdown brought up; then networking.service's state.
    let state = r.get("x-ifquery");
    assert!(
        state.lines().any(|l| l == "eth0=eth0") && state.contains("\nactive"),
        "{test}: ifupdown did not bring up eth0:\n{state}\nnetwork files:\n{}",
        r.get("network-files")
    );
    assert_eq!(
        static_address_on(test, &r, "10.0.2.15", 24),
        "eth0",
        "{test}: the pin kept the initramfs's name"
    );
    assert_default_route(test, &r, "10.0.2.2", "eth0");
    assert_eq!(r.get("hostname").trim(), "preroot-qemu", "{test}: hostname");
}
