//! The boot-time driver: `preroot run --phase fetch|grow|sysroot`, one systemd unit (or dracut
//! hook) per phase, and the gathering of a context that `preroot context` shares.
//!
//! - `fetch` (early in the initrd): detect the platform, wait a bounded time for its medium,
//!   read the datasource, and write `/run/preroot/context.json` and the secret files. This is
//!   the one state the later phases read. Bounded by `preroot.timeout=` (default
//!   [`DEFAULT_TIMEOUT`]).
//!   It also writes the hand-off files in /run (`handoff.rs`).
//! - `grow` (after `initrd-root-device.target`, before `sysroot.mount`): the disk stage's
//!   block part, the partition, PV and LV of `root=` ([`crate::disk::phase_grow`]).
//! - `sysroot` (after `sysroot.mount`, before `initrd-root-fs.target`): the root
//!   filesystem's growth ([`crate::disk::phase_sysroot`]), then the network configuration
//!   and hostname written into the root that will boot (`sysroot.rs`), and the cloud-init
//!   hand-off when wanted ([`crate::apply::handoff_sysroot`]).
//!
//! Every phase appends its record (duration, start time since boot, peak RSS, outcome) to the
//! context and logs it. A failure is recorded in the context and logged, and the boot goes on:
//! nothing here can lose data, so nothing here stops the boot. Never waits without a deadline.

use crate::cmdline::{self, Cmdline};
use crate::context::{Context, Platform, Problem, Source};
use crate::deadline::Deadline;
use crate::detect::{self, Detection, Dmi};
use crate::media;
use crate::providers::{self, DatasourceError, Input};
use crate::root::Root;
use crate::state::StateDir;
use std::path::Path;
use std::time::{Duration, Instant};

/// `fetch`'s deadline when `preroot.timeout=` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the block devices are scanned again while waiting.
const MEDIA_POLL: Duration = Duration::from_millis(100);

/// With no hint of a medium, the longest wait for udev's coldplug to drain (within the
/// deadline): a stuck event must not cost every machine without a datasource its whole
/// `preroot.timeout=`.
const UDEV_SETTLE_MAX: Duration = Duration::from_secs(10);

/// Milliseconds since boot from `<root>/proc/uptime`.
fn uptime_ms(root: &Root) -> Option<u64> {
    let text = crate::output::read_file(&root.join("proc/uptime"), 4096).ok()?;
    let text = String::from_utf8_lossy(&text);
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// This process's peak RSS in KiB (`VmHWM` in `/proc/self/status`).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads `platform`'s local medium from `--from NAME:PATH`: a directory, an image file or a
/// device, every read of an image stopped at `deadline`.
pub fn read_from(
    platform: Platform,
    path: &Path,
    deadline: Deadline,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    let kind = platform.medium().map(|m| m.kind).ok_or_else(|| {
        DatasourceError::new(
            path.display().to_string(),
            format!("{platform} has no local medium"),
        )
    })?;
    let (tree, access) = media::open_until(path, Some(deadline))?;
    let input = Input {
        tree: tree.as_ref(),
        source: Source {
            kind,
            medium: access,
            location: path.display().to_string(),
            partition_of: None,
        },
        state,
        host_nics: root.host_nics(),
    };
    providers::read_medium(platform, &input)
}

/// Reads `platform`'s metadata service (`url`, else its default; NoCloud: the command line's
/// `ds=nocloud;s=URL`; CloudStack: the DHCP server of the lease) before `deadline`, bringing
/// up the network first when the service's address has no route (`net/`: IPv4 and IPv6 raced
/// on the candidate NICs, the platform's IPv6 service address beside its IPv4 one; or
/// DigitalOcean's link-local address). The service is then read at the address that
/// answered. `named` overrides the platform's other endpoints (`--endpoint NAME=URL`). The
/// links are put back afterwards unless `rd.neednet=1` or an `ip=` asks for the network (as
/// dracut keeps it). With a fake `root` and the platform's default address, the machine's own
/// network is never probed: the NICs come from the fake sysfs. Azure's data is its medium and
/// its service together: [`read_azure`].
pub fn read_service(
    cmd: &Cmdline,
    platform: Platform,
    url: Option<&str>,
    named: &[(String, String)],
    deadline: Deadline,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    if platform == Platform::Azure {
        return read_azure(cmd, url, named, deadline, root, state);
    }
    fetch_with_network(cmd, platform, url, named, deadline, root, state)
}

/// Azure: the provisioning medium (found by its content once udev has settled) and IMDS,
/// read into one context (`providers::azure::combine`), and the wire server's address
/// recorded for `preroot apply`'s ready report.
fn read_azure(
    cmd: &Cmdline,
    url: Option<&str>,
    named: &[(String, String)],
    deadline: Deadline,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    use crate::providers::azure;
    if !crate::root::wait_udev_settled(
        root,
        Deadline::after(deadline.remaining().min(UDEV_SETTLE_MAX)),
    ) {
        log::warn!("azure: udev still busy; looking for the provisioning medium anyway");
    }
    let medium = azure::find_medium(root).map(|(tree, source)| {
        azure::medium_context(&Input {
            tree: tree.as_ref(),
            source,
            state,
            host_nics: root.host_nics(),
        })
    });
    let imds = fetch_with_network(cmd, Platform::Azure, url, named, deadline, root, state);
    let uuid = Dmi::read(root).product_uuid;
    let mut ctx = azure::combine(medium, imds, Some(&uuid))?;
    let wireserver = named.iter().find(|(n, _)| n == "wireserver");
    azure::wireserver_url(&mut ctx, wireserver.map(|(_, u)| u.as_str()));
    Ok(ctx)
}

/// [`read_service`]'s network bring-up and fetch, for every platform.
fn fetch_with_network(
    cmd: &Cmdline,
    platform: Platform,
    url: Option<&str>,
    named: &[(String, String)],
    deadline: Deadline,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    let seed = cmd
        .nocloud
        .as_ref()
        .and_then(|n| n.seedfrom.as_deref())
        .filter(|s| s.starts_with("http://"));
    let url = url.or(if platform == Platform::Nocloud {
        seed
    } else {
        None
    });
    let explicit = url.is_some();
    let mut fallback = None;
    let (base, up) = match url.or(providers::service::default_url(platform)) {
        Some(url) => service_at(platform, cmd, root, url, explicit, deadline)?,
        None if platform.service() == crate::platform::Service::LeaseServer => {
            let (url, up, why) = lease_server(platform, cmd, root, deadline)?;
            fallback = why;
            (url, up)
        }
        None => {
            let nics = root.host_nics();
            return providers::fetch_service(platform, None, named, deadline, state, nics);
        }
    };
    let fetch_started = Instant::now();
    let nics = root.host_nics();
    let mut ctx = providers::fetch_service(platform, Some(&base), named, deadline, state, nics);
    if let Ok(ctx) = &mut ctx {
        ctx.fallbacks.extend(fallback);
        if let Some((up, started)) = &up {
            record_network(ctx, platform, up, *started, fetch_started);
        }
    }
    if let Some((up, _)) = up {
        if cmd.neednet == Some(true) || !cmd.ip.is_empty() {
            log::info!(
                "net: keeping {} configured (rd.neednet=1 or ip=)",
                up.lease.iface
            );
            up.keep();
        }
    }
    ctx
}

/// The network (when the service's address has no route) and the base URL to read for a
/// service at `url`: the address that answered first, of `url` and (unless the URL was
/// given) the platform's IPv6 service address.
fn service_at(
    platform: Platform,
    cmd: &Cmdline,
    root: &Root,
    url: &str,
    explicit: bool,
    deadline: Deadline,
) -> Result<(String, Option<(crate::net::Up, Instant)>), DatasourceError> {
    let parse =
        |u: &str| crate::http::Url::parse(u).map_err(|e| DatasourceError::new("metadata URL", e));
    let first = parse(url)?;
    // The service's addresses: the one given, or the platform's IPv4 and IPv6 ones.
    let mut urls = vec![first.clone()];
    if !explicit {
        if let Some(v6) = platform.service_v6() {
            urls.push(parse(v6)?);
        }
    }
    let real_root = root.base() == Path::new("/");
    let mut up = None;
    if cmd.network == Some(false) {
        log::info!("net: preroot.network=0: not bringing up the network");
    } else if (!real_root && !explicit) || crate::net::needs_network(first.addr) {
        let targets = urls.iter().map(|u| u.addr).collect();
        up = Some(bring_up(platform, cmd, root, targets, deadline, &first)?);
    }
    let base = match &up {
        Some((u, _)) => reached_url(&urls, u).unwrap_or(first),
        None => first,
    };
    Ok((base.to_string(), up))
}

/// Brings up the network to reach `targets` the platform's way: IPv4 and IPv6 raced on the
/// candidates, or a link-local address on the first NIC (DigitalOcean).
fn bring_up(
    platform: Platform,
    cmd: &Cmdline,
    root: &Root,
    targets: Vec<std::net::SocketAddr>,
    deadline: Deadline,
    url: &crate::http::Url,
) -> Result<(crate::net::Up, Instant), DatasourceError> {
    let opts = crate::net::Options {
        targets,
        ..crate::net::Options::default()
    };
    let started = Instant::now();
    let up = match platform.service() {
        crate::platform::Service::LinkLocal(_) => {
            crate::net::linklocal::bring_up(root, cmd, &opts, deadline)
        }
        _ => crate::net::bring_up(root, cmd, &opts, deadline),
    };
    up.map(|u| (u, started))
        .map_err(|e| DatasourceError::new(format!("{url} (network)"), e.to_string()))
}

/// The network, and the metadata URL, of a platform whose service is the DHCP server of the
/// lease (CloudStack): the DHCPv4 lease that reaches port 80 of its own server wins (IPv6 is
/// still raced, but has no service to reach). Where the network was up before preroot ran
/// (there is a default route, and no lease of ours), the default gateway is taken instead,
/// as cloud-init's last resort, and that is recorded.
#[allow(clippy::type_complexity)]
fn lease_server(
    platform: Platform,
    cmd: &Cmdline,
    root: &Root,
    deadline: Deadline,
) -> Result<
    (
        String,
        Option<(crate::net::Up, Instant)>,
        Option<crate::context::Fallback>,
    ),
    DatasourceError,
> {
    let routes = std::fs::read_to_string(root.join("proc/net/route")).unwrap_or_default();
    if let Some(gw) = providers::cloudstack::default_gateway(&routes) {
        let why = format!(
            "the network was up before preroot (no lease of its own): the metadata server is \
             taken to be the default gateway {gw}"
        );
        log::warn!("fetch: {platform}: {why}");
        let fallback = crate::context::Fallback {
            kind: "cloudstack-default-gateway".into(),
            reason: why,
        };
        return Ok((format!("http://{gw}/"), None, Some(fallback)));
    }
    if cmd.network == Some(false) {
        return Err(DatasourceError::new(
            format!("platform {platform}"),
            "preroot.network=0 and no default route: the metadata server (the DHCP server) \
             cannot be found",
        ));
    }
    let opts = crate::net::Options {
        lease_server_port: Some(80),
        ..crate::net::Options::default()
    };
    let started = Instant::now();
    let up = crate::net::bring_up(root, cmd, &opts, deadline).map_err(|e| {
        DatasourceError::new(format!("platform {platform} (network)"), e.to_string())
    })?;
    // The race wins only through a probe of a lease's server, so `reached` is that server.
    let server = match (up.reached, up.lease.server) {
        (Some(std::net::SocketAddr::V4(t)), _) => *t.ip(),
        (_, Some(s)) => s,
        _ => {
            return Err(DatasourceError::new(
                format!("platform {platform} (network)"),
                "the network came up without a DHCPv4 lease: no DHCP server to read",
            ))
        }
    };
    let url = format!("http://{server}/");
    log::info!("fetch: {platform}: the metadata server is the lease's DHCP server {url}");
    Ok((url, Some((up, started)), None))
}

/// The URL of the service address the network stage reached, in the winning NIC's zone
/// when it is link-local.
fn reached_url(urls: &[crate::http::Url], up: &crate::net::Up) -> Option<crate::http::Url> {
    let reached = up.reached?;
    let u = urls
        .iter()
        .find(|u| u.addr.ip() == reached.ip() && u.addr.port() == reached.port())?;
    match reached {
        std::net::SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => {
            Some(u.with_zone(&up.lease.iface, v6.scope_id()))
        }
        _ => Some(u.clone()),
    }
}

/// The network stage's report (with the fetch's timings) in `extra.dhcp`, or in
/// `extra.link_local` for DigitalOcean's link-local address (no DHCP ran), and what the race
/// learned of IPv6 on each NIC for the links the datasource left to the fallback rule.
fn record_network(
    ctx: &mut Context,
    platform: Platform,
    up: &crate::net::Up,
    started: Instant,
    fetched: Instant,
) {
    let mut report = serde_json::to_value(&up.lease).unwrap_or_default();
    if let Some(obj) = report.as_object_mut() {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        obj.insert("metadata_ms".into(), ms(fetched.elapsed()).into());
        obj.insert("total_ms".into(), ms(started.elapsed()).into());
    }
    let key = match platform.service() {
        crate::platform::Service::LinkLocal(_) => "link_local",
        _ => "dhcp",
    };
    ctx.extra.insert(key.into(), report);
    let learned: Vec<(String, crate::context::Addressing)> = up
        .lease
        .nics
        .iter()
        .filter_map(|n| Some((n.iface.clone(), n.learned_ipv6()?)))
        .collect();
    ctx.add_learned_ipv6(&learned);
}

/// Does the command line or DMI say OpenStack (which has both a drive and a service)?
fn hinted_openstack(cmd: &Cmdline, dmi: &Dmi) -> bool {
    match cmd.platform {
        cmdline::PlatformChoice::Platform(p) => p == Platform::Openstack,
        cmdline::PlatformChoice::Disabled => false,
        cmdline::PlatformChoice::Detect => {
            cmd.nocloud.is_none()
                && dmi
                    .classify()
                    .is_some_and(|(p, _)| p == Platform::Openstack)
        }
    }
}

/// Does something besides a medium's label say which platform this is, and does that
/// platform come on a medium found by label? Then it is worth waiting for the medium.
/// (Azure's is found by content, after udev has settled: `read_azure`.)
fn expects_medium(cmd: &Cmdline, dmi: &Dmi) -> bool {
    match cmd.platform {
        cmdline::PlatformChoice::Platform(p) => p.labelled_medium(),
        cmdline::PlatformChoice::Disabled => false,
        cmdline::PlatformChoice::Detect => {
            // `ds=nocloud;s=http://...` is NoCloud-net: no medium to wait for.
            let net_seed = cmd.nocloud.as_ref().is_some_and(|n| {
                n.seedfrom
                    .as_deref()
                    .is_some_and(|s| s.starts_with("http://"))
            });
            (cmd.nocloud.is_some() && !net_seed)
                || dmi.classify().is_some_and(|(p, _)| p.labelled_medium())
        }
    }
}

/// Detects the platform under `root` and reads its datasource. When something says the
/// platform comes on a medium, waits up to `media_wait` for one to appear (0: look once).
/// With no platform (or `preroot.platform=none`), the context comes from the kernel command
/// line (`ip=`, `nameserver=`). A datasource that cannot be read leaves the command line's
/// context with the platform it detected and the error recorded: the boot goes on.
///
/// A platform found without a medium (DMI says EC2 or GCE, `ds=nocloud;s=http://...`) is read
/// from its metadata service, with the network brought up for it. Everything ends within the
/// longer of `media_wait` and `net_wait`; a hinted OpenStack waits for its config drive half
/// of `media_wait`, then asks the metadata service, and when that fails before the deadline,
/// looks for the drive again until the deadline ([`late_medium`]).
pub fn gather(
    cmd: &Cmdline,
    root: &Root,
    state: &StateDir,
    media_wait: Duration,
    net_wait: Duration,
) -> Context {
    let dmi = Dmi::read(root);
    // One deadline for the whole fetch. OpenStack may come on a config drive or from its
    // metadata service: give the drive half the time, so the service still gets the rest.
    let overall = Deadline::after(media_wait.max(net_wait));
    let wait = if expects_medium(cmd, &dmi) {
        if hinted_openstack(cmd, &dmi) {
            Deadline::after(media_wait.checked_div(2).unwrap_or_default())
        } else {
            Deadline::after(media_wait)
        }
    } else {
        // Nothing says a medium is coming, yet one may be there (a NoCloud seed or a config
        // drive on a machine whose DMI names no cloud). fetch starts once the root disk is
        // there, while udev may still be loading the driver of another controller (AHCI for a
        // CD-ROM: seen in QEMU, where sr0 came a second after fetch had looked). Loading a
        // driver probes its devices before the event completes, so once udev's queue is
        // empty every coldplugged medium has its node. Wait for that (bounded), look once.
        if !crate::root::wait_udev_settled(root, Deadline::after(media_wait.min(UDEV_SETTLE_MAX))) {
            log::warn!(
                "detect: udev still busy after {UDEV_SETTLE_MAX:?}; looking for media anyway"
            );
        }
        Deadline::after(Duration::ZERO)
    };
    let mut media = detect::scan_media(root);
    while media.is_empty() && !wait.passed() {
        std::thread::sleep(MEDIA_POLL.min(wait.remaining()));
        media = detect::scan_media(root);
    }
    let (platform, result) = match detect::decide(cmd, &dmi, &media) {
        Detection::Found {
            platform,
            medium: Some(m),
            reason,
        } => {
            log::info!("detect: {platform} ({reason})");
            (platform, read_device(&m, reason, overall, root, state))
        }
        Detection::Found {
            platform,
            medium: None,
            reason,
        } if platform.serves() => {
            log::info!("detect: {platform} ({reason}), no local medium: metadata service");
            let result =
                read_service(cmd, platform, None, &[], overall, root, state).map_err(|e| {
                    DatasourceError::new(
                        format!("platform {platform}"),
                        format!(
                            "detected ({reason}) but no local medium found, and its metadata \
                             service {} could not be read: {e}",
                            metadata_service(platform)
                        ),
                    )
                });
            let result = match result {
                Err(e) if expects_medium(cmd, &dmi) && !overall.passed() => {
                    late_medium(cmd, &dmi, overall, root, state).unwrap_or(Err(e))
                }
                r => r,
            };
            (platform, result)
        }
        Detection::Found {
            platform,
            medium: None,
            reason,
        } => (
            platform,
            Err(DatasourceError::new(
                format!("platform {platform}"),
                format!(
                    "detected ({reason}) but no local medium found; {} has no metadata service",
                    metadata_service(platform)
                ),
            )),
        ),
        Detection::Disabled | Detection::Unknown => return cmdline_context(cmd, root),
    };
    result.unwrap_or_else(|e| {
        // Keep going with what the command line gives; the error says what was missed.
        let mut ctx = cmdline_context(cmd, root);
        ctx.platform = Some(platform);
        ctx.error("datasource", &e.object, e.message);
        ctx
    })
}

/// After the metadata service of a platform that may come on a medium failed before the
/// deadline (an unreachable service fails in about a second): the medium may still come, late
/// (a slow controller: under a loaded emulator the CD-ROM's node came 13 s after the fetch
/// began), so look for it again until `deadline`. `None` if none came.
fn late_medium(
    cmd: &Cmdline,
    dmi: &Dmi,
    deadline: Deadline,
    root: &Root,
    state: &StateDir,
) -> Option<Result<Context, DatasourceError>> {
    log::info!(
        "detect: the metadata service failed; looking for a medium for the {} ms left",
        deadline.remaining().as_millis()
    );
    loop {
        let media = detect::scan_media(root);
        if let Detection::Found {
            medium: Some(m),
            reason,
            ..
        } = detect::decide(cmd, dmi, &media)
        {
            log::info!("detect: {reason}, after the metadata service failed");
            return Some(read_device(&m, reason, deadline, root, state));
        }
        if deadline.passed() {
            return None;
        }
        std::thread::sleep(MEDIA_POLL.min(deadline.remaining()));
    }
}

/// Reads the datasource on a detected, labelled device, every read stopped at `deadline`.
fn read_device(
    dev: &detect::LabeledDevice,
    reason: String,
    deadline: Deadline,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    let (tree, access) = media::open_until(&dev.device, Some(deadline))?;
    let input = Input {
        tree: tree.as_ref(),
        source: Source {
            kind: dev.kind,
            medium: access,
            location: dev.name.clone(),
            partition_of: dev.partition_of.clone(),
        },
        state,
        host_nics: root.host_nics(),
    };
    let mut ctx = providers::read_medium(dev.platform, &input)?;
    ctx.extra
        .insert("detected_by".into(), serde_json::Value::String(reason));
    Ok(ctx)
}

/// The context of a machine no datasource identifies: the kernel command line alone.
fn cmdline_context(cmd: &Cmdline, root: &Root) -> Context {
    let mut ctx = Context::new(None, Source::kernel_cmdline());
    ctx.host_nics = root.host_nics();
    ctx.network = providers::kernel::network(cmd, &ctx.host_nics);
    if let Some(name) = providers::kernel::hostname(cmd) {
        providers::set_hostname(&mut ctx, &name, "ip=");
    }
    // Without ip= there is nothing to configure: the booted system's own network manager
    // decides, as it would without preroot.
    if !ctx.network.links.is_empty() {
        ctx.match_nics(false);
    }
    ctx
}

/// Where `p`'s metadata service is, for messages.
fn metadata_service(p: Platform) -> &'static str {
    match p.service() {
        crate::platform::Service::At(url) | crate::platform::Service::LinkLocal(url) => url,
        crate::platform::Service::LeaseServer => "the DHCP server of the lease",
        crate::platform::Service::FromCmdline => "the ds=nocloud;s= URL",
        crate::platform::Service::None => "the platform",
    }
}

/// Adds the command line's problems to the context as warnings.
pub fn note_cmdline_problems(ctx: &mut Context, cmd: &Cmdline) {
    for p in &cmd.problems {
        ctx.warnings.push(Problem {
            stage: "cmdline".into(),
            object: "/proc/cmdline".into(),
            message: p.clone(),
        });
    }
}

/// Runs one phase; returns the exit status. Only a context that cannot be written (or, for
/// the later phases, read) fails the unit; everything else is recorded and the boot goes on.
pub fn run(phase: crate::context::Phase, root: &Root, state: &StateDir) -> i32 {
    let started = Instant::now();
    let started_ms = uptime_ms(root);
    let cmd = read_cmdline(root);
    for p in &cmd.problems {
        log::warn!("cmdline: {p}");
    }
    let mut ctx = match phase {
        crate::context::Phase::Fetch => fetch(&cmd, root, state),
        crate::context::Phase::Grow | crate::context::Phase::Sysroot => {
            match crate::state::load_context(state) {
                Ok(ctx) => ctx,
                Err(e) => {
                    log::error!("{phase:?}: {e}; run the fetch phase first");
                    return 1;
                }
            }
        }
    };
    let errors_before = ctx.errors.len();
    let mut outcome = match phase {
        crate::context::Phase::Fetch => {
            crate::handoff::write(&mut ctx, root.base());
            "ok".to_string()
        }
        crate::context::Phase::Grow => crate::disk::phase_grow(&cmd, root, &mut ctx),
        crate::context::Phase::Sysroot => {
            let grown = crate::disk::phase_sysroot(&cmd, root, &mut ctx);
            let configured = sysroot(&mut ctx, &cmd, root);
            format!("{grown}; {configured}")
        }
    };
    // A phase's first error is its outcome (fetch: including the datasource's).
    let first_new = if phase == crate::context::Phase::Fetch {
        0
    } else {
        errors_before
    };
    if let Some(e) = ctx.errors.get(first_new) {
        outcome = format!("{}: {}", e.object, e.message);
    }
    let record = crate::context::PhaseRecord {
        phase,
        started_ms,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        peak_rss_kib: peak_rss_kib(),
        outcome,
    };
    log::info!(
        "phase {:?}: {} ms, peak RSS {} KiB, {}",
        record.phase,
        record.duration_ms,
        record.peak_rss_kib.unwrap_or(0),
        record.outcome
    );
    ctx.phases.push(record);
    match crate::state::save_context(&ctx, state) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// The `sysroot` phase: configures the root the system will boot (see `sysroot.rs`).
fn sysroot(ctx: &mut Context, cmd: &Cmdline, root: &Root) -> String {
    let directives = user_directives(ctx);
    let ostree_booted = root.join("run/ostree-booted").exists();
    match crate::sysroot::target(cmd, &root.join("sysroot"), ostree_booted) {
        Ok(target) => {
            let labels = cmd.selinux != Some(false);
            if !labels {
                ctx.warn(
                    "selinux",
                    "preroot.selinux=0",
                    "SELinux labels turned off: files are written unlabelled",
                );
            }
            // One root for both writers: the policy is read once.
            let root = match crate::sysroot::open_root(ctx, &target, labels) {
                Ok(root) => root,
                Err(e) => return e,
            };
            let summary = crate::sysroot::configure(ctx, cmd, &directives, &root);
            let handoff = crate::cloudinit::sysroot(ctx, &root, cmd.handoff.as_deref());
            crate::sysroot::record_label_problems(ctx, &root);
            match handoff {
                Some(handoff) => format!("{summary}; {handoff}"),
                None => summary,
            }
        }
        Err(e) => {
            ctx.error("sysroot", "ostree=", e.clone());
            e
        }
    }
}

/// The cloud-config directives in the stored user data; unreadable or broken user data
/// gives none (and a warning: the userspace stage reports it in full).
pub fn user_directives(ctx: &mut Context) -> crate::cloudconfig::Directives {
    let Some(file) = &ctx.user_data else {
        return crate::cloudconfig::Directives::default();
    };
    let path = file.path.clone();
    match crate::state::read_secret(&path).and_then(|data| crate::cloudconfig::directives(&data)) {
        Ok(d) => d,
        Err(e) => {
            ctx.warn("cloud-config", &path, e);
            crate::cloudconfig::Directives::default()
        }
    }
}

/// The kernel command line under `root` (an unreadable one is an empty one).
pub fn read_cmdline(root: &Root) -> Cmdline {
    // The parser cuts what is past MAX_CMDLINE_BYTES; a larger file is not one.
    let text = crate::output::read_file(&root.cmdline(), 1 << 20)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    cmdline::parse(&text)
}

fn fetch(cmd: &Cmdline, root: &Root, state: &StateDir) -> Context {
    // When something says the platform comes on a medium (`preroot.platform=`, `ds=nocloud`,
    // DMI naming OpenStack, NoCloud or OpenNebula), the medium may still be on its way (udev
    // creating nodes; under emulation that takes seconds), so wait for it up to the whole
    // deadline. Otherwise `gather` looks once: a machine with no datasource pays no wait.
    let timeout = cmd.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut ctx = gather(cmd, root, state, timeout, timeout);
    note_cmdline_problems(&mut ctx, cmd);
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_only_when_a_medium_is_expected() {
        let nova = Dmi {
            product_name: "OpenStack Nova".into(),
            ..Dmi::default()
        };
        let ec2 = Dmi {
            sys_vendor: "Amazon EC2".into(),
            ..Dmi::default()
        };
        let c = cmdline::parse;
        assert!(expects_medium(&c(""), &nova));
        assert!(!expects_medium(&c(""), &ec2));
        assert!(!expects_medium(&c(""), &Dmi::default()));
        assert!(expects_medium(&c("ds=nocloud"), &Dmi::default()));
        assert!(!expects_medium(
            &c("ds=nocloud;s=http://10.0.0.1/"),
            &Dmi::default()
        ));
        assert!(expects_medium(&c("preroot.platform=opennebula"), &ec2));
        assert!(!expects_medium(&c("preroot.platform=none"), &nova));
        let azure = Dmi {
            chassis_asset_tag: "7783-7084-3265-9085-8269-3286-77".into(),
            ..Dmi::default()
        };
        assert!(!expects_medium(&c(""), &azure), "azure: found by content");
        assert!(!expects_medium(
            &c("preroot.platform=azure"),
            &Dmi::default()
        ));
    }

    #[test]
    fn rss_is_read() {
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }
}
