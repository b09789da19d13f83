//! Microsoft Azure: the provisioning medium (`ovf-env.xml`, [`ovf`]), the instance metadata
//! service ([`imds`]), and the wire server's ready report ([`wireserver`], sent by
//! [`report`] from `preroot apply`); [`xml`] is the XML reader `ovf` and `wireserver` share.
//!
//! Owns turning them into one context, as cloud-init's Azure datasource chooses
//! (cloud-init@04eacd06:cloudinit/sources/DataSourceAzure.py):
//! - **medium** ([`find_medium`], [`medium_context`]): the first block device whose UDF or
//!   ISO9660 filesystem holds an `ovf-env.xml` with a `ProvisioningSection` (found by content:
//!   the label probe cannot see UDF's label, and Azure's medium has no fixed one). From it:
//!   hostname, the user name (the context's `user`), its password (secret `password`), ssh
//!   keys given by value (a key given only by fingerprint lives in the wire server's
//!   encrypted certificates: skipped, with a warning), `CustomData` (secret `user-data`),
//!   `DisableSshPasswordAuthentication` and the platform settings (in `extra.azure`);
//! - **IMDS** ([`fetch`]): `GET /metadata/instance?api-version=2021-02-01` with `Metadata:
//!   true`, retried within the deadline on 410 (IMDS not ready yet), 429 and 5xx as
//!   cloud-init does; from it the instance id (`compute.vmId`), the hostname and user when
//!   the medium gave none, more ssh keys, and the network: every NIC by its MAC with DHCPv4
//!   (its first address is the DHCP one), DHCPv6 when it has IPv6 addresses, its other
//!   addresses static;
//! - [`combine`]: the medium's context completed by IMDS's. Either alone is enough (with the
//!   other's failure an error in the context, or a missing medium a warning); both failing is
//!   a [`DatasourceError`]. Without IMDS the instance id is DMI's `product_uuid` (the same
//!   value as `vmId` on current kernels; cloud-init uses it), recorded as a fallback.
//!
//! The ready report needs the wire server's address at `preroot apply` time: [`wireserver_url`]
//! records it in `extra.azure.wireserver` (DHCP option 245 of the fetch's lease, else
//! 168.63.129.16; `--endpoint wireserver=URL` overrides both). `preroot apply` reports only when the context
//! names one, so a context made elsewhere never sends a packet to a real Azure address.
//!
//! Does not support (README "Out of scope"): pre-provisioned pool VMs (`PreprovisionedVm`:
//! recorded, warned, not reported), keys by fingerprint and `KeyPairs` (the goal state's
//! certificates), IMDS `userData`, extensions, the resource disk, KVP telemetry, Azure Stack.
//! Never writes anywhere but the state directory; network only through [`Endpoint`] (IMDS)
//! and, from `preroot apply`, [`report`] (the wire server).
//!
//! Spec: learn.microsoft.com/azure/virtual-machines/linux/provisioning (the medium and the
//! report), …/instance-metadata-service (IMDS), …/what-is-ip-address-168-63-129-16 (the
//! wire server). Panic contract: nothing here panics on any medium, document or answer; the
//! parsers' own contracts are in [`ovf`], [`imds`], [`wireserver`] and [`xml`].

pub mod imds;
pub mod ovf;
pub mod report;
pub mod wireserver;
pub mod xml;

use super::service::Endpoint;
use super::{add_ssh_keys, set_hostname, store_secret, DatasourceError, Input, METADATA_CAP};
use crate::context::{Access, Addressing, Context, Fallback, Link, LinkKind, Platform, Source};
use crate::context::{HostNic, SourceKind};
use crate::media::{self, Tree};
use crate::root::Root;
use crate::state::StateDir;
use serde_json::{Map, Value};
use std::net::Ipv4Addr;
use std::time::Duration;

/// The provisioning document at the medium's root.
pub const OVF_FILE: &str = "ovf-env.xml";

/// Adds `fields` to the `extra.azure` object (made when absent); `overwrite` says whether a
/// field already there is replaced.
fn set_extra(ctx: &mut Context, fields: Map<String, Value>, overwrite: bool) {
    let mut azure = match ctx.extra.remove("azure") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in fields {
        if overwrite {
            azure.insert(k, v);
        } else {
            azure.entry(k).or_insert(v);
        }
    }
    ctx.extra.insert("azure".into(), Value::Object(azure));
}

/// The user name, if it is one `useradd` takes (else a warning naming `object`).
fn set_user(ctx: &mut Context, name: &str, object: &str) {
    if crate::userdata::valid_user_name(name) {
        ctx.user = Some(name.to_string());
    } else {
        ctx.warn("datasource", object, format!("user name {name:?} refused"));
    }
}

/// The context of the medium's `ovf-env.xml`, without the network (read [`read_medium`] for
/// that). A missing or unusable document is an error.
pub fn medium_context(input: &Input) -> Result<Context, DatasourceError> {
    let raw = super::read(input.tree, OVF_FILE, METADATA_CAP)?
        .ok_or_else(|| DatasourceError::new(OVF_FILE, "missing"))?;
    let env = ovf::parse(&raw).map_err(|e| {
        let text = e.to_string();
        let msg = text
            .strip_prefix("ovf-env.xml: ")
            .unwrap_or(&text)
            .to_string();
        DatasourceError::new(OVF_FILE, msg)
    })?;
    let mut ctx = Context::new(Some(Platform::Azure), input.source.clone());
    ctx.host_nics = input.host_nics.clone();
    apply_ovf(&mut ctx, &env, input.state);
    Ok(ctx)
}

/// Azure's medium alone (`preroot context --from azure:PATH`): every NIC gets DHCPv4.
pub fn read_medium(input: &Input) -> Result<Context, DatasourceError> {
    let mut ctx = medium_context(input)?;
    ctx.match_nics(false);
    Ok(ctx)
}

fn apply_ovf(ctx: &mut Context, env: &ovf::OvfEnv, state: &StateDir) {
    const SET: &str = "ovf-env.xml: LinuxProvisioningConfigurationSet";
    set_hostname(ctx, &env.hostname, &format!("{SET}/HostName"));
    if let Some(user) = &env.username {
        set_user(ctx, user, &format!("{SET}/UserName"));
    }
    if let Some(pw) = &env.password {
        ctx.password = store_secret(ctx, state, "password", &pw.0);
    }
    for key in &env.public_keys {
        let object = format!("{SET}/SSH/PublicKeys/PublicKey");
        if key.value.is_empty() {
            let fp = key.fingerprint.as_deref().unwrap_or("none");
            ctx.warn(
                "datasource",
                &object,
                format!(
                    "key given only by fingerprint {fp}: it is in the wire server's encrypted \
                     certificates, which preroot does not read; skipped"
                ),
            );
        } else {
            add_ssh_keys(ctx, &key.value, &object);
        }
    }
    if let Some(data) = env.custom_data.as_ref().filter(|d| !d.0.is_empty()) {
        ctx.user_data = store_secret(ctx, state, "user-data", &data.0);
    }
    let mut fields = Map::new();
    if let Some(b) = env.disable_ssh_password_auth {
        fields.insert("disable_ssh_password_auth".into(), Value::Bool(b));
    }
    if let Some(b) = env.provision_guest_agent {
        fields.insert("provision_guest_agent".into(), Value::Bool(b));
    }
    fields.insert(
        "preprovisioned_vm".into(),
        Value::Bool(env.preprovisioned_vm),
    );
    if let Some(t) = &env.preprovisioned_vm_type {
        fields.insert("preprovisioned_vm_type".into(), Value::String(t.clone()));
    }
    set_extra(ctx, fields, true);
    if env.preprovisioned_vm {
        ctx.warn(
            "datasource",
            "ovf-env.xml: PlatformSettings/PreprovisionedVm",
            "a pre-provisioned pool VM: its re-provisioning (report, wait for reuse, read \
             again) is not supported; no ready report will be sent",
        );
    }
}

/// One block device's tree if it is Azure's provisioning medium: UDF or ISO9660 with an
/// `ovf-env.xml` that has a `ProvisioningSection` (a broken one counts: its error is then
/// the datasource's).
fn probe_device(dev: &std::path::Path) -> Option<(Box<dyn Tree>, Access)> {
    use crate::detect::label::{probe_path, FsType};
    // FAT and ext4 are never Azure's medium: do not open them.
    if let Ok(Some(l)) = probe_path(dev) {
        if l.fs != FsType::Iso9660 {
            return None;
        }
    }
    let (tree, access) = media::open(dev).ok()?;
    if !matches!(access, Access::Udf | Access::Iso9660) {
        return None;
    }
    let doc = tree.read(OVF_FILE, METADATA_CAP).ok()??;
    match ovf::parse(&doc) {
        Err(ovf::OvfError {
            kind: ovf::OvfErrorKind::NotAzure,
            ..
        }) => {
            log::info!("azure: {}: {OVF_FILE} is not Azure's", dev.display());
            None
        }
        _ => Some((tree, access)),
    }
}

/// Device names never probed: floppies (a read can stall), RAM, zram, device-mapper, md and
/// network block devices.
fn skipped(name: &str) -> bool {
    ["fd", "ram", "zram", "dm-", "md", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Looks once for Azure's provisioning medium among `<root>/sys/class/block` (CD-ROMs `sr*`
/// first, then by name), read at `<root>/dev/NAME`. The caller waits for udev first.
pub fn find_medium(root: &Root) -> Option<(Box<dyn Tree>, Source)> {
    let entries = std::fs::read_dir(root.join("sys/class/block")).ok()?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !skipped(n))
        .collect();
    names.sort_by_key(|n| (!n.starts_with("sr"), n.clone()));
    for name in names {
        if root
            .sys_attr(format!("sys/class/block/{name}/size"))
            .as_deref()
            == Some("0")
        {
            continue;
        }
        if let Some((tree, access)) = probe_device(&root.join(format!("dev/{name}"))) {
            log::info!("azure: provisioning medium /dev/{name} ({access:?})");
            let source = Source {
                kind: SourceKind::AzureOvf,
                medium: access,
                location: format!("/dev/{name}"),
                partition_of: None,
            };
            return Some((tree, source));
        }
    }
    None
}

/// How long IMDS may keep answering 410 (not ready) before each new try.
const GONE_BACKOFF: Duration = Duration::from_millis(500);

/// Reads IMDS at `ep`: `Metadata: true`, 410 retried (after [`GONE_BACKOFF`]) until the
/// deadline, 429 and 5xx by the client itself.
pub fn fetch(mut ep: Endpoint) -> Result<Context, DatasourceError> {
    ep.client.headers = vec![("Metadata".into(), "true".into())];
    let url = ep.base.join(imds::PATH);
    let cap = usize::try_from(METADATA_CAP).unwrap_or(usize::MAX);
    let err = |m: String| DatasourceError::new(url.to_string(), m);
    let body = loop {
        let r = ep
            .client
            .request("GET", &url, &[], b"", cap)
            .map_err(|e| err(e.to_string()))?;
        match r.status {
            200 => break r.body,
            410 if ep.client.deadline.remaining() > GONE_BACKOFF => {
                log::debug!("azure: IMDS says 410 (not ready); asking again");
                std::thread::sleep(GONE_BACKOFF);
            }
            s => return Err(err(format!("HTTP status {s}"))),
        }
    };
    imds_context(&body, &url.to_string(), ep.source, ep.host_nics)
}

/// The context of the IMDS document `body` (fetched from `object`). Pure but for the log.
pub fn imds_context(
    body: &[u8],
    object: &str,
    source: Source,
    host_nics: Vec<HostNic>,
) -> Result<Context, DatasourceError> {
    let md = imds::parse(body).map_err(|e| DatasourceError::new(object, e.to_string()))?;
    let mut ctx = Context::new(Some(Platform::Azure), source);
    ctx.host_nics = host_nics;
    apply_imds(&mut ctx, &md);
    Ok(ctx)
}

/// Fills `ctx` from IMDS: what the medium did not give, and the network.
pub fn apply_imds(ctx: &mut Context, md: &imds::Imds) {
    for (field, what) in &md.problems {
        ctx.warn("datasource", &format!("IMDS {field}"), what.clone());
    }
    match &md.vm_id {
        Some(id) => ctx.instance_id = Some(id.clone()),
        None => ctx.warn("datasource", "IMDS compute.vmId", "missing"),
    }
    if ctx.hostname.is_none() {
        if let Some(h) = &md.hostname {
            set_hostname(ctx, h, "IMDS compute.osProfile.computerName");
        }
    }
    if ctx.user.is_none() {
        if let Some(u) = &md.admin_username {
            set_user(ctx, u, "IMDS compute.osProfile.adminUsername");
        }
    }
    for key in &md.public_keys {
        add_ssh_keys(ctx, key, "IMDS compute.publicKeys");
    }
    let mut fields = Map::new();
    for (k, v) in [
        ("location", &md.location),
        ("vm_size", &md.vm_size),
        ("zone", &md.zone),
    ] {
        if let Some(v) = v {
            fields.insert(k.into(), Value::String(v.clone()));
        }
    }
    if let Some(b) = md.disable_password_auth {
        fields
            .entry("disable_ssh_password_auth")
            .or_insert(Value::Bool(b));
    }
    set_extra(ctx, fields, false);
    ctx.network.links = md.nics.iter().enumerate().map(nic_link).collect();
}

/// A NIC as cloud-init renders it: DHCPv4 (its first address), DHCPv6 if it has IPv6
/// addresses, the other addresses static without a gateway (DHCP gives the route).
fn nic_link((i, nic): (usize, &imds::Nic)) -> Link {
    let mut link = Link::new(format!("nic{i}"), LinkKind::Physical);
    link.mac = Some(nic.mac.clone());
    link.addressing.push(Addressing::Dhcp4);
    if !nic.ipv6.is_empty() {
        link.addressing.push(Addressing::Dhcp6);
    }
    for (address, prefix) in nic.ipv4.iter().skip(1).chain(nic.ipv6.iter().skip(1)) {
        link.addressing.push(Addressing::Static {
            address: *address,
            prefix: *prefix,
            gateway: None,
        });
    }
    link
}

/// The medium's context (`Some` when a medium was found) completed by IMDS's. `dmi_uuid` is
/// the instance id when IMDS gave none.
pub fn combine(
    medium: Option<Result<Context, DatasourceError>>,
    imds: Result<Context, DatasourceError>,
    dmi_uuid: Option<&str>,
) -> Result<Context, DatasourceError> {
    let mut ctx = match (medium, imds) {
        (Some(Ok(mut m)), Ok(i)) => {
            merge(&mut m, i);
            m
        }
        (Some(Ok(mut m)), Err(e)) => {
            m.error("datasource", &e.object, e.message);
            m
        }
        (Some(Err(e)), Ok(mut i)) => {
            i.error("datasource", &e.object, e.message);
            i
        }
        (None, Ok(mut i)) => {
            i.warn(
                "datasource",
                OVF_FILE,
                "no provisioning medium found: read from IMDS alone (no password, no custom data)",
            );
            i
        }
        (Some(Err(m)), Err(i)) => {
            return Err(DatasourceError::new(
                "platform azure",
                format!(
                    "{}: {}; and {}: {}",
                    m.object, m.message, i.object, i.message
                ),
            ))
        }
        (None, Err(i)) => {
            return Err(DatasourceError::new(
                i.object,
                format!("{} (and no provisioning medium found)", i.message),
            ))
        }
    };
    if ctx.instance_id.is_none() {
        if let Some(uuid) = dmi_uuid.map(str::trim).filter(|u| !u.is_empty()) {
            ctx.instance_id = Some(uuid.to_ascii_lowercase());
            ctx.fallbacks.push(Fallback {
                kind: "azure-dmi-instance-id".into(),
                reason: "IMDS gave no vmId: the instance id is DMI's product_uuid".into(),
            });
        }
    }
    ctx.match_nics(false);
    Ok(ctx)
}

/// Adds IMDS's context `i` to the medium's `m`.
fn merge(m: &mut Context, i: Context) {
    m.instance_id = i.instance_id;
    if m.hostname.is_none() {
        m.hostname = i.hostname;
    }
    if m.user.is_none() {
        m.user = i.user;
    }
    for key in &i.ssh_keys {
        add_ssh_keys(m, key, "IMDS compute.publicKeys");
    }
    m.network = i.network;
    m.errors.extend(i.errors);
    m.warnings.extend(i.warnings);
    m.fallbacks.extend(i.fallbacks);
    for (k, v) in i.extra {
        match (k.as_str(), v) {
            ("azure", Value::Object(fields)) => set_extra(m, fields, false),
            (_, v) => {
                m.extra.entry(k).or_insert(v);
            }
        }
    }
}

/// Records where `preroot apply` sends the ready report: `url` when given (a test's server),
/// else DHCP option 245 of the fetch's lease (`extra.dhcp.option_245`) if usable, else
/// [`wireserver::DEFAULT_WIRESERVER`].
pub fn wireserver_url(ctx: &mut Context, url: Option<&str>) {
    let url = match url {
        Some(u) => u.to_string(),
        None => {
            let leased = ctx
                .extra
                .get("dhcp")
                .and_then(|d| d.get("option_245"))
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
                .and_then(|a| wireserver::wireserver_from_option(&a.octets()));
            let addr = leased.unwrap_or(wireserver::DEFAULT_WIRESERVER);
            let from = if leased.is_some() {
                "DHCP option 245"
            } else {
                "the fixed address"
            };
            log::info!("azure: wire server {addr} ({from})");
            format!("http://{addr}/")
        }
    };
    let mut fields = Map::new();
    fields.insert("wireserver".into(), Value::String(url));
    set_extra(ctx, fields, true);
}

#[cfg(test)]
mod tests;
