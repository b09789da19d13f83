//! Azure booted in QEMU (issue 20): `qemu/scenario.sh azure` gives the guest Hyper-V's DMI
//! with Azure's chassis asset tag (`-smbios type=3`), its provisioning medium (a
//! `genisoimage -udf` disc with `ovf-env.xml`) as a CD-ROM, and user networking restricted to
//! the machine on `net=168.0.0.0/6`, so that both IMDS (169.254.169.254) and the wire server
//! (168.63.129.16) lie inside it and `guestfwd` sends each to this test's server on
//! 127.0.0.1 (`common/azure.rs`). One boot, the whole path: detection, the UDF medium and
//! IMDS read in the initramfs over our own DHCP, the root grown, networkd's file and the
//! hostname written, then `preroot apply` in the booted system creating Azure's user with
//! its key and password, running the custom data, and reporting Ready, exactly once, for the
//! wire server's incarnation.
//!
//! Needs what every QEMU test needs (`require_qemu`) and `genisoimage`.

mod common;

use common::azure;
use common::qemu::*;
use common::TempDir;
use serde_json::Value;

/// `#cloud-config` with `runcmd: [[touch, /run/user-data-ran]]`, base64 (the custom data).
const CUSTOM_DATA: &str =
    "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6CiAgLSBbIHRvdWNoLCAvcnVuL3VzZXItZGF0YS1yYW4gXQo=";
const VM_ID: &str = "7c1ed0e8-3f1a-4a57-9f0e-2b9d6c5a1e44";
const INCARNATION: &str = "3";

#[test]
fn qemu_azure_provisioning() {
    let test = "qemu_azure_provisioning";
    if !require_qemu(test) {
        return;
    }
    require!(test; "genisoimage");
    let imds = azure::imds(azure::imds_doc(VM_ID, "52:54:00:12:34:56"), vec![]);
    let wire = azure::wireserver(&[INCARNATION], vec![]);
    let dir = TempDir::new("qemu-azure");
    let ovf = String::from_utf8(azure::ovf("preroot-azure", "azureuser"))
        .unwrap()
        .replace(
            "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogZnJvbS1jdXN0b20tZGF0YQo=",
            CUSTOM_DATA,
        );
    let ovf_path = dir.path().join("ovf-env.xml");
    std::fs::write(&ovf_path, ovf).unwrap();
    let r = boot(
        test,
        "azure",
        &[
            ("META_PORT", imds.port.to_string()),
            ("WIRE_PORT", wire.port.to_string()),
            ("AZURE_OVF", ovf_path.display().to_string()),
        ],
    );
    let ctx = assert_booted_with_preroot(test, &r);
    assert_eq!(ctx["platform"], "azure", "{test}: {ctx:#}");
    assert_eq!(
        (
            &ctx["source"]["kind"],
            &ctx["source"]["medium"],
            &ctx["source"]["location"]
        ),
        (
            &Value::from("azure-ovf"),
            &Value::from("udf"),
            &Value::from("/dev/sr0")
        ),
        "{test}: the medium, read by the UDF reader; {ctx:#}"
    );
    assert_eq!(ctx["instance_id"], VM_ID, "{test}: IMDS vmId");
    assert_eq!(
        ctx["hostname"], "preroot-azure",
        "{test}: ovf-env.xml HostName"
    );
    assert_eq!(ctx["user"], "azureuser", "{test}: ovf-env.xml UserName");
    assert_eq!(
        ctx["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: errors; {ctx:#}"
    );
    assert_eq!(
        ctx["extra"]["azure"]["wireserver"], "http://168.63.129.16/",
        "{test}: slirp's DHCP has no option 245: the fixed address"
    );
    let fetch_ms = ctx["phases"][0]["duration_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        fetch_ms <= FETCH_DEADLINE_MS,
        "{test}: fetch took {fetch_ms} ms, past its {FETCH_DEADLINE_MS} ms deadline"
    );
    assert_root_disk(test, &r, &ctx, "gpt");
    let leased = ctx["extra"]["dhcp"]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string();
    assert!(
        leased.starts_with("168."),
        "{test}: lease in 168.0.0.0/6: {leased}"
    );
    assert_configured(test, &r, &leased, "preroot-azure");

    // The booted system: preroot apply made Azure's user, ran the custom data, reported.
    let status: Value = serde_json::from_str(r.get("preroot-status")).unwrap_or(Value::Null);
    assert_eq!(status["stage"], "done", "{test}: apply status {status:#}");
    assert_eq!(
        status["errors"].as_array().map(Vec::len),
        Some(0),
        "{test}: apply errors {status:#}"
    );
    let ready = status["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["step"] == "azure-ready")
        .map(|s| s["outcome"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        ready.starts_with(&format!("Ready reported for incarnation {INCARNATION}")),
        "{test}: apply's azure-ready step: {status:#}"
    );
    let keys = r.sub("x-apply", "authorized-keys");
    assert!(
        keys.contains("/home/azureuser: ssh-ed25519 "),
        "{test}: azureuser's authorized_keys:\n{keys}"
    );
    assert!(
        r.sub("x-apply", "user-data-ran")
            .contains("/run/user-data-ran"),
        "{test}: the custom data ran:\n{}",
        r.get("x-apply")
    );

    // The wire server: exactly one Ready, for its incarnation.
    let reports = azure::reports(&wire);
    assert_eq!(reports.len(), 1, "{test}: reports received: {reports:?}");
    assert_eq!(
        (
            reports[0].state.as_str(),
            reports[0].incarnation.as_str(),
            reports[0].status
        ),
        ("Ready", INCARNATION, 200),
        "{test}: {reports:?}"
    );
    let gets = imds.requests();
    assert!(
        !gets.is_empty() && gets.iter().all(|g| g.header("metadata") == Some("true")),
        "{test}: IMDS requests: {gets:?}"
    );
    eprintln!(
        "{test}: wire server saw {:?}; IMDS {} request(s); fetch {fetch_ms} ms; {}",
        wire.requests()
            .iter()
            .map(|q| format!("{} {} -> {}", q.method, q.target, q.status))
            .collect::<Vec<_>>(),
        gets.len(),
        r.get("analyze").trim()
    );
}
