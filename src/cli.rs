//! The command line of the `preroot` binary: argument parsing, `--help`, and the commands.
//!
//! Owns exit codes (0 done, 1 the data was bad or missing, 2 usage) and the one-line error
//! format `preroot: <object>: <problem>`. Later issues add `net`, `grow`, `render`, `run`,
//! `apply`, `show`, `clean` here. Never panics on any argument.

use crate::cmdline;
use crate::context::{Context, Medium, Platform, Source, SourceKind};
use crate::detect::{self, Detection, Dmi};
use crate::media;
use crate::providers::{self, DatasourceError, Input};
use crate::root::Root;
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
  help         Print this text.

Options of `context`:
  --from KIND:PATH  Read this datasource instead of detecting one. KIND is
                    configdrive (OpenStack config drive), nocloud (NoCloud seed) or
                    opennebula (OpenNebula context). PATH is a directory, an ISO9660 or
                    FAT image file, or a block device; nothing is mounted.
  --root DIR        Take /proc, /sys and /dev from DIR (a fake machine tree): the kernel
                    command line (DIR/proc/cmdline), the host NICs
                    (DIR/sys/class/net/*/address), DMI (DIR/sys/class/dmi/id/*) and the
                    block devices (DIR/sys/class/block/*, read at DIR/dev/NAME).
                    With --from it supplies the host NICs only.
  --state-dir DIR   Where secrets (user data, vendor data, passwords, injected files)
                    are written, mode 0600 [default: /run/preroot].

Global options:
  -v, --verbose     Log to stderr (otherwise: /dev/kmsg in the initramfs, else nothing).
  -V, --version     Print the version.
  -h, --help        Print this text.

Exit status: 0 done; 1 the datasource is missing, unreadable or invalid (one line on
stderr names the file and the problem); 2 bad usage.
";

/// Parsed arguments of `preroot context`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ContextArgs {
    from: Option<(SourceKind, PathBuf)>,
    root: Option<PathBuf>,
    state_dir: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Version,
    Context(ContextArgs),
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

/// Parses arguments (without argv[0]). Returns the command and whether `-v` was given.
fn parse_args(args: &[OsString]) -> Result<(Command, bool), String> {
    let mut verbose = false;
    let mut command = None;
    let mut ctx = ContextArgs::default();
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
            "-h" | "--help" | "help" => return Ok((Command::Help, verbose)),
            "-V" | "--version" => return Ok((Command::Version, verbose)),
            "context" if command.is_none() => command = Some("context"),
            "--from" => ctx.from = Some(parse_from(&value("--from")?)?),
            "--root" => ctx.root = Some(PathBuf::from(value("--root")?)),
            "--state-dir" => ctx.state_dir = Some(PathBuf::from(value("--state-dir")?)),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other => return Err(format!("unknown command {other:?}")),
        }
    }
    match command {
        Some("context") => Ok((Command::Context(ctx), verbose)),
        _ if ctx != ContextArgs::default() => Err("options given without a command".into()),
        _ => Ok((Command::Help, verbose)),
    }
}

/// Runs the program; returns the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let (command, verbose) = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("preroot: {e}\nTry 'preroot --help'.");
            return 2;
        }
    };
    match command {
        Command::Help => {
            print!("{USAGE}");
            0
        }
        Command::Version => {
            println!("preroot {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Context(args) => context(args, verbose),
    }
}

fn context(args: ContextArgs, verbose: bool) -> i32 {
    let root = args.root.map(Root::new).unwrap_or_default();
    let cmdline_text = std::fs::read(root.cmdline())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let cmd = cmdline::parse(&cmdline_text);
    crate::logger::init(verbose, cmd.debug);
    for p in &cmd.problems {
        log::warn!("cmdline: {p}");
    }
    let state = StateDir::new(
        args.state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
    );
    let result = match args.from {
        Some((kind, path)) => read_from(kind, &path, &root, &state),
        None => detect_and_read(&cmd, &root, &state),
    };
    let mut ctx = match result {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    for p in &cmd.problems {
        ctx.warnings.push(crate::context::Problem {
            stage: "cmdline".into(),
            object: root.cmdline().display().to_string(),
            message: p.clone(),
        });
    }
    if let Some(first) = ctx.errors.first() {
        let more = match ctx.errors.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n.saturating_sub(1)),
        };
        eprintln!("preroot: {}: {}{more}", first.object, first.message);
        return 1;
    }
    match serde_json::to_string_pretty(&ctx) {
        Ok(json) => {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{json}").and_then(|()| out.flush()).is_err() {
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("preroot: cannot serialize the context: {e}");
            1
        }
    }
}

/// `--from KIND:PATH`: a directory, an image file or a device.
fn read_from(
    kind: SourceKind,
    path: &std::path::Path,
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

/// No `--from`: detect under the root, then read the medium found.
fn detect_and_read(
    cmd: &cmdline::Cmdline,
    root: &Root,
    state: &StateDir,
) -> Result<Context, DatasourceError> {
    let dmi = Dmi::read(root);
    let media = detect::scan_media(root);
    match detect::decide(cmd, &dmi, &media) {
        Detection::Found {
            platform,
            medium: Some(m),
            reason,
        } => {
            log::info!("detect: {platform} ({reason})");
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
        Detection::Found {
            platform,
            medium: None,
            reason,
        } => Err(DatasourceError::new(
            format!("platform {platform}"),
            format!(
                "detected ({reason}) but no local medium found; reading {} needs its metadata \
                 service, which the network stage provides",
                metadata_service(platform)
            ),
        )),
        Detection::Disabled | Detection::Unknown => {
            let mut ctx = Context::new(
                None,
                Source {
                    kind: SourceKind::KernelCmdline,
                    medium: Medium::Cmdline,
                    location: root.cmdline().display().to_string(),
                    partition_of: None,
                },
            );
            ctx.host_nics = root.host_nics();
            ctx.network = providers::kernel::network(cmd, &ctx.host_nics);
            if let Some(name) = providers::kernel::hostname(cmd) {
                providers::set_hostname(&mut ctx, &name, "ip=");
            }
            // Without ip= there is nothing to configure: the booted system's own network
            // manager decides, as it would without preroot.
            if !ctx.network.links.is_empty() {
                ctx.match_nics(false);
            }
            Ok(ctx)
        }
    }
}

fn metadata_service(p: Platform) -> &'static str {
    match p {
        Platform::Openstack | Platform::Ec2 => "http://169.254.169.254/",
        Platform::Gce => "http://metadata.google.internal/",
        Platform::Nocloud => "the ds=nocloud;s= URL",
        Platform::Opennebula => "the OpenNebula context",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn parses() {
        let (c, v) = parse_args(&args("-v context --from configdrive:/x --root /r")).unwrap();
        assert!(v);
        assert_eq!(
            c,
            Command::Context(ContextArgs {
                from: Some((SourceKind::ConfigDrive, PathBuf::from("/x"))),
                root: Some(PathBuf::from("/r")),
                state_dir: None,
            })
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
        ] {
            assert!(parse_args(&args(bad)).is_err(), "case {bad}");
        }
    }
}
