//! Apache CloudStack: the metadata service of the virtual router, one value per key under
//! `latest/meta-data/` and user data at `latest/user-data`, read through a [`Tree`] (the
//! HTTP service in the boot; a directory of the same shape in tests) by [`read_tree`]; the
//! password server beside it ([`password`]). Exoscale, which runs on CloudStack, is the same
//! reader with API version `1.0` ([`Flavor`], `providers/exoscale`).
//!
//! Where: the metadata server is the **DHCP server of the lease** (option 54 of the lease
//! the network stage won, [`crate::platform::Service::LeaseServer`]), as Afterburn's
//! `DhcpServerId` and cloud-init's lease readers find it; where the network was up before
//! preroot ran (no lease of ours), the default gateway of `/proc/net/route`, cloud-init's
//! last resort, recorded as the fallback `cloudstack-default-gateway` (`run.rs`). The
//! password server is port 8080 of the same address (`--endpoint password=URL` overrides).
//!
//! Reads (docs.cloudstack.apache.org "User Data and Meta Data", cloud-init's
//! `DataSourceCloudStack`, Afterburn's `providers/cloudstack`): `instance-id`,
//! `local-hostname`, `public-keys` (one document, a key per line), `availability-zone`,
//! `service-offering`, `vm-id` (extra), `user-data` (a 0600 secret; 404 means none). The
//! network is the lease's: no link is described, so every NIC gets DHCPv4 by the fallback
//! rule. The password: asked with `DomU_Request: send_my_password`, stored as the 0600
//! secret `password` that `apply` sets for the default user, never in the context or the
//! log, then acknowledged with `saved_password`. No password (none set, taken before, no
//! password server) is a warning; the rest of the context stands either way.
//!
//! Not read: CloudStack's config-drive variant (a `config-2` medium with the same keys);
//! `local-ipv4`/`public-ipv4` (the lease has them). Caps: [`super::METADATA_CAP`] per
//! value, [`USERDATA_CAP`].
//!
//! Panic contract: nothing here panics on any input; a missing or bad instance id is the one
//! error (a lease's DHCP server may be any router with a web page: without an instance id
//! it is not a CloudStack metadata service).
#![deny(clippy::arithmetic_side_effects)]

pub mod password;

use super::fields;
use super::service::Endpoint;
use super::{add_ssh_keys, read, utf8, DatasourceError, Input, METADATA_CAP, USERDATA_CAP};
use crate::context::{Context, Platform};
use crate::media::Tree;
use serde_json::Value;

/// What differs between CloudStack and Exoscale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub platform: Platform,
    /// The API version directory (`latest`, `1.0`).
    pub version: &'static str,
    /// The password server's path on port 8080.
    pub password_path: &'static str,
}

/// CloudStack's own.
pub const CLOUDSTACK: Flavor = Flavor {
    platform: Platform::CloudStack,
    version: "latest",
    password_path: "/",
};

/// A small text value, trimmed; `Ok(None)` if absent.
fn value(tree: &dyn Tree, path: &str) -> Result<Option<String>, DatasourceError> {
    match read(tree, path, METADATA_CAP)? {
        Some(bytes) => Ok(Some(utf8(&bytes, path)?.trim().to_string())),
        None => Ok(None),
    }
}

/// An optional value: a failure is recorded and reads as absent.
fn optional(ctx: &mut Context, tree: &dyn Tree, path: &str) -> Option<String> {
    match value(tree, path) {
        Ok(v) => v.filter(|v| !v.is_empty()),
        Err(e) => {
            ctx.error("datasource", &e.object, e.message);
            None
        }
    }
}

/// Reads the metadata tree of `flavor` into a context (the password is [`fetch_as`]'s).
pub fn read_tree(input: &Input, flavor: &Flavor) -> Result<Context, DatasourceError> {
    let tree = input.tree;
    let md = format!("{}/meta-data", flavor.version);
    let mut ctx = Context::new(Some(flavor.platform), input.source.clone());
    ctx.host_nics = input.host_nics.clone();
    let id_path = format!("{md}/instance-id");
    // Required: the DHCP server of a lease may be any router with a web page on port 80;
    // without an instance id this is not a CloudStack metadata service.
    let id = value(tree, &id_path)?
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            DatasourceError::new(
                &id_path,
                format!("missing: not {}'s metadata service", flavor.platform),
            )
        })?;
    fields::instance_id(&mut ctx, Some(id), &id_path)?;
    let host_path = format!("{md}/local-hostname");
    let hostname = optional(&mut ctx, tree, &host_path);
    fields::hostname(&mut ctx, hostname, &host_path);
    for (key, extra) in [
        ("availability-zone", "availability_zone"),
        ("service-offering", "instance_type"),
        ("vm-id", "vm_id"),
    ] {
        if let Some(v) = optional(&mut ctx, tree, &format!("{md}/{key}")).filter(|v| v.len() <= 255)
        {
            ctx.extra.insert(extra.into(), Value::String(v));
        }
    }
    let keys_path = format!("{md}/public-keys");
    if let Some(keys) = optional(&mut ctx, tree, &keys_path) {
        add_ssh_keys(&mut ctx, &keys, &keys_path);
    }
    let ud_path = format!("{}/user-data", flavor.version);
    match read(tree, &ud_path, USERDATA_CAP) {
        Ok(Some(data)) => ctx.user_data = fields::secret(&mut ctx, input.state, "user-data", &data),
        Ok(None) => {}
        Err(e) => ctx.error("datasource", &e.object, e.message),
    }
    ctx.match_nics(false);
    Ok(ctx)
}

/// Reads the tree of `flavor` at `ep`, then takes the password from its server.
pub fn fetch_as(ep: Endpoint, flavor: &Flavor) -> Result<Context, DatasourceError> {
    let server = password::Server::new(
        ep.beside("password", 8080, flavor.password_path),
        &ep.client,
    );
    let state = ep.state;
    let mut ctx = ep.with_tree(|input, _| read_tree(input, flavor))?;
    take_password(&mut ctx, &server, state);
    Ok(ctx)
}

/// Asks `server` for the password; stores it (0600) and acknowledges it.
fn take_password(ctx: &mut Context, server: &password::Server, state: &crate::state::StateDir) {
    let object = server.url.to_string();
    match server.ask() {
        Ok(password::Answer::Password(p)) => {
            ctx.password = fields::secret(ctx, state, "password", p.as_bytes());
            // Only a stored password is acknowledged: one not stored is asked for again at
            // the next boot.
            if ctx.password.is_some() {
                log::info!("fetch: password taken from {object}");
                if let Err(e) = server.acknowledge() {
                    ctx.warn(
                        "datasource",
                        &object,
                        format!("saved_password not acknowledged: {e}"),
                    );
                }
            }
        }
        Ok(password::Answer::Nothing(why)) => log::info!("fetch: {object}: no password: {why}"),
        Ok(password::Answer::Refused) => ctx.warn(
            "datasource",
            &object,
            "the password server answered bad_request",
        ),
        Ok(password::Answer::Garbage(why)) => {
            ctx.warn("datasource", &object, format!("not a password: {why}"))
        }
        Err(e) => ctx.warn("datasource", &object, format!("no password: {e}")),
    }
}

/// The gateway of the IPv4 default route in `/proc/net/route` text (its columns `Iface
/// Destination Gateway Flags … Mask`, addresses as host-order hex); `None` without one, or
/// for an on-link default route (gateway 0). Pure.
pub fn default_gateway(routes: &str) -> Option<std::net::Ipv4Addr> {
    routes.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (dest, gw, mask) = (cols.get(1)?, cols.get(2)?, cols.get(7)?);
        if *dest != "00000000" || *mask != "00000000" {
            return None;
        }
        let gw = u32::from_str_radix(gw, 16).ok().filter(|g| *g != 0)?;
        // The kernel prints the network-order address as a host-order u32: its bytes in
        // memory (native) order are the address's.
        Some(std::net::Ipv4Addr::from(gw.to_ne_bytes()))
    })
}

/// Reads CloudStack's service at `ep` (the lease's server, or `--metadata-url`).
pub fn fetch(ep: Endpoint) -> Result<Context, DatasourceError> {
    fetch_as(ep, &CLOUDSTACK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SourceKind;
    use crate::media::{DirTree, MemTree};
    use crate::providers::netconfig::testutil::{source, TempState};

    #[test]
    fn the_fixture() {
        let st = TempState::new("cs");
        let tree = DirTree::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/platforms/cloudstack"
        ));
        let input = Input {
            tree: &tree,
            source: source(SourceKind::MetadataService),
            state: &st.0,
            host_nics: Vec::new(),
        };
        let ctx = read_tree(&input, &CLOUDSTACK).unwrap();
        assert_eq!(
            ctx.instance_id.as_deref(),
            Some("fd7e1d72-b0e1-4b0a-9a2f-2e0f5d2a1c11")
        );
        assert_eq!(ctx.hostname.as_deref(), Some("cs-test-vm"));
        assert_eq!(ctx.ssh_keys.len(), 1);
        assert_eq!(ctx.extra["instance_type"], "Small Instance");
        assert!(ctx.user_data.is_some());
        assert!(ctx.password.is_none(), "the password is fetch_as's");
        assert!(ctx.errors.is_empty() && ctx.warnings.is_empty());
    }

    #[test]
    fn default_gateways() {
        const HEAD: &str =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
        let cases: &[(&str, &str, Option<[u8; 4]>)] = &[
            (
                "default via 10.1.1.1",
                "eth0\t00000000\t0101010A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
                Some([10, 1, 1, 1]),
            ),
            (
                "only a subnet route",
                "eth0\t0001010A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
                None,
            ),
            (
                "on-link default",
                "eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n",
                None,
            ),
            ("short line", "eth0\t00000000\n", None),
            (
                "junk",
                "eth0\t00000000\tzz\t0003\t0\t0\t0\t00000000\n",
                None,
            ),
        ];
        for (case, body, want) in cases {
            let got = default_gateway(&format!("{HEAD}{body}"));
            assert_eq!(got, want.map(std::net::Ipv4Addr::from), "case {case}");
        }
        assert_eq!(default_gateway(""), None);
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn shapes() {
        let st = TempState::new("cs");
        // (case, files, instance id, warnings)
        let cases: &[(&str, &[(&str, &[u8])], Option<&str>, usize)] = &[
            (
                "id only",
                &[("latest/meta-data/instance-id", b"i-1\n")],
                Some("i-1"),
                1,
            ),
            (
                "bad hostname",
                &[
                    ("latest/meta-data/instance-id", b"i-1"),
                    ("latest/meta-data/local-hostname", b"a b"),
                ],
                Some("i-1"),
                0,
            ),
            (
                "keys",
                &[
                    ("latest/meta-data/instance-id", b"i-1"),
                    ("latest/meta-data/local-hostname", b"h"),
                    ("latest/meta-data/public-keys", b"ssh-rsa A\n\nssh-rsa B\n"),
                ],
                Some("i-1"),
                0,
            ),
        ];
        for (case, files, id, warnings) in cases {
            let mut tree = MemTree::new();
            for (p, d) in *files {
                tree.insert(p, d.to_vec());
            }
            let input = Input {
                tree: &tree,
                source: source(SourceKind::MetadataService),
                state: &st.0,
                host_nics: Vec::new(),
            };
            let ctx = read_tree(&input, &CLOUDSTACK).unwrap();
            assert_eq!(ctx.instance_id.as_deref(), *id, "case {case}");
            assert_eq!(
                ctx.warnings.len(),
                *warnings,
                "case {case}: {:?}",
                ctx.warnings
            );
        }
        for bad in [&b"a b"[..], b"\xff", b"", b"\n"] {
            let mut tree = MemTree::new();
            tree.insert("latest/meta-data/instance-id", bad.to_vec());
            let input = Input {
                tree: &tree,
                source: source(SourceKind::MetadataService),
                state: &st.0,
                host_nics: Vec::new(),
            };
            assert!(read_tree(&input, &CLOUDSTACK).is_err(), "case {bad:?}");
        }
        let empty = MemTree::new();
        let input = Input {
            tree: &empty,
            source: source(SourceKind::MetadataService),
            state: &st.0,
            host_nics: Vec::new(),
        };
        let e = read_tree(&input, &CLOUDSTACK).unwrap_err();
        assert_eq!(e.message, "missing: not cloudstack's metadata service");
    }
}
