//! The Azure provider on the fixtures: the medium's context, IMDS's, and how they combine.

use super::*;
use crate::context::{Access, LinkOrigin, Source, SourceKind};
use crate::media::MemTree;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/platforms/azure")
            .join(name),
    )
    .unwrap()
}

struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!(
            "preroot-azure-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn source(kind: SourceKind, medium: Access) -> Source {
    Source {
        kind,
        medium,
        location: "x".into(),
        partition_of: None,
    }
}

fn nics() -> Vec<HostNic> {
    ["00:0d:3a:04:75:98", "22:0d:3a:04:75:98"]
        .iter()
        .enumerate()
        .map(|(i, m)| HostNic {
            name: format!("eth{i}"),
            mac: (*m).into(),
        })
        .collect()
}

fn medium(tree: &MemTree, state: &StateDir) -> Result<Context, DatasourceError> {
    medium_context(&Input {
        tree,
        source: source(SourceKind::AzureOvf, Access::Udf),
        state,
        host_nics: nics(),
    })
}

fn imds_ctx() -> Result<Context, DatasourceError> {
    imds_context(
        &fixture("imds-instance.json"),
        "imds",
        source(SourceKind::MetadataService, Access::Http),
        nics(),
    )
}

#[test]
fn medium_gives_user_keys_password_custom_data() {
    let dir = Scratch::new("medium");
    let state = StateDir::new(&dir.0);
    let mut tree = MemTree::new();
    tree.insert(OVF_FILE, fixture("ovf-env.xml"));
    let ctx = medium(&tree, &state).unwrap();
    assert_eq!(ctx.platform, Some(Platform::Azure), "platform");
    assert_eq!(ctx.hostname.as_deref(), Some("preroot-vm"), "hostname");
    assert_eq!(ctx.user.as_deref(), Some("azureuser"), "user");
    assert_eq!(ctx.ssh_keys.len(), 1, "the key with a value");
    assert!(
        ctx.warnings
            .iter()
            .any(|w| w.message.contains("only by fingerprint EB0C0AB4")),
        "fingerprint-only key named: {:?}",
        ctx.warnings
    );
    let pw = ctx.password.as_ref().expect("password secret");
    assert_eq!(std::fs::read(&pw.path).unwrap(), b"P@ssw0rd-not-real");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pw.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "password 0600");
    let ud = ctx.user_data.as_ref().expect("custom data");
    assert_eq!(
        std::fs::read(&ud.path).unwrap(),
        b"#cloud-config\nhostname: from-custom-data\n"
    );
    let json = serde_json::to_string(&ctx).unwrap();
    assert!(!json.contains("P@ss"), "no password in the context");
    assert_eq!(ctx.extra["azure"]["disable_ssh_password_auth"], true);
    assert_eq!(ctx.extra["azure"]["preprovisioned_vm"], false);
}

#[test]
fn medium_errors_name_the_document() {
    let dir = Scratch::new("medium-errors");
    let state = StateDir::new(&dir.0);
    let cases: Vec<(&str, Option<&[u8]>, &str)> = vec![
        ("absent", None, "ovf-env.xml: missing"),
        ("not xml", Some(b"{}"), "ovf-env.xml: "),
        (
            "not azure",
            Some(b"<Environment xmlns=\"http://schemas.dmtf.org/ovf/environment/1\"/>"),
            "not an Azure document",
        ),
    ];
    for (case, doc, want) in cases {
        let mut tree = MemTree::new();
        if let Some(d) = doc {
            tree.insert(OVF_FILE, d.to_vec());
        }
        let e = medium(&tree, &state).expect_err(case).to_string();
        assert!(e.contains(want), "case {case}: {e}");
        assert!(!e.contains("ovf-env.xml: ovf-env.xml"), "case {case}: {e}");
    }
    let mut tree = MemTree::new();
    tree.insert(OVF_FILE, fixture("ovf-env-preprovisioned.xml"));
    let c = medium(&tree, &state).unwrap();
    assert_eq!(c.extra["azure"]["preprovisioned_vm"], true, "pool VM");
    assert!(
        c.warnings.iter().any(|w| w.message.contains("pool VM")),
        "warned"
    );
}

#[test]
fn imds_gives_id_network_and_the_rest() {
    let mut ctx = imds_ctx().unwrap();
    ctx.match_nics(false);
    assert_eq!(
        ctx.instance_id.as_deref(),
        Some("ff702a6b-cb6a-4fcd-ad68-b4ce38227642")
    );
    assert_eq!(ctx.hostname.as_deref(), Some("my-hostname"));
    assert_eq!(ctx.user.as_deref(), Some("azureuser"));
    assert_eq!(ctx.ssh_keys.len(), 1);
    let links: Vec<(Option<&str>, &[Addressing])> = ctx
        .network
        .links
        .iter()
        .map(|l| (l.name.as_deref(), l.addressing.as_slice()))
        .collect();
    assert_eq!(
        links,
        [
            (Some("eth0"), &[Addressing::Dhcp4][..]),
            (Some("eth1"), &[Addressing::Dhcp4][..])
        ]
    );
    assert!(ctx.fallbacks.is_empty(), "{:?}", ctx.fallbacks);
    assert_eq!(ctx.extra["azure"]["location"], "eastus2");
}

#[test]
fn secondary_addresses_are_static() {
    let doc =
        br#"{"compute": {"vmId": "v"}, "network": {"interface": [{"macAddress": "000D3A047598",
        "ipv4": {"ipAddress": [{"privateIpAddress": "10.0.0.4"}, {"privateIpAddress": "10.0.0.5"}],
                 "subnet": [{"address": "10.0.0.0", "prefix": "24"}]},
        "ipv6": {"ipAddress": [{"privateIpAddress": "fd00::4"}, {"privateIpAddress": "fd00::5"}],
                 "subnet": [{"prefix": "64"}]}}]}}"#;
    let ctx = imds_context(
        doc,
        "imds",
        source(SourceKind::MetadataService, Access::Http),
        vec![],
    )
    .unwrap();
    let a = &ctx.network.links[0].addressing;
    assert_eq!(
        a,
        &[
            Addressing::Dhcp4,
            Addressing::Dhcp6,
            Addressing::Static {
                address: "10.0.0.5".parse().unwrap(),
                prefix: 24,
                gateway: None
            },
            Addressing::Static {
                address: "fd00::5".parse().unwrap(),
                prefix: 64,
                gateway: None
            },
        ]
    );
}

#[test]
fn combine_table() {
    let dir = Scratch::new("combine");
    let state = StateDir::new(&dir.0);
    let mut tree = MemTree::new();
    tree.insert(OVF_FILE, fixture("ovf-env.xml"));
    let m = || Some(medium(&tree, &state));
    let bad_medium = || Some(Err(DatasourceError::new(OVF_FILE, "broken")));
    let down = || {
        Err(DatasourceError::new(
            "http://169.254.169.254/x",
            "timed out",
        ))
    };
    struct Want {
        ok: bool,
        id: Option<&'static str>,
        hostname: Option<&'static str>,
        errors: usize,
        links: usize,
    }
    type Case = (
        &'static str,
        Option<Result<Context, DatasourceError>>,
        Result<Context, DatasourceError>,
        Want,
    );
    let cases: Vec<Case> = vec![
        (
            "both",
            m(),
            imds_ctx(),
            Want {
                ok: true,
                id: Some("ff702a6b-cb6a-4fcd-ad68-b4ce38227642"),
                hostname: Some("preroot-vm"),
                errors: 0,
                links: 2,
            },
        ),
        (
            "medium, IMDS down",
            m(),
            down(),
            Want {
                ok: true,
                id: Some("dmi-uuid"),
                hostname: Some("preroot-vm"),
                errors: 1,
                links: 2,
            },
        ),
        (
            "no medium",
            None,
            imds_ctx(),
            Want {
                ok: true,
                id: Some("ff702a6b-cb6a-4fcd-ad68-b4ce38227642"),
                hostname: Some("my-hostname"),
                errors: 0,
                links: 2,
            },
        ),
        (
            "broken medium",
            bad_medium(),
            imds_ctx(),
            Want {
                ok: true,
                id: Some("ff702a6b-cb6a-4fcd-ad68-b4ce38227642"),
                hostname: Some("my-hostname"),
                errors: 1,
                links: 2,
            },
        ),
        (
            "nothing",
            None,
            down(),
            Want {
                ok: false,
                id: None,
                hostname: None,
                errors: 0,
                links: 0,
            },
        ),
        (
            "broken and down",
            bad_medium(),
            down(),
            Want {
                ok: false,
                id: None,
                hostname: None,
                errors: 0,
                links: 0,
            },
        ),
    ];
    for (case, med, imds, want) in cases {
        match combine(med, imds, Some("DMI-UUID")) {
            Ok(ctx) => {
                assert!(want.ok, "case {case}: combined");
                assert_eq!(ctx.instance_id.as_deref(), want.id, "case {case}: id");
                assert_eq!(
                    ctx.hostname.as_deref(),
                    want.hostname,
                    "case {case}: hostname"
                );
                assert_eq!(
                    ctx.errors.len(),
                    want.errors,
                    "case {case}: errors {:?}",
                    ctx.errors
                );
                assert_eq!(ctx.network.links.len(), want.links, "case {case}: links");
                assert_eq!(ctx.user.as_deref(), Some("azureuser"), "case {case}: user");
                if want.id == Some("dmi-uuid") {
                    assert_eq!(
                        ctx.fallbacks[0].kind, "azure-dmi-instance-id",
                        "case {case}"
                    );
                    // No network description: every NIC by DHCP, as the fallback rule says.
                    assert!(
                        ctx.network
                            .links
                            .iter()
                            .all(|l| l.origin == LinkOrigin::Fallback),
                        "case {case}: fallback links"
                    );
                }
            }
            Err(e) => assert!(!want.ok, "case {case}: {e}"),
        }
    }
}

#[test]
fn wireserver_from_lease_or_fixed_or_given() {
    let mut leased = imds_ctx().unwrap();
    leased
        .extra
        .insert("dhcp".into(), serde_json::json!({"option_245": "10.1.2.3"}));
    let mut bad = leased.clone();
    bad.extra.insert(
        "dhcp".into(),
        serde_json::json!({"option_245": "127.0.0.1"}),
    );
    let cases = [
        ("option 245", leased.clone(), None, "http://10.1.2.3/"),
        ("loopback in 245", bad, None, "http://168.63.129.16/"),
        (
            "no lease",
            imds_ctx().unwrap(),
            None,
            "http://168.63.129.16/",
        ),
        (
            "given",
            leased,
            Some("http://127.0.0.1:8/"),
            "http://127.0.0.1:8/",
        ),
    ];
    for (case, mut ctx, given, want) in cases {
        wireserver_url(&mut ctx, given);
        assert_eq!(ctx.extra["azure"]["wireserver"], want, "case {case}");
        assert_eq!(
            ctx.extra["azure"]["location"], "eastus2",
            "case {case}: kept"
        );
    }
}
