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
use crate::context::{Context, Medium, Platform, Problem, Source, SourceKind};
use crate::detect::{self, Detection, Dmi};
use crate::media;
use crate::providers::{self, DatasourceError, Input};
use crate::root::Root;
use crate::state::StateDir;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::{Duration, Instant};

/// `fetch`'s deadline when `preroot.timeout=` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the block devices are scanned again while waiting.
const MEDIA_POLL: Duration = Duration::from_millis(100);

/// Present while udevd has events queued or running; systemd's `udev_queue_is_empty()` and
/// `udevadm settle` test the same file (systemd >= 247).
const UDEV_QUEUE: &str = "run/udev/queue";

/// With no hint of a medium, the longest wait for udev's coldplug to drain (within the
/// deadline): a stuck event must not cost every machine without a datasource its whole
/// `preroot.timeout=`.
const UDEV_SETTLE_MAX: Duration = Duration::from_secs(10);

/// A point in time every blocking step must finish by.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        let now = Instant::now();
        Deadline(now.checked_add(d).unwrap_or(now))
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }
}

/// The phases of a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Fetch,
    Grow,
    Sysroot,
}

impl Phase {
    pub fn from_name(name: &str) -> Option<Phase> {
        match name {
            "fetch" => Some(Phase::Fetch),
            "grow" => Some(Phase::Grow),
            "sysroot" => Some(Phase::Sysroot),
            _ => None,
        }
    }
}

/// What one phase did, as recorded in the context's `phases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    /// Milliseconds since the kernel started (`/proc/uptime`) when the phase began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    pub duration_ms: u64,
    /// Peak resident set size of the process (`VmHWM`), KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
    /// `ok`, or one line on what went wrong (also in `errors`).
    pub outcome: String,
}

/// Milliseconds since boot from `<root>/proc/uptime`.
fn uptime_ms(root: &Root) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/uptime")).ok()?;
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

/// Reads one datasource from `--from KIND:PATH`: a directory, an image file or a device.
pub fn read_from(
    kind: SourceKind,
    path: &Path,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    let (tree, medium) = media::open(path)?;
    let input = Input {
        tree: tree.as_ref(),
        source: Source {
            kind,
            medium,
            location: path.display().to_string(),
            partition_of: None,
        },
        state,
        host_nics: root.host_nics(),
    };
    providers::read_local(kind, &input)
}

/// Reads `platform`'s metadata service (`url`, else its default; NoCloud: the command line's
/// `ds=nocloud;s=URL`) before `deadline`, bringing up the network first when the service's
/// address has no route (DHCPv4 raced on the candidate NICs, `net/`). The links are put back
/// afterwards unless `rd.neednet=1` or an `ip=` asks for the network (as dracut keeps it).
/// With a fake `root` and the platform's default address, the machine's own network is never
/// probed: the NICs come from the fake sysfs.
pub fn read_service(
    cmd: &Cmdline,
    platform: Platform,
    url: Option<&str>,
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
    let url = url.or(providers::service::default_url(platform));
    let Some(url) = url else {
        return providers::service::fetch(platform, None, deadline, state, root.host_nics());
    };
    let target = crate::http::Url::parse(url)
        .map_err(|e| DatasourceError::new("metadata URL", e))?
        .addr;
    let real_root = root.base() == Path::new("/");
    let mut up = None;
    if cmd.network == Some(false) {
        log::info!("net: preroot.network=0: not bringing up the network");
    } else if (!real_root && !explicit) || crate::net::needs_network(target) {
        let opts = crate::net::Options {
            target: Some(target),
            ..crate::net::Options::default()
        };
        let started = Instant::now();
        match crate::net::bring_up(root, cmd, &opts, deadline) {
            Ok(u) => up = Some((u, started)),
            Err(e) => {
                return Err(DatasourceError::new(
                    format!("{url} (network)"),
                    e.to_string(),
                ))
            }
        }
    }
    let fetch_started = Instant::now();
    let mut ctx = providers::service::fetch(platform, Some(url), deadline, state, root.host_nics());
    if let (Ok(ctx), Some((up, started))) = (&mut ctx, &up) {
        let mut report = serde_json::to_value(&up.lease).unwrap_or_default();
        if let Some(obj) = report.as_object_mut() {
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            obj.insert("metadata_ms".into(), ms(fetch_started.elapsed()).into());
            obj.insert("total_ms".into(), ms(started.elapsed()).into());
        }
        ctx.extra.insert("dhcp".into(), report);
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
/// platform come on a medium? Then it is worth waiting for the medium.
fn expects_medium(cmd: &Cmdline, dmi: &Dmi) -> bool {
    let on_media = |p: Platform| {
        matches!(
            p,
            Platform::Openstack | Platform::Nocloud | Platform::Opennebula
        )
    };
    match cmd.platform {
        cmdline::PlatformChoice::Platform(p) => on_media(p),
        cmdline::PlatformChoice::Disabled => false,
        cmdline::PlatformChoice::Detect => {
            // `ds=nocloud;s=http://...` is NoCloud-net: no medium to wait for.
            let net_seed = cmd.nocloud.as_ref().is_some_and(|n| {
                n.seedfrom
                    .as_deref()
                    .is_some_and(|s| s.starts_with("http://"))
            });
            (cmd.nocloud.is_some() && !net_seed) || dmi.classify().is_some_and(|(p, _)| on_media(p))
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
/// of `media_wait`, then asks the metadata service.
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
            Deadline::after(media_wait / 2)
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
        if !wait_udev_settled(root, Deadline::after(media_wait.min(UDEV_SETTLE_MAX))) {
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
            (platform, read_medium(&m, reason, root, state))
        }
        Detection::Found {
            platform,
            medium: None,
            reason,
        } if providers::service::serves(platform) => {
            log::info!("detect: {platform} ({reason}), no local medium: metadata service");
            let result = read_service(cmd, platform, None, overall, root, state).map_err(|e| {
                DatasourceError::new(
                    format!("platform {platform}"),
                    format!(
                        "detected ({reason}) but no local medium found, and its metadata \
                             service {} could not be read: {e}",
                        metadata_service(platform)
                    ),
                )
            });
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

/// Waits until udev's event queue is empty (`<root>/run/udev/queue` absent) or `deadline`
/// passes; true when it is empty. Without udev (no `run/udev`), there is nothing to wait for.
pub fn wait_udev_settled(root: &Root, deadline: Deadline) -> bool {
    let queue = root.join(UDEV_QUEUE);
    while queue.exists() {
        if deadline.passed() {
            return false;
        }
        std::thread::sleep(MEDIA_POLL.min(deadline.remaining()));
    }
    true
}

/// Reads the datasource on a detected medium.
fn read_medium(
    m: &detect::Medium,
    reason: String,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    let (tree, kind) = media::open(&m.device)?;
    let input = Input {
        tree: tree.as_ref(),
        source: Source {
            kind: m.kind,
            medium: kind,
            location: m.name.clone(),
            partition_of: m.partition_of.clone(),
        },
        state,
        host_nics: root.host_nics(),
    };
    let mut ctx = providers::read_local(m.kind, &input)?;
    ctx.extra
        .insert("detected_by".into(), serde_json::Value::String(reason));
    Ok(ctx)
}

/// The context of a machine no datasource identifies: the kernel command line alone.
fn cmdline_context(cmd: &Cmdline, root: &Root) -> Context {
    let mut ctx = Context::new(
        None,
        Source {
            kind: SourceKind::KernelCmdline,
            medium: Medium::Cmdline,
            location: "/proc/cmdline".into(),
            partition_of: None,
        },
    );
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

fn metadata_service(p: Platform) -> &'static str {
    match p {
        Platform::Openstack | Platform::Ec2 => "http://169.254.169.254/",
        Platform::Gce => "http://metadata.google.internal/",
        Platform::Nocloud => "the ds=nocloud;s= URL",
        Platform::Opennebula => "the OpenNebula context",
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
pub fn run(phase: Phase, root: &Root, state: &StateDir) -> i32 {
    let started = Instant::now();
    let started_ms = uptime_ms(root);
    let cmd = read_cmdline(root);
    for p in &cmd.problems {
        log::warn!("cmdline: {p}");
    }
    let mut ctx = match phase {
        Phase::Fetch => fetch(&cmd, root, state),
        Phase::Grow | Phase::Sysroot => match load(state) {
            Ok(ctx) => ctx,
            Err(e) => {
                log::error!("{phase:?}: {e}; run the fetch phase first");
                return 1;
            }
        },
    };
    let errors_before = ctx.errors.len();
    let mut outcome = match phase {
        Phase::Fetch => {
            crate::handoff::write(&mut ctx, root.base());
            "ok".to_string()
        }
        Phase::Grow => crate::disk::phase_grow(&cmd, root, &mut ctx),
        Phase::Sysroot => {
            let grown = crate::disk::phase_sysroot(&cmd, root, &mut ctx);
            let configured = sysroot(&mut ctx, &cmd, root);
            format!("{grown}; {configured}")
        }
    };
    // A phase's first error is its outcome (fetch: including the datasource's).
    let first_new = if phase == Phase::Fetch {
        0
    } else {
        errors_before
    };
    if let Some(e) = ctx.errors.get(first_new) {
        outcome = format!("{}: {}", e.object, e.message);
    }
    let record = PhaseRecord {
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
    match save(&ctx, state) {
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
            let summary = crate::sysroot::configure(ctx, cmd, &directives, &target);
            let text = std::fs::read(root.cmdline())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            match crate::apply::handoff_sysroot(ctx, &target, &text) {
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
    match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|data| crate::cloudconfig::directives(&data))
    {
        Ok(d) => d,
        Err(e) => {
            ctx.warn("cloud-config", &path, e);
            crate::cloudconfig::Directives::default()
        }
    }
}

/// The kernel command line under `root` (an unreadable one is an empty one).
pub fn read_cmdline(root: &Root) -> Cmdline {
    let text = std::fs::read(root.cmdline())
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

/// Reads `context.json` from the state directory.
pub fn load(state: &StateDir) -> Result<Context, String> {
    let path = state.path().join("context.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn save(ctx: &Context, state: &StateDir) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(ctx).map_err(|e| format!("context: {e}"))?;
    state
        .store_context(&json)
        .map(|_| ())
        .map_err(|e| format!("{}/context.json: {e}", state.path().display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.passed());
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.passed());
        assert!(d.remaining() <= Duration::from_secs(60));
        // Far-future deadlines saturate instead of overflowing.
        let _ = Deadline::after(Duration::MAX);
    }

    #[test]
    fn phases() {
        for (name, want) in [
            ("fetch", Some(Phase::Fetch)),
            ("grow", Some(Phase::Grow)),
            ("sysroot", Some(Phase::Sysroot)),
            ("Fetch", None),
            ("", None),
        ] {
            assert_eq!(Phase::from_name(name), want, "case {name:?}");
        }
    }

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
    }

    #[test]
    fn waits_for_udev_queue_to_drain() {
        let dir = std::env::temp_dir().join(format!("preroot-udevq-{}", std::process::id()));
        let root = Root::new(&dir);
        let queue = root.join(UDEV_QUEUE);
        std::fs::create_dir_all(queue.parent().unwrap()).unwrap();
        // No queue: no wait.
        assert!(wait_udev_settled(&root, Deadline::after(Duration::ZERO)));
        // A queue that never drains: false once the deadline passes.
        std::fs::write(&queue, b"").unwrap();
        let t = Instant::now();
        assert!(!wait_udev_settled(
            &root,
            Deadline::after(Duration::from_millis(250))
        ));
        assert!(t.elapsed() >= Duration::from_millis(250));
        // A queue that drains meanwhile: true, before the deadline.
        let q = queue.clone();
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::remove_file(q).unwrap();
        });
        let t = Instant::now();
        assert!(wait_udev_settled(
            &root,
            Deadline::after(Duration::from_secs(30))
        ));
        assert!(t.elapsed() < Duration::from_secs(5));
        drain.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rss_is_read() {
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }
}
