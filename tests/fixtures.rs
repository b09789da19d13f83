//! Data-driven tests over `../shared/fixtures` (layout in its FORMAT.md): every local-datasource
//! case is run through the real binary (`preroot context --from KIND:DIR --root DIR`), and the
//! context is checked against what the raw files say and against the case's `assertions.json`.
//! Every malformed case must end in exit status 1 with one line on stderr, no stdout, no panic
//! and no hang.

mod common;

use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a deadline: a hang is a failure, not a stuck test run.
fn run(args: &[&str]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_preroot"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn preroot");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("preroot {args:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cases(category: &str) -> Vec<PathBuf> {
    let dir = common::fixtures().join(category);
    let mut out: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the shared fixtures must be beside the repo)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {}", dir.display());
    out
}

/// The medium root inside a case's `input/` (glean cases keep theirs at `mnt/config`).
fn drive_root(input: &Path) -> PathBuf {
    let glean = input.join("mnt/config");
    if glean.is_dir() {
        glean
    } else {
        input.to_path_buf()
    }
}

/// `preroot context --from KIND:DRIVE --root INPUT --state-dir STATE`, under a deadline.
fn run_from(kind: &str, drive: &Path, input: &Path, state: &Path) -> Outcome {
    let from = format!("{kind}:{}", drive.display());
    run(&[
        "context",
        "--from",
        &from,
        "--root",
        input.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

fn context(kind: &str, input: &Path, state: &Path) -> Value {
    let from = format!("{kind}:{}", drive_root(input).display());
    let out = run_from(kind, &drive_root(input), input, state);
    assert_eq!(
        out.code,
        Some(0),
        "{from}: exit {:?}, stderr: {}",
        out.code,
        out.stderr
    );
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{from}: stdout not JSON: {e}"))
}

/// Names of configured links (those with a name).
fn link_names(ctx: &Value) -> Vec<String> {
    ctx["network"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str().map(str::to_string))
        .collect()
}

fn described_links(ctx: &Value) -> Vec<&Value> {
    ctx["network"]["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["origin"] == "described")
        .collect()
}

/// What the raw OpenStack files say: (instance_id, hostname, ssh keys).
fn openstack_truth(drive: &Path) -> (Value, Value, Vec<String>) {
    let mut versions: Vec<PathBuf> = fs::read_dir(drive.join("openstack"))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    versions.sort();
    let latest = drive.join("openstack/latest/meta_data.json");
    let meta_path = if latest.exists() {
        Some(latest)
    } else {
        versions
            .iter()
            .rev()
            .map(|v| v.join("meta_data.json"))
            .find(|p| p.exists())
    };
    let Some(meta_path) = meta_path else {
        return (Value::Null, Value::Null, Vec::new());
    };
    let meta: Value = serde_json::from_slice(&fs::read(meta_path).unwrap()).unwrap();
    let host = meta
        .get("hostname")
        .or_else(|| meta.get("name"))
        .and_then(Value::as_str)
        .map(|h| Value::String(h.to_ascii_lowercase()))
        .unwrap_or(Value::Null);
    let mut keys: Vec<String> = Vec::new();
    let mut push = |text: &str| {
        for k in text.lines().map(str::trim).filter(|k| !k.is_empty()) {
            if !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
    };
    if let Some(Value::Object(pk)) = meta.get("public_keys") {
        for v in pk.values() {
            push(v.as_str().unwrap());
        }
    }
    if let Some(Value::Array(ks)) = meta.get("keys") {
        for k in ks {
            if k["type"] == "ssh" {
                push(k["data"].as_str().unwrap());
            }
        }
    }
    (meta.get("uuid").cloned().unwrap_or(Value::Null), host, keys)
}

fn has_route(ctx: &Value, network: &str, netmask: &str, gateway: &str) -> bool {
    let prefix = match netmask {
        "0.0.0.0" => 0,
        "255.255.255.255" => 32,
        m => m
            .split('.')
            .map(|o| o.parse::<u8>().unwrap().count_ones())
            .sum(),
    };
    let to = format!("{network}/{prefix}");
    ctx["network"]["links"].as_array().unwrap().iter().any(|l| {
        let as_route = l["routes"].as_array().is_some_and(|rs| {
            rs.iter()
                .any(|r| r["to"] == to.as_str() && r["via"] == gateway)
        });
        let as_gateway = prefix == 0
            && l["addressing"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["gateway"] == gateway);
        as_route || as_gateway
    })
}

/// Checks the keys of an `assertions.json` this tool can map; returns the keys it checked.
fn check_assertions(case: &str, ctx: &Value, a: &Value) -> BTreeSet<String> {
    let mut checked = BTreeSet::new();
    let obj = a.as_object().unwrap();
    let names = link_names(ctx);
    let read_secret = |field: &str| {
        fs::read_to_string(
            ctx[field]["path"]
                .as_str()
                .unwrap_or_else(|| panic!("{case}: no {field}")),
        )
        .unwrap()
    };
    for (key, want) in obj {
        let ok = match key.as_str() {
            "metadata.uuid" => ctx["instance_id"] == *want,
            "metadata.hostname" => ctx["hostname"] == *want,
            "metadata.name" | "metadata.availability_zone" => {
                ctx["extra"][key.trim_start_matches("metadata.")] == *want
            }
            // glean's /etc/hostname: the name as given, or its first label (cloud-init).
            "hostname" => {
                let h = ctx["hostname"].as_str().unwrap_or_default();
                let w = want.as_str().unwrap();
                h == w || h.split('.').next() == Some(w)
            }
            "userdata" => read_secret("user_data") == want.as_str().unwrap(),
            "vendordata" => {
                serde_json::from_str::<Value>(&read_secret("vendor_data")).unwrap() == *want
            }
            "vendordata2" => {
                serde_json::from_str::<Value>(&read_secret("vendor_data2")).unwrap() == *want
            }
            "files_count" => {
                ctx["files"].as_array().map(Vec::len) == want.as_u64().map(|n| n as usize)
            }
            "files" => want.as_object().unwrap().iter().all(|(path, content)| {
                ctx["files"].as_array().unwrap().iter().any(|f| {
                    f["path"] == path.as_str()
                        && fs::read_to_string(f["content"]["path"].as_str().unwrap()).unwrap()
                            == content.as_str().unwrap()
                })
            }),
            // Names our tree can give: those whose MAC a host NIC has (the fixture's sysfs is
            // the oracle; a name the upstream test mocked without a sysfs entry is skipped).
            "name_to_mac" => want.as_object().unwrap().iter().all(|(name, mac)| {
                let host_has = ctx["host_nics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n["name"] == name.as_str());
                !host_has
                    || ctx["network"]["links"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|l| l["name"] == name.as_str() && l["mac"] == *mac)
            }),
            "physical_interface_names" => {
                let want: BTreeSet<&str> = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                let got: BTreeSet<&str> = described_links(ctx)
                    .iter()
                    .filter(|l| l["type"] == "physical")
                    .filter_map(|l| l["name"].as_str())
                    .collect();
                !got.is_empty() && got.is_subset(&want)
            }
            "interface_names_sorted" => {
                let mut got: Vec<String> = described_links(ctx)
                    .iter()
                    .filter_map(|l| l["name"].as_str().map(String::from))
                    .collect();
                got.sort();
                got == want
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
            "ids_not_used_as_names" => want
                .as_array()
                .unwrap()
                .iter()
                .all(|id| !names.iter().any(|n| id == n)),
            "bond0_mac" => ctx["network"]["links"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["name"] == "bond0" && l["mac"] == *want),
            "rendered_names_contain" => want
                .as_array()
                .unwrap()
                .iter()
                .all(|w| names.iter().any(|n| w == n)),
            "address" => ctx["network"]["links"].as_array().unwrap().iter().any(|l| {
                l["addressing"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["address"] == *want)
            }),
            "route_present" => has_route(
                ctx,
                want["network"].as_str().unwrap(),
                want["netmask"].as_str().unwrap(),
                want["gateway"].as_str().unwrap(),
            ),
            "warning_contains" => ctx["warnings"].as_array().is_some_and(|ws| {
                ws.iter().any(|w| {
                    w["message"]
                        .as_str()
                        .unwrap()
                        .contains(want.as_str().unwrap())
                })
            }),
            _ => continue,
        };
        assert!(
            ok,
            "{case}: assertion {key} = {want} does not hold; context: {ctx:#}"
        );
        checked.insert(key.clone());
    }
    checked
}

#[test]
fn openstack_config_drives() {
    let mut checked_keys = BTreeSet::new();
    for case in cases("openstack") {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = case.join("input");
        let state = common::TempDir::new("fx-os");
        let ctx = context("configdrive", &input, state.path());
        assert_eq!(ctx["platform"], "openstack", "{name}");
        assert_eq!(ctx["schema_version"], 1, "{name}");
        let (iid, host, keys) = openstack_truth(&drive_root(&input));
        assert_eq!(ctx["instance_id"], iid, "{name}: instance_id");
        assert_eq!(ctx["hostname"], host, "{name}: hostname");
        let got_keys: Vec<String> = ctx["ssh_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(got_keys, keys, "{name}: ssh_keys");
        assert_eq!(ctx["errors"], Value::Array(vec![]), "{name}: errors");
        // No secret inline: the admin password only as a file reference, mode 0600.
        let text = ctx.to_string();
        for secret in ["admin_pass", "PBzEwRC8ZgVW"] {
            assert!(
                !text.contains(secret),
                "{name}: {secret} inline in the context"
            );
        }
        for field in ["user_data", "vendor_data", "vendor_data2", "password"] {
            if let Some(p) = ctx[field]["path"].as_str() {
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{name}: {field} mode");
            }
        }
        // Every host NIC gets a configuration: described, or the DHCP fallback.
        let names = link_names(&ctx);
        for nic in ctx["host_nics"].as_array().unwrap() {
            assert!(
                names.iter().any(|n| nic["name"] == n.as_str()),
                "{name}: {nic} unconfigured"
            );
        }
        let assertions = case.join("expected/assertions.json");
        if assertions.exists() {
            let a: Value = serde_json::from_slice(&fs::read(&assertions).unwrap()).unwrap();
            checked_keys.extend(check_assertions(&name, &ctx, &a));
        }
    }
    // The harness must really have checked the mapped properties.
    for key in [
        "hostname",
        "metadata.uuid",
        "userdata",
        "files",
        "name_to_mac",
        "interface_names_sorted",
        "route_present",
        "warning_contains",
        "bond0_mac",
    ] {
        assert!(
            checked_keys.contains(key),
            "assertion key {key} never checked"
        );
    }
}

#[test]
fn malformed_inputs_fail_cleanly() {
    for case in cases("malformed") {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = case.join("input");
        let kind = if input.join("context.sh").exists() {
            "opennebula"
        } else if input.join("meta-data").exists() || input.join("network-config").exists() {
            "nocloud"
        } else {
            "configdrive"
        };
        let state = common::TempDir::new("fx-bad");
        let out = run_from(kind, &input, &input, state.path());
        assert_eq!(
            out.code,
            Some(1),
            "{name}: exit status; stderr: {}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "{name}: printed a context despite the error"
        );
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{name}: want one line on stderr, got {:?}",
            out.stderr
        );
        assert!(lines[0].starts_with("preroot: "), "{name}: {}", lines[0]);
        assert!(!out.stderr.contains("panicked"), "{name}: panicked");
        // The line names the file (or the field in it) that is wrong.
        let names_file = [
            "meta_data.json",
            "network_data.json",
            "vendor_data.json",
            "network-config",
            "meta-data",
            "context.sh",
            "hostname",
        ]
        .iter()
        .any(|f| lines[0].contains(f));
        assert!(
            names_file,
            "{name}: line does not name the file: {}",
            lines[0]
        );
    }
}

/// `key: value` lines of a simple YAML mapping; refuses anything fancier so the oracle stays
/// independent of the YAML code under test and honest about what it can read.
fn simple_yaml(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("oracle cannot read {l:?}"));
            assert!(
                !k.starts_with(' ') && !v.starts_with(['[', '{', '|', '>']),
                "oracle cannot read {l:?}"
            );
            (
                k.to_string(),
                v.trim().trim_matches(['\'', '"']).to_string(),
            )
        })
        .collect()
}

#[test]
fn nocloud_seeds() {
    for case in cases("nocloud") {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = case.join("input");
        let state = common::TempDir::new("fx-nc");
        let ctx = context("nocloud", &input, state.path());
        let meta = simple_yaml(&fs::read_to_string(input.join("meta-data")).unwrap());
        assert_eq!(ctx["platform"], "nocloud", "{name}");
        assert_eq!(
            ctx["instance_id"].as_str(),
            meta.get("instance-id").map(String::as_str),
            "{name}: instance_id"
        );
        let host = meta
            .get("local-hostname")
            .or(meta.get("hostname"))
            .map(|h| h.to_ascii_lowercase());
        assert_eq!(
            ctx["hostname"].as_str(),
            host.as_deref(),
            "{name}: hostname"
        );
        assert_eq!(
            ctx["ssh_keys"],
            serde_json::json!([]),
            "{name}: the seeds carry no keys"
        );
        assert_eq!(ctx["errors"], serde_json::json!([]), "{name}: errors");
        if input.join("user-data").exists() {
            let stored = fs::read(ctx["user_data"]["path"].as_str().unwrap()).unwrap();
            assert_eq!(
                stored,
                fs::read(input.join("user-data")).unwrap(),
                "{name}: user-data"
            );
        }
        // The network-config describes at least one configured link.
        assert!(
            !described_links(&ctx).is_empty(),
            "{name}: no link from network-config"
        );
    }
}

/// OpenNebula cases against cloud-init's netplan-v2 rendering of the same context.sh: per
/// ethernet, the same MAC, address set, gateways, MTU, and name servers and search domains.
#[test]
fn opennebula_contexts() {
    for case in cases("opennebula") {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = case.join("input");
        let state = common::TempDir::new("fx-one");
        let ctx = context("opennebula", &input, state.path());
        assert_eq!(ctx["platform"], "opennebula", "{name}");
        let expected = case.join("expected/cloudinit-v2/network-config.json");
        if !expected.exists() {
            continue;
        }
        let want: Value = serde_json::from_slice(&fs::read(&expected).unwrap()).unwrap();
        let links = ctx["network"]["links"].as_array().unwrap();
        for (ifname, eth) in want["ethernets"].as_object().unwrap() {
            let mac = &eth["match"]["macaddress"];
            let link = links
                .iter()
                .find(|l| l["mac"] == *mac)
                .unwrap_or_else(|| panic!("{name}: no link for {ifname}"));
            let addrs: BTreeSet<String> = link["addressing"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["method"] == "static")
                .map(|a| format!("{}/{}", a["address"].as_str().unwrap(), a["prefix"]))
                .collect();
            let want_addrs: BTreeSet<String> = eth["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            assert_eq!(addrs, want_addrs, "{name}: {ifname} addresses");
            for key in ["gateway4", "gateway6"] {
                if let Some(gw) = eth.get(key) {
                    let has = link["addressing"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|a| a["gateway"] == *gw);
                    assert!(has, "{name}: {ifname} {key} {gw} missing");
                }
            }
            if let Some(mtu) = eth.get("mtu") {
                assert_eq!(link["mtu"], *mtu, "{name}: {ifname} mtu");
            }
            // cloud-init lists the global servers on every NIC; the context keeps them global.
            let mut servers: BTreeSet<String> = BTreeSet::new();
            let mut search: BTreeSet<String> = BTreeSet::new();
            for dns in [&link["dns"], &ctx["network"]["dns"]] {
                for s in dns["nameservers"].as_array().into_iter().flatten() {
                    servers.insert(s.as_str().unwrap().to_string());
                }
                for s in dns["search"].as_array().into_iter().flatten() {
                    search.insert(s.as_str().unwrap().to_string());
                }
            }
            let set = |v: &Value| -> BTreeSet<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(
                servers,
                set(&eth["nameservers"]["addresses"]),
                "{name}: {ifname} name servers"
            );
            assert_eq!(
                search,
                set(&eth["nameservers"]["search"]),
                "{name}: {ifname} search"
            );
        }
    }
}
