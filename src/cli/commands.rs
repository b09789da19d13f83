//! The commands' bodies: each takes its typed arguments ([`super::parse`]), does its work
//! through the stages, prints, and returns the exit status. Owns the human-readable output
//! (`show`'s summary, `net`'s lease, `status`). Never parses arguments.

use super::parse::{ContextArgs, GrowArgs, NetArgs, RenderArgs, RenderTarget, Source, StatusArgs};
use crate::context::Context;
use crate::netformat::NetFormat;
use crate::root::Root;
use crate::run;
use crate::state::StateDir;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The machine tree of `--root` (a fake one in tests), else `/`.
fn machine(root: Option<PathBuf>) -> Root {
    root.map(Root::new).unwrap_or_default()
}

/// `preroot net`: IPv4 and IPv6 raced on the candidate NICs; the first configuration is
/// kept and printed.
pub fn net(args: NetArgs, verbose: bool) -> i32 {
    let root = machine(args.root);
    let cmd = run::read_cmdline(&root);
    crate::logger::init(verbose, cmd.debug);
    let timeout = args.timeout.or(cmd.timeout).unwrap_or(run::DEFAULT_TIMEOUT);
    let net_opts = crate::net::Options {
        ifaces: args.ifaces,
        ..crate::net::Options::default()
    };
    match crate::net::bring_up(
        &root,
        &cmd,
        &net_opts,
        crate::deadline::Deadline::after(timeout),
    ) {
        Ok(up) => {
            let text = if args.json {
                serde_json::to_string_pretty(&up.lease).unwrap_or_default()
            } else {
                let l = &up.lease;
                let from = l.server.map(|s| format!(" from {s}")).unwrap_or_default();
                let mut t = format!(
                    "{} ({}): {} {}{from} after {} ms",
                    l.iface, l.mac, l.method, l.address, l.lease_ms
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
pub fn grow(args: GrowArgs, verbose: bool) -> i32 {
    let root = machine(args.root);
    let cmd = run::read_cmdline(&root);
    crate::logger::init(verbose, cmd.debug);
    let Some(spec) = args.spec.or_else(|| cmd.root.clone()) else {
        eprintln!("preroot: grow: no ROOTSPEC given and no root= on the kernel command line");
        return 1;
    };
    let dopts = crate::disk::Options {
        dry_run: args.dry_run,
        lv: cmd.grow_lv.unwrap_or(true),
        deadline: crate::deadline::Deadline::after(std::time::Duration::from_secs(60)),
    };
    let report = match crate::disk::grow_all(&root, &spec, &dopts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    if args.json {
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
pub fn render(args: RenderArgs, verbose: bool) -> i32 {
    let path = &args.context;
    // A regular file within the cap (a FIFO given as --context must not block).
    let mut ctx: Context = match crate::output::read_file(path, crate::state::CONTEXT_CAP)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    let (format, out) = match args.target {
        RenderTarget::Root {
            dir,
            format,
            labels,
        } => return render_root(&mut ctx, &dir, format, labels, verbose),
        RenderTarget::Tree { format, out } => (format, out),
    };
    // A plain tree is for inspection: a context with a value that cannot be written is
    // refused whole (every refusal named), where the boot and `--root` skip it.
    let (files, refused) = crate::render::checked(format, &ctx);
    if !refused.is_empty() {
        for e in &refused {
            eprintln!("preroot: render {format}: {e}");
        }
        return 1;
    }
    if let Err(e) = crate::render::write_tree(&files, &out) {
        eprintln!("preroot: {}: {e}", out.display());
        return 1;
    }
    for f in &files {
        println!("{}", f.path);
    }
    0
}

/// `preroot render --root DIR`: the sysroot phase's configuration of a root.
fn render_root(
    ctx: &mut Context,
    dir: &Path,
    format: Option<NetFormat>,
    labels: bool,
    verbose: bool,
) -> i32 {
    crate::logger::init(verbose, false);
    let cmd = crate::cmdline::Cmdline {
        render: format,
        ..crate::cmdline::Cmdline::default()
    };
    let directives = run::user_directives(ctx);
    let before = ctx.errors.len();
    let summary = match crate::sysroot::open_root(ctx, dir, labels) {
        Ok(root) => {
            let summary = crate::sysroot::configure(ctx, &cmd, &directives, &root);
            crate::sysroot::record_label_problems(ctx, &root);
            summary
        }
        Err(e) => e,
    };
    let new = ctx.errors.get(before..).unwrap_or_default();
    for e in new {
        eprintln!("preroot: {}: {}", e.object, e.message);
    }
    println!("{summary}");
    i32::from(!new.is_empty())
}

pub fn context(args: ContextArgs, state: &StateDir, verbose: bool) -> i32 {
    let root = machine(args.root);
    let root = &root;
    let cmd = run::read_cmdline(root);
    crate::logger::init(verbose, cmd.debug);
    for p in &cmd.problems {
        log::warn!("cmdline: {p}");
    }
    let timeout = args.timeout.or(cmd.timeout).unwrap_or(run::DEFAULT_TIMEOUT);
    let result = match args.source {
        Source::Medium(platform, path) => run::read_from(
            platform,
            &path,
            crate::deadline::Deadline::after(timeout),
            root,
            state,
        ),
        Source::Service(platform, url) => run::read_service(
            &cmd,
            platform,
            url.as_deref(),
            &args.endpoints,
            crate::deadline::Deadline::after(timeout),
            root,
            state,
        ),
        Source::Detect => Ok(run::gather(
            &cmd,
            root,
            state,
            std::time::Duration::ZERO,
            timeout,
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

pub fn print_out(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// `preroot show [--json] [--root DIR]`: what happened at this boot; then (not with
/// `--json`) whether preroot's files in DIR (default /) carry their SELinux labels. A
/// mismatch is a line of the report, not a failure: the exit status is the summary's.
pub fn show(state: &StateDir, json: bool, root: Option<&Path>) -> i32 {
    if json {
        let path = state.path().join("context.json");
        return match crate::output::read_file(&path, crate::state::CONTEXT_CAP) {
            Ok(bytes) => print_out(String::from_utf8_lossy(&bytes).trim_end()),
            Err(e) => {
                eprintln!("preroot: {e}");
                1
            }
        };
    }
    let code = match crate::state::load_context(state) {
        Ok(ctx) => print_out(&summary(&ctx)),
        Err(e) => {
            eprintln!("preroot: {e}");
            1
        }
    };
    let seed: Vec<String> = ["meta-data", "user-data", "vendor-data", "network-config"]
        .iter()
        .map(|n| format!("{}/{n}", crate::cloudinit::SEED_DIR))
        .collect();
    let mut extra: Vec<&str> = vec![crate::cloudinit::DROPIN, crate::apply::CURRENT];
    extra.extend(seed.iter().map(String::as_str));
    let lines = crate::sysroot::check_labels(root.unwrap_or(Path::new("/")), &extra);
    let _ = print_out(&lines.join("\n"));
    code
}

/// `preroot status [--wait [--timeout S]] [--json]`: has `preroot apply` finished at this
/// boot, and what failed. Exit 0 done without errors, 1 done with errors or unreadable,
/// 3 not done (not started, running, or still running at the deadline).
pub fn status(state: &StateDir, args: StatusArgs) -> i32 {
    let StatusArgs {
        wait,
        timeout,
        json,
    } = args;
    let path = state.path().join(crate::apply::STATUS_FILE);
    let deadline =
        crate::deadline::Deadline::after(timeout.unwrap_or(std::time::Duration::from_secs(600)));
    loop {
        let read = crate::output::read_file(&path, crate::state::CONTEXT_CAP);
        let parsed = read
            .as_ref()
            .ok()
            .map(|b| serde_json::from_slice::<crate::apply::Status>(b).map_err(|e| e.to_string()));
        let done = matches!(&parsed, Some(Ok(s)) if s.stage == "done");
        // Without a context preroot-apply.service never starts: nothing to wait for.
        let no_context = parsed.is_none() && !state.path().join("context.json").exists();
        if done || no_context || !wait || deadline.passed() {
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
