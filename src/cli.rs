//! The command line of the `preroot` binary: argument parsing, `--help`, and the commands.
//!
//! Owns exit codes (0 done, 1 the data was bad or missing, 2 usage) and the one-line error
//! format `preroot: <object>: <problem>`; `status` adds 3 (not finished). Never panics on any
//! argument.

use crate::context::{Context, SourceKind};
use crate::root::Root;
use crate::run::{self, Phase};
use crate::state::{StateDir, DEFAULT_STATE_DIR};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

pub const USAGE: &str = "\
preroot - configure this instance from the initramfs, before the root filesystem is mounted

Usage: preroot [-v] <command> [options]

Commands:
  context      Find out which cloud started this machine, read its data and print the
               normalized context as JSON on stdout (docs/context.md).
  run --phase PHASE
               One phase of the boot, run by the initramfs (a systemd unit or dracut hook
               each): fetch (detect and read the datasource: its medium, or its
               metadata service with the network brought up and put back; write
               STATE/context.json), grow (root disk; before sysroot.mount), sysroot
               (filesystem, network files, hand-off; after sysroot.mount). Problems are
               recorded in the context and the boot goes on.
  show         What preroot did at this boot, from STATE/context.json.
  render --context FILE --format FORMAT --out DIR
               Write the network configuration a context describes as a plain tree
               under DIR (DIR/etc/systemd/network/..., for inspection). FORMAT:
               networkd, nm, ifcfg or eni. NICs with a MAC are tied to it, since the
               booted system renames them: nm matches the MAC, the others also write a
               10-preroot-NAME.link that keeps the name (docs/sysroot.md).
  render --context FILE [--format FORMAT] --root DIR
               Configure the system root DIR as the boot's sysroot phase does: network
               files (FORMAT, else chosen from what DIR enables), /etc/hostname, one
               marked /etc/hosts line, DIR/etc/preroot/{instance-id,manifest.json};
               once per instance, no symlink followed (docs/sysroot.md).
  grow [--dry-run] [--json] [ROOTSPEC]
               Grow the root partition (GPT or MBR) to fill the disk, its LVM PV and
               LV, and the filesystem if it is mounted (ext4, xfs); print what was done.
               ROOTSPEC is a root= value (/dev/..., UUID=, LABEL=, PARTUUID=,
               PARTLABEL=) and defaults to the kernel command line's root=.
               --dry-run prints the plan and writes nothing. JSON shape: docs/grow.md.
  net [--iface NAME]... [--json] [--timeout S]
               Bring up the network as the fetch phase does (DHCPv4 raced on every
               Ethernet NIC, or those named by --iface or ip=), keep the first lease
               configured and print it.
  apply [--root DIR]
               In the booted system (preroot-apply.service): apply the context and the
               user data the initramfs left in STATE, once per instance id (state in
               DIR/var/lib/preroot/instances/ID/): ssh host keys regenerated, the default
               user (DIR/etc/preroot/preroot.conf) and cloud-config users, ssh keys,
               passwords (SHA-512 crypt), hostname, write_files, Heat's cfn-userdata,
               scripts and runcmd (log: /var/log/preroot-user-data.log); bootcmd and
               boothooks at every boot. With --root every program runs chrooted into DIR.
               Keys outside the supported cloud-config subset are reported by name
               (docs/apply.md). An image that keeps cloud-init gets a NoCloud seed and
               a drop-in instead (preroot.handoff=, or detected). Writes STATE/apply.json.
  status [--wait [--timeout S]] [--json]
               Has apply finished at this boot, and what failed (STATE/apply.json).
               --wait polls until it is done or S seconds [600] have passed.
  clean [--dry-run] [--ssh-host-keys] [--homes] [--root DIR]
               Re-arm a system root for imaging: preroot's instance state, the files its
               manifest lists, /etc/machine-id emptied, Heat and cloud-init hand-off
               files, logs under /var/log truncated in place; ssh host keys and the
               homes' authorized_keys/.bash_history only with their flag.
  help         Print this text.

Options:
  --from KIND:PATH  (context) Read this datasource instead of detecting one. KIND is
                    configdrive (OpenStack config drive), nocloud (NoCloud seed) or
                    opennebula (OpenNebula context). PATH is a directory, an ISO9660 or
                    FAT image file, or a block device; nothing is mounted.
  --platform P      (context) Read platform P's metadata service instead of detecting:
                    ec2 (IMDSv2), openstack, gce or nocloud (NoCloud-net: the
                    ds=nocloud;s=URL of the kernel command line, or --metadata-url).
                    Brings up the network first (DHCPv4 on all NICs, raced) when the
                    service's address has no route.
  --metadata-url URL
                    (context) The service's base URL instead of the platform's
                    (http://169.254.169.254/, http://metadata.google.internal/).
  --timeout S       (context, net) Deadline in seconds for network and fetch [default:
                    preroot.timeout=, else 20]. (status) How long --wait waits [600].
  --root DIR        (render, apply, clean) The system root to configure [/ for apply
                    and clean]. (context, run) Take
                    /proc, /sys, /dev and /sysroot from DIR (a fake machine
                    tree): the kernel command line (DIR/proc/cmdline), the host NICs
                    (DIR/sys/class/net/*/address), DMI (DIR/sys/class/dmi/id/*) and the
                    block devices (DIR/sys/class/block/*, read at DIR/dev/NAME).
                    With --from it supplies the host NICs only.
  --state-dir DIR   Where context.json and the secrets (user data, vendor data,
                    passwords, injected files; mode 0600) are [default: /run/preroot].
  --phase PHASE     (run) fetch, grow or sysroot.
  --json            (show) Print context.json as it is; (grow) print the report as JSON;
                    (net) print the lease as JSON.
  --iface NAME      (net) Run DHCP on NAME only; repeatable.
  --context FILE    (render) The context to render (from `preroot context`).
  --format FORMAT   (render) networkd, nm (NetworkManager), ifcfg (RHEL), eni (ifupdown).
  --out DIR         (render) Where to write the plain tree.
  --dry-run         (grow) Plan only; write nothing.
  --wait            (status) Wait until apply is done.
  --dry-run         (clean) Print what would be done; change nothing.
  --ssh-host-keys   (clean) Also remove /etc/ssh/ssh_host_*.
  --homes           (clean) Also remove ~/.ssh/authorized_keys and ~/.bash_history of
                    root and every /home/*.
  -v, --verbose     Log to stderr (otherwise: /dev/kmsg in the initramfs, else nothing).
  -V, --version     Print the version.
  -h, --help        Print this text.

Kernel command line (read by context and run): preroot.platform=, preroot.timeout=
(seconds; bounds fetch, default 20), preroot.grow=, preroot.grow.lv=, preroot.network=,
preroot.render=, preroot.debug, ds=nocloud;s=URL, ip=, ifname=, nameserver=, rd.neednet=,
root=, ostree=. The network brought up for a metadata service is put back afterwards unless
rd.neednet=1 or an ip= asks for it; preroot.network=0 never brings it up.

Exit status: 0 done; 1 the datasource is missing, unreadable or invalid, its metadata
service did not answer in time, or no NIC got a usable lease (context, net: one line on
stderr names the file, URL or NICs and the problem), the state could not be written (run), a
step failed (apply, clean) or apply finished with errors (status); 2 bad usage; 3 (status)
apply has not finished.
";

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    from: Option<(SourceKind, PathBuf)>,
    root: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    phase: Option<Phase>,
    json: bool,
    context: Option<PathBuf>,
    format: Option<String>,
    out: Option<PathBuf>,
    dry_run: bool,
    spec: Option<String>,
    platform: Option<crate::context::Platform>,
    metadata_url: Option<String>,
    timeout: Option<std::time::Duration>,
    ifaces: Vec<String>,
    wait: bool,
    ssh_host_keys: bool,
    homes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Help,
    Version,
    Context,
    Run,
    Show,
    Render,
    Grow,
    Net,
    Apply,
    Status,
    Clean,
}

fn parse_from(value: &str) -> Result<(SourceKind, PathBuf), String> {
    let (kind, path) = value
        .split_once(':')
        .ok_or_else(|| format!("--from {value}: expected KIND:PATH"))?;
    let kind = match kind {
        "configdrive" | "config-drive" | "openstack" => SourceKind::ConfigDrive,
        "nocloud" => SourceKind::NocloudSeed,
        "opennebula" => SourceKind::OpennebulaContext,
        other => {
            return Err(format!(
                "--from: unknown kind {other:?} (configdrive, nocloud, opennebula)"
            ))
        }
    };
    if path.is_empty() {
        return Err("--from: empty PATH".into());
    }
    Ok((kind, PathBuf::from(path)))
}

/// Parses arguments (without argv[0]): the command, its options, and whether `-v` was given.
fn parse_args(args: &[OsString]) -> Result<(Command, Options, bool), String> {
    let mut verbose = false;
    let mut command = None;
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format!("argument {arg:?} is not UTF-8"))?;
        let mut value = |name: &str| -> Result<String, String> {
            it.next()
                .and_then(|v| v.to_str())
                .map(str::to_string)
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg {
            "-v" | "--verbose" => verbose = true,
            "-h" | "--help" | "help" => return Ok((Command::Help, opts, verbose)),
            "-V" | "--version" => return Ok((Command::Version, opts, verbose)),
            "context" | "run" | "show" | "render" | "grow" | "net" | "apply" | "status"
            | "clean"
                if command.is_none() =>
            {
                command = Some(match arg {
                    "context" => Command::Context,
                    "net" => Command::Net,
                    "run" => Command::Run,
                    "render" => Command::Render,
                    "grow" => Command::Grow,
                    "apply" => Command::Apply,
                    "status" => Command::Status,
                    "clean" => Command::Clean,
                    _ => Command::Show,
                })
            }
            "--wait" => opts.wait = true,
            "--ssh-host-keys" => opts.ssh_host_keys = true,
            "--homes" => opts.homes = true,
            "--context" => opts.context = Some(PathBuf::from(value("--context")?)),
            "--format" => {
                let v = value("--format")?;
                if crate::render::by_name(&v).is_none() {
                    return Err(format!("--format {v}: expected networkd, nm, ifcfg or eni"));
                }
                opts.format = Some(v);
            }
            "--out" => opts.out = Some(PathBuf::from(value("--out")?)),
            "--from" => opts.from = Some(parse_from(&value("--from")?)?),
            "--root" => opts.root = Some(PathBuf::from(value("--root")?)),
            "--state-dir" => opts.state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--phase" => {
                let v = value("--phase")?;
                opts.phase = Some(
                    Phase::from_name(&v)
                        .ok_or_else(|| format!("--phase {v}: expected fetch, grow or sysroot"))?,
                );
            }
            "--json" => opts.json = true,
            "--dry-run" => opts.dry_run = true,
            "--platform" => {
                let v = value("--platform")?;
                opts.platform = Some(
                    crate::context::Platform::from_name(&v)
                        .filter(|p| crate::providers::service::serves(*p))
                        .ok_or_else(|| {
                            format!("--platform {v}: expected ec2, openstack, gce or nocloud")
                        })?,
                );
            }
            "--iface" => opts.ifaces.push(value("--iface")?),
            "--metadata-url" => {
                let v = value("--metadata-url")?;
                crate::http::Url::parse(&v).map_err(|e| format!("--metadata-url {e}"))?;
                opts.metadata_url = Some(v);
            }
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
                    .ok_or_else(|| format!("--timeout {v}: expected seconds (0 to 3600)"))?;
                opts.timeout = Some(std::time::Duration::from_secs_f64(secs));
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other if command == Some(Command::Grow) && opts.spec.is_none() => {
                opts.spec = Some(other.to_string())
            }
            other => return Err(format!("unknown command {other:?}")),
        }
    }
    let command = match command {
        Some(c) => c,
        None if opts == Options::default() => Command::Help,
        None => return Err("options given without a command".into()),
    };
    // Each option belongs to some commands only; say so rather than ignore it.
    let render_opts = opts.context.is_some() || opts.format.is_some() || opts.out.is_some();
    let grow_opts = opts.spec.is_some();
    let net_opts =
        opts.platform.is_some() || opts.metadata_url.is_some() || !opts.ifaces.is_empty();
    let boot_opts = opts.from.is_some() || opts.phase.is_some() || render_opts;
    let misplaced = (grow_opts && command != Command::Grow)
        || (opts.wait && command != Command::Status)
        || ((opts.ssh_host_keys || opts.homes) && command != Command::Clean)
        || (opts.dry_run && !matches!(command, Command::Grow | Command::Clean))
        || (opts.timeout.is_some()
            && !matches!(command, Command::Context | Command::Net | Command::Status))
        || match command {
            Command::Grow => boot_opts || net_opts,
            Command::Net => {
                opts.from.is_some()
                    || opts.phase.is_some()
                    || render_opts
                    || opts.platform.is_some()
                    || opts.metadata_url.is_some()
            }
            Command::Context => {
                !opts.ifaces.is_empty()
                    || opts.phase.is_some()
                    || opts.json
                    || render_opts
                    || (opts.from.is_some() && opts.platform.is_some())
                    || (opts.metadata_url.is_some() && opts.platform.is_none())
            }
            Command::Run => {
                !opts.ifaces.is_empty()
                    || opts.from.is_some()
                    || opts.json
                    || render_opts
                    || opts.platform.is_some()
                    || opts.metadata_url.is_some()
            }
            Command::Show => boot_opts || opts.root.is_some() || net_opts,
            Command::Render => opts.from.is_some() || opts.phase.is_some() || opts.json || net_opts,
            Command::Apply | Command::Clean => boot_opts || opts.json || net_opts,
            Command::Status => boot_opts || opts.root.is_some() || net_opts,
            Command::Help | Command::Version => false,
        };
    if misplaced {
        return Err(format!("an option does not apply to {command:?}").to_lowercase());
    }
    if command == Command::Run && opts.phase.is_none() {
        return Err("run needs --phase fetch|grow|sysroot".into());
    }
    if command == Command::Render {
        let plain = opts.out.is_some() && opts.format.is_some() && opts.root.is_none();
        let into_root = opts.root.is_some() && opts.out.is_none();
        if opts.context.is_none() || !(plain || into_root) {
            return Err(
                "render needs --context FILE and either --format FORMAT --out DIR or --root DIR"
                    .into(),
            );
        }
    }
    Ok((command, opts, verbose))
}

/// Runs the program; returns the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let (command, opts, verbose) = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("preroot: {e}\nTry 'preroot --help'.");
            return 2;
        }
    };
    let root = opts.root.clone().map(Root::new).unwrap_or_default();
    let state = StateDir::new(
        opts.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
    );
    match command {
        Command::Help => {
            print!("{USAGE}");
            0
        }
        Command::Version => {
            println!("preroot {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Context => context(opts, &root, &state, verbose),
        Command::Run => {
            let cmd = run::read_cmdline(&root);
            crate::logger::init(verbose, cmd.debug);
            match opts.phase {
                Some(phase) => run::run(phase, &root, &state),
                None => 2,
            }
        }
        Command::Show => show(&state, opts.json),
        Command::Render => render(&opts, verbose),
        Command::Grow => grow(&opts, &root, verbose),
        Command::Net => net(&opts, &root, verbose),
        Command::Apply => {
            crate::logger::init(verbose, false);
            crate::apply::apply(&state, opts.root.as_deref())
        }
        Command::Status => status(&state, opts.wait, opts.timeout, opts.json),
        Command::Clean => {
            crate::logger::init(verbose, false);
            let what = crate::clean::What {
                ssh_host_keys: opts.ssh_host_keys,
                homes: opts.homes,
                dry_run: opts.dry_run,
            };
            crate::clean::clean(opts.root.as_deref(), &what)
        }
    }
}

/// `preroot net`: DHCPv4 raced on the candidate NICs; the first lease is applied, kept, and
/// printed.
fn net(opts: &Options, root: &Root, verbose: bool) -> i32 {
    let cmd = run::read_cmdline(root);
    crate::logger::init(verbose, cmd.debug);
    let timeout = opts.timeout.or(cmd.timeout).unwrap_or(run::DEFAULT_TIMEOUT);
    let net_opts = crate::net::Options {
        ifaces: opts.ifaces.clone(),
        ..crate::net::Options::default()
    };
    match crate::net::bring_up(root, &cmd, &net_opts, run::Deadline::after(timeout)) {
        Ok(up) => {
            let text = if opts.json {
                serde_json::to_string_pretty(&up.lease).unwrap_or_default()
            } else {
                let l = &up.lease;
                let mut t = format!(
                    "{} ({}): {} from {} after {} ms",
                    l.iface, l.mac, l.address, l.server, l.lease_ms
                );
                for r in &l.routes {
                    t.push_str(&format!("\n  route {r}"));
                }
                if !l.dns.is_empty() {
                    let dns: Vec<String> = l.dns.iter().map(ToString::to_string).collect();
                    t.push_str(&format!("\n  dns {}", dns.join(" ")));
                }
                t
            };
            up.keep();
            print_out(&text)
        }
        Err(e) => {
            eprintln!("preroot: net: {e}");
            1
        }
    }
}

/// `preroot grow [--dry-run] [--json] [ROOTSPEC]`.
fn grow(opts: &Options, root: &Root, verbose: bool) -> i32 {
    let cmd = run::read_cmdline(root);
    crate::logger::init(verbose, cmd.debug);
    let Some(spec) = opts.spec.clone().or_else(|| cmd.root.clone()) else {
        eprintln!("preroot: grow: no ROOTSPEC given and no root= on the kernel command line");
        return 1;
    };
    let dopts = crate::disk::Options {
        dry_run: opts.dry_run,
        lv: cmd.grow_lv.unwrap_or(true),
        deadline: run::Deadline::after(std::time::Duration::from_secs(60)),
    };
    let report = match crate::disk::grow_all(root, &spec, &dopts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    if opts.json {
        return match serde_json::to_string_pretty(&report) {
            Ok(j) => print_out(&j),
            Err(e) => {
                eprintln!("preroot: grow: {e}");
                1
            }
        };
    }
    print_out(&crate::disk::summary(&report))
}

/// `preroot render`: a context file to a plain tree of network files (`--out`), or into a
/// system root with the boot's rules (`--root`: manifest, once per instance, no symlinks).
fn render(opts: &Options, verbose: bool) -> i32 {
    let Some(path) = &opts.context else {
        return 2;
    };
    let mut ctx: Context = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("preroot: {}: {e}", path.display());
            return 1;
        }
    };
    if let Some(target) = &opts.root {
        crate::logger::init(verbose, false);
        let cmd = crate::cmdline::parse(
            &opts
                .format
                .as_ref()
                .map(|f| format!("preroot.render={f}"))
                .unwrap_or_default(),
        );
        let directives = run::user_directives(&mut ctx);
        let summary = crate::sysroot::configure(&mut ctx, &cmd, &directives, target);
        return match ctx.errors.first() {
            Some(e) => {
                eprintln!("preroot: {}: {}", e.object, e.message);
                1
            }
            None => {
                println!("{summary}");
                0
            }
        };
    }
    let (Some(format), Some(out)) = (&opts.format, &opts.out) else {
        return 2;
    };
    let Some(renderer) = crate::render::by_name(format) else {
        return 2;
    };
    let files = match renderer.render(&ctx) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("preroot: render {format}: {e}");
            return 1;
        }
    };
    if let Err(e) = crate::render::write_tree(&files, out) {
        eprintln!("preroot: {}: {e}", out.display());
        return 1;
    }
    for f in &files {
        println!("{}", f.path);
    }
    0
}

fn context(opts: Options, root: &Root, state: &StateDir, verbose: bool) -> i32 {
    let cmd = run::read_cmdline(root);
    crate::logger::init(verbose, cmd.debug);
    for p in &cmd.problems {
        log::warn!("cmdline: {p}");
    }
    let result = match (opts.from, opts.platform) {
        (Some((kind, path)), _) => run::read_from(kind, &path, root, state),
        (None, Some(platform)) => {
            let timeout = opts.timeout.or(cmd.timeout).unwrap_or(run::DEFAULT_TIMEOUT);
            run::read_service(
                &cmd,
                platform,
                opts.metadata_url.as_deref(),
                run::Deadline::after(timeout),
                root,
                state,
            )
        }
        (None, None) => Ok(run::gather(
            &cmd,
            root,
            state,
            std::time::Duration::ZERO,
            opts.timeout.or(cmd.timeout).unwrap_or(run::DEFAULT_TIMEOUT),
        )),
    };
    let mut ctx = match result {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    run::note_cmdline_problems(&mut ctx, &cmd);
    if let Some(first) = ctx.errors.first() {
        let more = match ctx.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n.saturating_sub(1)),
        };
        eprintln!("preroot: {}: {}{more}", first.object, first.message);
        return 1;
    }
    match serde_json::to_string_pretty(&ctx) {
        Ok(json) => print_out(&json),
        Err(e) => {
            eprintln!("preroot: cannot serialize the context: {e}");
            1
        }
    }
}

fn print_out(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// `preroot show [--json]`: what happened at this boot.
fn show(state: &StateDir, json: bool) -> i32 {
    if json {
        let path = state.path().join("context.json");
        return match std::fs::read_to_string(&path) {
            Ok(text) => print_out(text.trim_end()),
            Err(e) => {
                eprintln!("preroot: {}: {e}", path.display());
                1
            }
        };
    }
    match run::load(state) {
        Ok(ctx) => print_out(&summary(&ctx)),
        Err(e) => {
            eprintln!("preroot: {e}");
            1
        }
    }
}

/// `preroot status [--wait [--timeout S]] [--json]`: has `preroot apply` finished at this
/// boot, and what failed. Exit 0 done without errors, 1 done with errors or unreadable,
/// 3 not done (not started, running, or still running at the deadline).
fn status(state: &StateDir, wait: bool, timeout: Option<std::time::Duration>, json: bool) -> i32 {
    let path = state.path().join(crate::apply::STATUS_FILE);
    let deadline =
        std::time::Instant::now() + timeout.unwrap_or(std::time::Duration::from_secs(600));
    loop {
        let read = std::fs::read(&path);
        let parsed = read
            .as_ref()
            .ok()
            .map(|b| serde_json::from_slice::<crate::apply::Status>(b).map_err(|e| e.to_string()));
        let done = matches!(&parsed, Some(Ok(s)) if s.stage == "done");
        // Without a context preroot-apply.service never starts: nothing to wait for.
        let no_context = parsed.is_none() && !state.path().join("context.json").exists();
        if done || no_context || !wait || std::time::Instant::now() >= deadline {
            return match parsed {
                None => {
                    let why = if no_context {
                        "not started (no context: preroot did not run in the initramfs)"
                    } else {
                        "not started"
                    };
                    if json {
                        let mut m = serde_json::Map::new();
                        m.insert("stage".into(), why.into());
                        let _ = print_out(&serde_json::Value::Object(m).to_string());
                    } else {
                        let _ = print_out(&format!("status: {why}"));
                    }
                    3
                }
                Some(Err(e)) => {
                    eprintln!("preroot: {}: {e}", path.display());
                    1
                }
                Some(Ok(s)) => {
                    if json {
                        let _ = print_out(&serde_json::to_string_pretty(&s).unwrap_or_default());
                    } else {
                        let mut text = format!(
                            "status: {}\ninstance id: {}\nnew instance: {}",
                            s.stage,
                            s.instance_id.as_deref().unwrap_or("-"),
                            s.new_instance
                        );
                        for st in &s.steps {
                            text.push_str(&format!("\nstep: {}: {}", st.step, st.outcome));
                        }
                        for i in &s.ignored {
                            text.push_str(&format!("\nnot applied: {i}"));
                        }
                        for e in &s.errors {
                            text.push_str(&format!("\nerror: {e}"));
                        }
                        let _ = print_out(&text);
                    }
                    match (s.stage == "done", s.errors.is_empty()) {
                        (true, true) => 0,
                        (true, false) => 1,
                        _ => 3,
                    }
                }
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// The human-readable form of a context, for `preroot show`.
pub fn summary(ctx: &Context) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let platform = ctx
        .platform
        .map_or_else(|| "none".to_string(), |p| p.to_string());
    let medium = format!("{:?}", ctx.source.medium).to_lowercase();
    let _ = writeln!(
        s,
        "platform:    {platform} ({:?} on {}, {medium})",
        ctx.source.kind, ctx.source.location
    );
    let _ = writeln!(s, "instance id: {}", or_none(&ctx.instance_id));
    let _ = writeln!(s, "hostname:    {}", or_none(&ctx.hostname));
    let _ = writeln!(s, "ssh keys:    {}", ctx.ssh_keys.len());
    for link in &ctx.network.links {
        let methods: Vec<String> = link
            .addressing
            .iter()
            .map(|a| match a {
                crate::context::Addressing::Static {
                    address, prefix, ..
                } => format!("{address}/{prefix}"),
                other => format!("{other:?}").to_lowercase(),
            })
            .collect();
        let _ = writeln!(
            s,
            "link:        {} ({}) {}",
            link.name.as_deref().unwrap_or("(no NIC)"),
            link.id,
            methods.join(" ")
        );
    }
    for (what, list) in [("error", &ctx.errors), ("warning", &ctx.warnings)] {
        for p in list {
            let label = format!("{what}:");
            let _ = writeln!(s, "{label:<13}{}: {}: {}", p.stage, p.object, p.message);
        }
    }
    for f in &ctx.fallbacks {
        let _ = writeln!(s, "fallback:    {}: {}", f.kind, f.reason);
    }
    for p in &ctx.phases {
        let _ = writeln!(
            s,
            "phase:       {:?} at {} ms, {} ms, peak RSS {} KiB: {}",
            p.phase,
            p.started_ms.map_or_else(|| "?".into(), |m| m.to_string()),
            p.duration_ms,
            p.peak_rss_kib.map_or_else(|| "?".into(), |k| k.to_string()),
            p.outcome
        );
    }
    s.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn parses() {
        let (c, o, v) = parse_args(&args("-v context --from configdrive:/x --root /r")).unwrap();
        assert!(v);
        assert_eq!(c, Command::Context);
        assert_eq!(
            o,
            Options {
                from: Some((SourceKind::ConfigDrive, PathBuf::from("/x"))),
                root: Some(PathBuf::from("/r")),
                ..Options::default()
            }
        );
        let (c, o, _) = parse_args(&args("run --phase grow --state-dir /s")).unwrap();
        assert_eq!((c, o.phase), (Command::Run, Some(Phase::Grow)));
        let (c, o, _) = parse_args(&args("grow --dry-run --json /dev/vda1")).unwrap();
        assert_eq!(c, Command::Grow);
        assert_eq!(
            (o.dry_run, o.json, o.spec.as_deref()),
            (true, true, Some("/dev/vda1"))
        );
        assert_eq!(parse_args(&args("grow")).unwrap().0, Command::Grow);
        let (c, o, _) = parse_args(&args(
            "context --platform ec2 --metadata-url http://127.0.0.1:8/ --timeout 2.5",
        ))
        .unwrap();
        assert_eq!(c, Command::Context);
        assert_eq!(o.platform, Some(crate::context::Platform::Ec2));
        assert_eq!(o.timeout, Some(std::time::Duration::from_millis(2500)));
        let (c, o, _) = parse_args(&args("net --iface eth0 --iface eth1 --json")).unwrap();
        assert_eq!((c, o.ifaces.len(), o.json), (Command::Net, 2, true));
        let (c, o, _) = parse_args(&args("show --json")).unwrap();
        assert_eq!((c, o.json), (Command::Show, true));
        let (c, o, _) = parse_args(&args("apply --root /r --state-dir /s")).unwrap();
        assert_eq!((c, o.root), (Command::Apply, Some(PathBuf::from("/r"))));
        let (c, o, _) = parse_args(&args("status --wait --timeout 5 --json")).unwrap();
        assert_eq!(
            (c, o.wait, o.timeout, o.json),
            (
                Command::Status,
                true,
                Some(std::time::Duration::from_secs(5)),
                true
            )
        );
        let (c, o, _) = parse_args(&args("clean --dry-run --ssh-host-keys --homes")).unwrap();
        assert_eq!(
            (c, o.dry_run, o.ssh_host_keys, o.homes),
            (Command::Clean, true, true, true)
        );
        assert_eq!(parse_args(&args("")).unwrap().0, Command::Help);
        assert_eq!(parse_args(&args("--version")).unwrap().0, Command::Version);
        for bad in [
            "context --from",
            "context --from bogus:/x",
            "context --from configdrive:",
            "context --bogus",
            "frobnicate",
            "--root /x",
            "context context",
            "run",
            "run --phase boot",
            "run --phase fetch --from configdrive:/x",
            "show --root /x",
            "context --json",
            "render --context c --format networkd",
            "render --context c --format yaml --out o",
            "context --format nm",
            "grow /dev/a /dev/b",
            "grow --phase grow",
            "context --dry-run",
            "run --phase grow --dry-run",
            "context --platform opennebula",
            "context --platform ec2 --from configdrive:/x",
            "context --metadata-url http://1.2.3.4/",
            "context --platform ec2 --metadata-url https://x/",
            "context --platform gce --timeout -1",
            "context --iface eth0",
            "net --platform ec2",
            "run --phase fetch --timeout 3",
            "show --iface x",
            "apply --wait",
            "apply --from configdrive:/x",
            "status --root /x",
            "status --timeout x",
            "show --dry-run",
            "clean --json",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "case {bad}");
        }
    }
}
