//! The userspace half (`preroot apply`, `status`, `clean`, the cloud-init hand-off) in real
//! QEMU boots (issue 8 on the harness of issue 4). Each test boots `qemu/scenario.sh
//! gpt-configdrive` on an extra guest (`VARIANT=preroot+ssh`, `preroot+cloudinit`) and reads
//! the guest's report, including the probes of `qemu/report.d/` (sections `x-apply`,
//! `x-cloud-init`, `x-zz-clean`). `qemu/README.md` describes the scenarios and their cost.
//!
//! Needs root and the host packages of `qemu/host-deps.sh`, and the Debian mirror for the
//! extra guests' packages on a cold cache; without them each test prints `SKIP`, or fails
//! under `PREROOT_REQUIRE_ALL=1`.

mod common;

use common::qemu::*;
use common::TempDir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTANCE_A: &str = "6a1c1a3b-aaaa-4aaa-8aaa-00000000000a";
const INSTANCE_B: &str = "6a1c1a3b-bbbb-4bbb-8bbb-00000000000b";
/// The key `lib.sh make_configdrive` puts in meta_data.json.
const QEMU_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheQemuHarnessOnly";

/// An OpenStack config drive from `lib.sh make_configdrive` with `env` (CD_UUID,
/// CD_HOSTNAME, CD_USER_DATA).
fn configdrive(out: &Path, env: &[(&str, &str)]) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let st = Command::new("bash")
        .arg("-c")
        .arg(". \"$1/qemu/lib.sh\" && make_configdrive \"$2\"")
        .arg("_")
        .arg(repo)
        .arg(out)
        .envs(env.iter().copied())
        .status()
        .expect("run make_configdrive");
    assert!(st.success(), "make_configdrive {}", out.display());
    out.to_string_lossy().into_owned()
}

/// Heat's multipart user data from the shared fixtures (cloud-config, boothook, part
/// handler, loguserdata.py and four `text/x-cfninitdata` parts), with a `cfn-userdata` that
/// leaves evidence: one line per run, naming the boot.
fn heat_user_data(dir: &Path) -> PathBuf {
    let fixture =
        common::fixtures().join("multipart/heat-cfntools/input/openstack/latest/user_data");
    let text =
        std::fs::read_to_string(&fixture).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let script = "echo \"user script\"";
    assert!(text.contains(script), "the fixture's cfn-userdata changed");
    let text = text.replace(
        script,
        "echo \"user script\"\necho \"cfn-userdata ran at boot $(cat /proc/sys/kernel/random/boot_id)\" >> /var/lib/heat-evidence",
    );
    let path = dir.join("heat-user-data");
    std::fs::write(&path, text).unwrap();
    path
}

/// `preroot status --json` of the boot.
fn status(test: &str, r: &Report) -> Value {
    r.try_json("preroot-status")
        .unwrap_or_else(|e| panic!("{test}: preroot status --json: {e}"))
}

/// The SHA256 fingerprints of the guest's ssh host keys (`ssh-keygen -lf`), sorted.
fn host_keys(r: &Report) -> Vec<String> {
    let mut keys: Vec<String> = r
        .sub("x-apply", "host-keys")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|f| f.starts_with("SHA256:"))
        .map(String::from)
        .collect();
    keys.sort();
    keys
}

/// `preroot status` after `boot` says apply is done, without errors, for `instance`, which
/// was new on that boot.
fn assert_applied_new_instance(test: &str, boot: &str, r: &Report, instance: &str) {
    let st = status(test, r);
    assert_eq!(
        (&st["stage"], &st["instance_id"], &st["new_instance"]),
        (
            &Value::from("done"),
            &Value::from(instance),
            &Value::from(true)
        ),
        "{test}: {boot} status: {st:#}"
    );
    assert_eq!(
        st["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: {boot} status errors: {st:#}"
    );
}

fn one_line(r: &Report, topic: &str) -> String {
    r.sub("x-apply", topic).trim().to_string()
}

/// Heat user data on a config drive, three boots on one disk (`preroot+ssh`: a guest with
/// openssh-server):
/// 1. instance A: Heat's files in /var/lib/heat-cfntools (0700) with every cfn part,
///    cfn-userdata ran once (its evidence), its log and provision-finished; the config
///    drive's key in the default user's authorized_keys with the right modes; `preroot status`
///    done without errors; new host keys with their fingerprints on the console.
/// 2. the same instance again: nothing re-ran (evidence and log unchanged, no fingerprints),
///    status says the instance was already applied; then, as an image export would before
///    the snapshot, `preroot clean --ssh-host-keys` (`preroot.test-clean=1`, report.d/zz-clean).
/// 3. a new config drive, instance B, on the cleaned disk: rendered afresh (instance id,
///    hostname, networkd), apply ran for B (its user data), a new machine-id, new host keys,
///    A's state gone.
#[test]
fn qemu_heat_user_data_reboot_then_clean_for_a_new_instance() {
    let test = "qemu_heat_user_data_reboot_then_clean_for_a_new_instance";
    if !require_qemu(test) {
        return;
    }
    let tmp = TempDir::new("qemu-heat");
    let user_data = heat_user_data(tmp.path());
    let drive_a = configdrive(
        &tmp.path().join("a.iso"),
        &[
            ("CD_UUID", INSTANCE_A),
            ("CD_USER_DATA", user_data.to_str().unwrap()),
        ],
    );
    let drive_b = configdrive(
        &tmp.path().join("b.iso"),
        &[
            ("CD_UUID", INSTANCE_B),
            ("CD_HOSTNAME", "preroot-qemu-b.example.test"),
        ],
    );
    let env = [
        ("VARIANT", "preroot+ssh".to_string()),
        ("CONFIGDRIVE", drive_a),
        ("KARGS_2", "preroot.test-clean=1".to_string()),
        ("CONFIGDRIVE_3", drive_b),
    ];
    let reports = boots(test, "gpt-configdrive", &env, 3);
    let [r1, r2, r3] = [&reports[0], &reports[1], &reports[2]];

    // Boot 1: instance A, applied.
    let ctx = assert_booted_with_preroot(test, r1);
    assert_eq!(ctx["instance_id"], INSTANCE_A, "{test}: boot 1 instance");
    assert_configured(test, r1, "10.0.2.15", "preroot-qemu");
    let heat = r1.sub("x-apply", "heat-files");
    for (file, mode) in [
        ("/var/lib/heat-cfntools", "700"),
        ("/var/lib/heat-cfntools/cfn-userdata", "700"),
        ("/var/lib/heat-cfntools/cfn-init-data", "600"),
        ("/var/lib/heat-cfntools/cfn-metadata-server", "600"),
        ("/var/lib/heat-cfntools/cfn-boto-cfg", "600"),
        ("/var/lib/heat-cfntools/provision-finished", ""),
    ] {
        assert!(
            heat.lines()
                .any(|l| l.starts_with(&format!("{file} {mode}"))),
            "{test}: boot 1: {file} (mode {mode}) missing:\n{heat}"
        );
    }
    let boot1 = one_line(r1, "boot-id");
    let evidence = r1.sub("x-apply", "heat-evidence");
    assert_eq!(
        evidence,
        format!("cfn-userdata ran at boot {boot1}\n"),
        "{test}: boot 1: cfn-userdata ran once, at this boot"
    );
    let heat_log = r1.sub("x-apply", "heat-log");
    assert!(
        heat_log.starts_with("12 600\n") && heat_log.contains("user script"),
        "{test}: boot 1: /var/log/heat-provision.log (size, mode, content):\n{heat_log}"
    );
    let keys = r1.sub("x-apply", "authorized-keys");
    for line in [
        "/home/cloud-user/.ssh 700 cloud-user:cloud-user",
        "/home/cloud-user/.ssh/authorized_keys 600 cloud-user:cloud-user",
    ] {
        assert!(keys.contains(line), "{test}: boot 1: {line:?} in:\n{keys}");
    }
    assert!(
        keys.contains(&format!("/home/cloud-user: {QEMU_KEY}")),
        "{test}: boot 1: the config drive's key for cloud-user:\n{keys}"
    );
    assert_applied_new_instance(test, "boot 1", r1, INSTANCE_A);
    assert_eq!(
        one_line(r1, "status-exit"),
        "0",
        "{test}: boot 1 status exit"
    );
    let keys1 = host_keys(r1);
    assert!(
        !keys1.is_empty(),
        "{test}: boot 1: no host keys:\n{}",
        r1.get("x-apply")
    );
    let console = r1.console();
    assert!(
        console.contains("-----BEGIN SSH HOST KEY FINGERPRINTS-----")
            && keys1.iter().all(|k| console.contains(k.as_str())),
        "{test}: boot 1: host key fingerprints {keys1:?} not on the console ({})",
        r1.dir.join("console.log").display()
    );
    let machine1 = one_line(r1, "machine-id");
    assert_eq!(machine1.len(), 32, "{test}: boot 1 machine-id {machine1:?}");

    // Boot 2: the same instance; nothing once-per-instance re-ran.
    assert_booted_with_preroot(test, r2);
    assert_ne!(
        one_line(r2, "boot-id"),
        boot1,
        "{test}: boot 2 is another boot"
    );
    assert_eq!(
        r2.sub("x-apply", "heat-evidence"),
        evidence,
        "{test}: boot 2: cfn-userdata ran again"
    );
    assert_eq!(
        r2.sub("x-apply", "heat-log"),
        heat_log,
        "{test}: boot 2: heat-provision.log changed"
    );
    let st = status(test, r2);
    assert_eq!(
        (&st["stage"], &st["new_instance"]),
        (&Value::from("done"), &Value::from(false)),
        "{test}: boot 2 status: {st:#}"
    );
    assert!(
        st["steps"]
            .to_string()
            .contains("already applied; only boot commands ran"),
        "{test}: boot 2 status steps: {st:#}"
    );
    assert_eq!(
        st["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: {st:#}"
    );
    assert_eq!(host_keys(r2), keys1, "{test}: boot 2: host keys changed");
    assert!(
        !r2.console().contains("BEGIN SSH HOST KEY FINGERPRINTS"),
        "{test}: boot 2: host keys regenerated"
    );
    assert_eq!(
        one_line(r2, "machine-id"),
        machine1,
        "{test}: boot 2 machine-id"
    );
    let clean = r2.get("x-zz-clean");
    assert!(
        clean.trim_end().ends_with("exit 0"),
        "{test}: boot 2: preroot clean at the end of the boot:\n{clean}"
    );

    // Boot 3: the cleaned disk boots as instance B.
    let ctx = assert_booted_with_preroot(test, r3);
    assert_eq!(ctx["instance_id"], INSTANCE_B, "{test}: boot 3 instance");
    assert_configured(test, r3, "10.0.2.15", "preroot-qemu-b");
    let etc = r3.get("etc-preroot");
    assert!(
        etc.contains(&format!("# /etc/preroot/instance-id\n{INSTANCE_B}")),
        "{test}: boot 3: the sysroot phase rendered for B:\n{etc}"
    );
    assert_applied_new_instance(test, "boot 3", r3, INSTANCE_B);
    assert_eq!(
        one_line(r3, "user-data-ran"),
        "/run/user-data-ran",
        "{test}: boot 3: B's user data (runcmd) ran"
    );
    assert_eq!(
        one_line(r3, "instances"),
        INSTANCE_B,
        "{test}: boot 3: only B's instance state"
    );
    assert!(
        r3.sub("x-apply", "heat-files").contains("No such file"),
        "{test}: boot 3: A's Heat files are gone:\n{}",
        r3.sub("x-apply", "heat-files")
    );
    assert!(
        r3.sub("x-apply", "heat-log").starts_with("0 600\n"),
        "{test}: boot 3: heat-provision.log truncated in place, mode kept:\n{}",
        r3.sub("x-apply", "heat-log")
    );
    let machine3 = one_line(r3, "machine-id");
    assert!(
        machine3.len() == 32 && machine3 != machine1,
        "{test}: boot 3: a new machine-id ({machine3:?}, was {machine1:?})"
    );
    let keys3 = host_keys(r3);
    assert!(
        !keys3.is_empty() && keys3.iter().all(|k| !keys1.contains(k)),
        "{test}: boot 3: new host keys {keys3:?} (were {keys1:?})"
    );
    assert!(
        r3.console()
            .contains("-----BEGIN SSH HOST KEY FINGERPRINTS-----"),
        "{test}: boot 3: fingerprints on the console"
    );
}

/// An image that keeps Debian's cloud-init (`preroot+cloudinit`: ConfigDrive in its
/// datasource_list, networkd renderer): preroot detects it and hands off. cloud-init runs
/// from the NoCloud seed preroot wrote (never reading the config drive itself), writes no
/// network configuration (preroot's networkd files are the only ones), runs the user data
/// (the config drive's runcmd touches /run/user-data-ran) and finishes without errors.
#[test]
fn qemu_cloud_init_handoff() {
    let test = "qemu_cloud_init_handoff";
    if !require_qemu(test) {
        return;
    }
    let r = boot(
        test,
        "gpt-configdrive",
        &[("VARIANT", "preroot+cloudinit".to_string())],
    );
    let ctx = assert_booted_with_preroot(test, &r);
    assert_configdrive(test, &ctx);
    assert_configured(test, &r, "10.0.2.15", "preroot-qemu");
    let outcome = ctx["phases"][2]["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome.contains("cloud-init hand-off"),
        "{test}: the sysroot phase wrote the hand-off: {outcome}"
    );
    let ci = |topic: &str| r.sub("x-cloud-init", topic);
    let status = ci("status");
    assert!(
        status.contains("status: done") && status.trim_end().ends_with("exit 0"),
        "{test}: cloud-init status --long:\n{status}"
    );
    let result = r
        .try_json_sub("x-cloud-init", "result")
        .unwrap_or_else(|e| panic!("{test}: cloud-init's result.json: {e}"));
    let ds = result["v1"]["datasource"].as_str().unwrap_or_default();
    assert!(
        ds.contains("DataSourceNoCloud") && ds.contains("/var/lib/cloud/seed/nocloud"),
        "{test}: cloud-init's datasource: {result:#}"
    );
    assert_eq!(
        result["v1"]["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: cloud-init errors: {result:#}"
    );
    assert!(
        ci("datasource").contains(&format!("nocloud seed-dir ({INSTANCE_DEFAULT})"))
            || ci("datasource").contains(INSTANCE_DEFAULT),
        "{test}: instance-data (platform, subplatform, instance id):\n{}",
        ci("datasource")
    );
    let log = ci("log-datasource");
    assert!(
        !log.to_lowercase().contains("configdrive") && !log.contains("config-2"),
        "{test}: cloud-init looked at the config drive itself:\n{log}"
    );
    let files = r.get("network-files");
    let names: Vec<&str> = files
        .lines()
        .filter_map(|l| l.strip_prefix("# /etc/systemd/network/"))
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.contains("preroot")),
        "{test}: networkd files other than preroot's: {names:?}"
    );
    assert_eq!(
        ci("user-data-ran").trim(),
        "/run/user-data-ran",
        "{test}: the user data's runcmd (cloud-init's final stage)"
    );
    let st = r.get("preroot-status");
    assert!(
        st.contains("cloud-init: NoCloud seed"),
        "{test}: preroot apply handed off:\n{st}"
    );
}

/// The instance id of `lib.sh make_configdrive` without CD_UUID.
const INSTANCE_DEFAULT: &str = "6a1c1a3b-1111-4222-8333-444455556666";
