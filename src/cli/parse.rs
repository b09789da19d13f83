//! Parsing the arguments against the one declaration ([`super::decl`]) into a type per
//! command, so that impossible combinations do not exist past this point (`render` always has
//! its context; `context` reads a medium, a service or what it detects, never two of them).
//!
//! Owns the rules a table cannot state (`--from` excludes `--platform`; `render` needs
//! `--format --out` or `--root`). Every error is one line naming the argument. Pure: strings
//! in, a value out; never panics on any argument.

use super::decl::{self, Cmd, Opt, OptDecl};
use crate::context::Phase;
use crate::netformat::NetFormat;
use crate::platform::Platform;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `--help`, `help`, or nothing: the general help, or one command's.
    Help(Option<Cmd>),
    Version,
    Run(Global, Command),
}

/// Options every command takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Global {
    pub verbose: bool,
    pub state_dir: Option<PathBuf>,
}

/// A command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Context(ContextArgs),
    Run(RunArgs),
    Show { json: bool, root: Option<PathBuf> },
    Render(RenderArgs),
    Grow(GrowArgs),
    Net(NetArgs),
    Apply { root: Option<PathBuf>, labels: bool },
    Status(StatusArgs),
    Clean(CleanArgs),
}

/// Where `context` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Detect as at boot.
    Detect,
    /// `--from NAME:PATH`: a platform's medium.
    Medium(Platform, PathBuf),
    /// `--platform P [--metadata-url URL]`.
    Service(Platform, Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextArgs {
    pub source: Source,
    /// `--endpoint NAME=URL`, in order (only with `--platform`).
    pub endpoints: Vec<(String, String)>,
    pub root: Option<PathBuf>,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    pub phase: Phase,
    pub root: Option<PathBuf>,
}

/// Where `render` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderTarget {
    /// `--format FORMAT --out DIR`: a plain tree.
    Tree { format: NetFormat, out: PathBuf },
    /// `--root DIR [--format FORMAT] [--no-labels]`: a system root, as the sysroot phase does.
    Root {
        dir: PathBuf,
        format: Option<NetFormat>,
        labels: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderArgs {
    pub context: PathBuf,
    pub target: RenderTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowArgs {
    pub spec: Option<String>,
    pub dry_run: bool,
    pub json: bool,
    pub root: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetArgs {
    pub ifaces: Vec<String>,
    pub json: bool,
    pub timeout: Option<Duration>,
    pub root: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs {
    pub wait: bool,
    pub timeout: Option<Duration>,
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanArgs {
    pub dry_run: bool,
    pub ssh_host_keys: bool,
    pub homes: bool,
    pub root: Option<PathBuf>,
    /// Not `--no-labels`: files rewritten get SELinux labels.
    pub labels: bool,
}

/// The arguments as the declaration reads them, before they are typed.
#[derive(Debug, Default)]
struct Raw {
    command: Option<Cmd>,
    help: bool,
    version: bool,
    verbose: bool,
    /// (option name, value) in order, `-v`/`-h`/`-V` excepted.
    options: Vec<(&'static str, Option<String>)>,
    operands: Vec<String>,
}

/// The entry for `--name` (its first, when several commands share the name).
fn by_long(name: &str) -> Option<&'static OptDecl> {
    decl::OPTIONS.iter().find(|o| o.long == name)
}

fn by_short(c: char) -> Option<&'static OptDecl> {
    decl::OPTIONS.iter().find(|o| o.short == Some(c))
}

/// Splits the arguments by the declaration: the command word, options with their values,
/// operands. Options may come before the command (their command is checked later).
fn split(args: &[OsString]) -> Result<Raw, String> {
    let mut raw = Raw::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format!("argument {arg:?} is not UTF-8"))?;
        let entry = if let Some(long) = arg.strip_prefix("--") {
            by_long(long).ok_or_else(|| format!("unknown option {arg}"))?
        } else if let Some(c) = arg.strip_prefix('-').filter(|s| s.chars().count() == 1) {
            by_short(c.chars().next().unwrap_or('-'))
                .ok_or_else(|| format!("unknown option {arg}"))?
        } else if arg.starts_with('-') {
            return Err(format!("unknown option {arg}"));
        } else if raw.command.is_none() && arg == "help" {
            raw.help = true;
            continue;
        } else if raw.command.is_none() {
            let c = decl::command(arg).ok_or_else(|| format!("unknown command {arg:?}"))?;
            raw.command = Some(c.cmd);
            continue;
        } else {
            raw.operands.push(arg.to_string());
            continue;
        };
        match entry.opt {
            Opt::Help => raw.help = true,
            Opt::Version => raw.version = true,
            Opt::Verbose => raw.verbose = true,
            _ => {
                let value = match entry.value {
                    Some(_) => Some(
                        it.next()
                            .and_then(|v| v.to_str())
                            .map(str::to_string)
                            .ok_or_else(|| format!("--{} needs a value", entry.long))?,
                    ),
                    None => None,
                };
                raw.options.push((entry.long, value));
            }
        }
    }
    Ok(raw)
}

/// Parses the arguments (without argv[0]).
pub fn parse(args: &[OsString]) -> Result<Invocation, String> {
    let raw = split(args)?;
    if raw.help {
        // `help CMD` names the command as its operand.
        let named = raw.operands.first().and_then(|n| decl::command(n));
        return Ok(Invocation::Help(raw.command.or(named.map(|c| c.cmd))));
    }
    if raw.version {
        return Ok(Invocation::Version);
    }
    let Some(cmd) = raw.command else {
        if raw.options.is_empty() && raw.operands.is_empty() {
            return Ok(Invocation::Help(None));
        }
        return Err("options given without a command".into());
    };
    let mut got = Got::new(cmd, &raw)?;
    let global = Global {
        verbose: raw.verbose,
        state_dir: got.take(Opt::StateDir).map(PathBuf::from),
    };
    let command = typed(cmd, &mut got)?;
    Ok(Invocation::Run(global, command))
}

/// The options of one command, each checked against the declaration, taken by meaning.
struct Got {
    name: &'static str,
    values: Vec<(Opt, Option<String>)>,
    operands: Vec<String>,
}

impl Got {
    fn new(cmd: Cmd, raw: &Raw) -> Result<Got, String> {
        let name = decl::declaration(cmd).map_or("", |d| d.name);
        let mut values: Vec<(Opt, Option<String>)> = Vec::new();
        for (long, value) in &raw.options {
            let entry = decl::OPTIONS
                .iter()
                .find(|o| o.long == *long && o.takes(cmd))
                .ok_or_else(|| format!("--{long} does not apply to {name}"))?;
            // A single-valued option given again: the last one wins (as it always has).
            if !entry.repeat {
                values.retain(|(o, _)| *o != entry.opt);
            }
            values.push((entry.opt, value.clone()));
        }
        for required in decl::options_of(cmd).filter(|o| o.required) {
            if !values.iter().any(|(o, _)| *o == required.opt) {
                let value = required.value.unwrap_or("");
                return Err(format!("{name} needs --{} {value}", required.long));
            }
        }
        let operand = decl::declaration(cmd).and_then(|d| d.operand);
        if raw.operands.len() > usize::from(operand.is_some()) {
            let extra = raw.operands.last().map_or("", String::as_str);
            return Err(format!("unknown command {extra:?}"));
        }
        Ok(Got {
            name,
            values,
            operands: raw.operands.clone(),
        })
    }

    fn take(&mut self, opt: Opt) -> Option<String> {
        let at = self.values.iter().position(|(o, _)| *o == opt)?;
        Some(self.values.remove(at).1.unwrap_or_default())
    }

    fn flag(&mut self, opt: Opt) -> bool {
        self.take(opt).is_some()
    }

    fn all(&mut self, opt: Opt) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(v) = self.take(opt) {
            out.push(v);
        }
        out
    }

    fn path(&mut self, opt: Opt) -> Option<PathBuf> {
        self.take(opt).map(PathBuf::from)
    }

    fn timeout(&mut self, opt: Opt) -> Result<Option<Duration>, String> {
        self.take(opt).map(|v| seconds(&v)).transpose()
    }
}

/// `--timeout` seconds: 0 to 3600, decimals allowed.
fn seconds(v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
        .ok_or_else(|| format!("--timeout {v}: expected seconds (0 to 3600)"))?;
    Ok(Duration::from_secs_f64(secs))
}

fn parse_from(value: &str) -> Result<(Platform, PathBuf), String> {
    let (kind, path) = value
        .split_once(':')
        .ok_or_else(|| format!("--from {value}: expected KIND:PATH"))?;
    let platform = Platform::by_medium_name(kind).ok_or_else(|| {
        format!(
            "--from: unknown kind {kind:?} ({})",
            Platform::list(Platform::on_medium)
        )
    })?;
    if path.is_empty() {
        return Err("--from: empty PATH".into());
    }
    Ok((platform, PathBuf::from(path)))
}

/// The typed arguments of `cmd`.
fn typed(cmd: Cmd, got: &mut Got) -> Result<Command, String> {
    Ok(match cmd {
        Cmd::Context => Command::Context(context(got)?),
        Cmd::Run => {
            let v = got.take(Opt::Phase).unwrap_or_default();
            let phase = Phase::from_name(&v).ok_or_else(|| {
                format!("--phase {v}: expected {}", crate::context::Phase::list())
            })?;
            Command::Run(RunArgs {
                phase,
                root: got.path(Opt::MachineRoot),
            })
        }
        Cmd::Show => Command::Show {
            json: got.flag(Opt::Json),
            root: got.path(Opt::TargetRoot),
        },
        Cmd::Render => Command::Render(render(got)?),
        Cmd::Grow => Command::Grow(GrowArgs {
            spec: got.operands.first().cloned(),
            dry_run: got.flag(Opt::DryRun),
            json: got.flag(Opt::Json),
            root: got.path(Opt::MachineRoot),
        }),
        Cmd::Net => Command::Net(NetArgs {
            ifaces: got.all(Opt::Iface),
            json: got.flag(Opt::Json),
            timeout: got.timeout(Opt::Timeout)?,
            root: got.path(Opt::MachineRoot),
        }),
        Cmd::Apply => Command::Apply {
            root: got.path(Opt::TargetRoot),
            labels: !got.flag(Opt::NoLabels),
        },
        Cmd::Status => Command::Status(StatusArgs {
            wait: got.flag(Opt::Wait),
            timeout: got.timeout(Opt::WaitTimeout)?,
            json: got.flag(Opt::Json),
        }),
        Cmd::Clean => Command::Clean(CleanArgs {
            dry_run: got.flag(Opt::DryRun),
            ssh_host_keys: got.flag(Opt::SshHostKeys),
            homes: got.flag(Opt::Homes),
            root: got.path(Opt::TargetRoot),
            labels: !got.flag(Opt::NoLabels),
        }),
    })
}

fn context(got: &mut Got) -> Result<ContextArgs, String> {
    let from = got.take(Opt::From);
    let platform = got.take(Opt::Platform);
    let url = got.take(Opt::MetadataUrl);
    let source = match (from, platform, url) {
        (Some(_), Some(_), _) => return Err("--from and --platform exclude each other".into()),
        (_, None, Some(_)) => return Err("--metadata-url needs --platform".into()),
        (Some(from), None, None) => {
            let (platform, path) = parse_from(&from)?;
            Source::Medium(platform, path)
        }
        (None, Some(v), url) => {
            let platform = Platform::from_name(&v)
                .filter(|p| p.serves())
                .ok_or_else(|| {
                    format!(
                        "--platform {v}: expected {}",
                        Platform::list(Platform::serves)
                    )
                })?;
            if let Some(u) = &url {
                crate::http::Url::parse(u).map_err(|e| format!("--metadata-url {e}"))?;
            }
            Source::Service(platform, url)
        }
        (None, None, _) => Source::Detect,
    };
    let endpoints = endpoints(got.all(Opt::Endpoint), &source)?;
    Ok(ContextArgs {
        source,
        endpoints,
        root: got.path(Opt::MachineRoot),
        timeout: got.timeout(Opt::Timeout)?,
    })
}

/// `--endpoint NAME=URL` values: each an endpoint of the `--platform`'s, with a URL.
fn endpoints(values: Vec<String>, source: &Source) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for v in values {
        let Source::Service(platform, _) = source else {
            return Err("--endpoint needs --platform".into());
        };
        let (name, url) = v
            .split_once('=')
            .ok_or_else(|| format!("--endpoint {v}: expected NAME=URL"))?;
        if !platform.endpoints().iter().any(|e| e.name == name) {
            let names: Vec<&str> = platform.endpoints().iter().map(|e| e.name).collect();
            return Err(format!(
                "--endpoint {name}: {platform} has {}",
                if names.is_empty() {
                    "no other endpoint".to_string()
                } else {
                    format!("only {}", crate::text::or_list(&names))
                }
            ));
        }
        crate::http::Url::parse(url).map_err(|e| format!("--endpoint {name}={e}"))?;
        out.push((name.to_string(), url.to_string()));
    }
    Ok(out)
}

fn render(got: &mut Got) -> Result<RenderArgs, String> {
    let context = got.path(Opt::Context).unwrap_or_default();
    let format = got
        .take(Opt::Format)
        .map(|v| {
            NetFormat::from_name(&v)
                .ok_or_else(|| format!("--format {v}: expected {}", NetFormat::list()))
        })
        .transpose()?;
    let target = match (got.path(Opt::Out), got.path(Opt::TargetRoot), format) {
        (Some(out), None, Some(format)) => RenderTarget::Tree { format, out },
        (None, Some(dir), format) => RenderTarget::Root {
            dir,
            format,
            labels: !got.flag(Opt::NoLabels),
        },
        _ => {
            return Err(format!(
                "{} needs --context FILE and either --format FORMAT --out DIR or --root DIR",
                got.name
            ))
        }
    };
    Ok(RenderArgs { context, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn run(s: &str) -> (Global, Command) {
        match parse(&args(s)) {
            Ok(Invocation::Run(g, c)) => (g, c),
            other => panic!("case {s}: {other:?}"),
        }
    }

    #[test]
    fn parses_each_command() {
        let (g, c) = run("-v context --from configdrive:/x --root /r");
        assert!(g.verbose);
        assert_eq!(
            c,
            Command::Context(ContextArgs {
                source: Source::Medium(Platform::Openstack, PathBuf::from("/x")),
                endpoints: Vec::new(),
                root: Some(PathBuf::from("/r")),
                timeout: None,
            })
        );
        let (g, c) = run("run --phase grow --state-dir /s");
        assert_eq!(g.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(
            c,
            Command::Run(RunArgs {
                phase: Phase::Grow,
                root: None
            })
        );
        let (_, c) = run("grow --dry-run --json /dev/vda1");
        assert_eq!(
            c,
            Command::Grow(GrowArgs {
                spec: Some("/dev/vda1".into()),
                dry_run: true,
                json: true,
                root: None
            })
        );
        let (_, c) = run("context --platform ec2 --metadata-url http://127.0.0.1:8/ --timeout 2.5");
        assert_eq!(
            c,
            Command::Context(ContextArgs {
                source: Source::Service(Platform::Ec2, Some("http://127.0.0.1:8/".into())),
                endpoints: Vec::new(),
                root: None,
                timeout: Some(Duration::from_millis(2500)),
            })
        );
        let (_, c) = run(
            "context --platform exoscale --metadata-url http://127.0.0.1:8/ \
             --endpoint password=http://127.0.0.1:9/1.0/",
        );
        let Command::Context(a) = c else {
            panic!("case exoscale: {c:?}")
        };
        assert_eq!(
            a.endpoints,
            [(
                "password".to_string(),
                "http://127.0.0.1:9/1.0/".to_string()
            )]
        );
        let (_, c) = run(
            "context --platform azure --metadata-url http://127.0.0.1:8/ \
             --endpoint wireserver=http://127.0.0.1:9/",
        );
        let Command::Context(a) = c else {
            panic!("case azure: {c:?}")
        };
        assert_eq!(
            a.endpoints,
            [("wireserver".to_string(), "http://127.0.0.1:9/".to_string())]
        );
        let (_, c) = run("net --iface eth0 --iface eth1 --json");
        assert!(
            matches!(c, Command::Net(NetArgs { ref ifaces, json: true, .. }) if ifaces.len() == 2)
        );
        assert_eq!(
            run("show --json").1,
            Command::Show {
                json: true,
                root: None
            }
        );
        assert_eq!(
            run("show --root /r").1,
            Command::Show {
                json: false,
                root: Some(PathBuf::from("/r"))
            }
        );
        assert_eq!(
            run("apply --root /r --state-dir /s").1,
            Command::Apply {
                root: Some(PathBuf::from("/r")),
                labels: true
            }
        );
        assert_eq!(
            run("apply --no-labels").1,
            Command::Apply {
                root: None,
                labels: false
            }
        );
        assert_eq!(
            run("status --wait --timeout 5 --json").1,
            Command::Status(StatusArgs {
                wait: true,
                timeout: Some(Duration::from_secs(5)),
                json: true
            })
        );
        assert_eq!(
            run("clean --dry-run --ssh-host-keys --homes").1,
            Command::Clean(CleanArgs {
                dry_run: true,
                ssh_host_keys: true,
                homes: true,
                root: None,
                labels: true
            })
        );
        assert_eq!(
            run("render --context c.json --format nm --out /o").1,
            Command::Render(RenderArgs {
                context: "c.json".into(),
                target: RenderTarget::Tree {
                    format: NetFormat::Nm,
                    out: "/o".into()
                }
            })
        );
        assert_eq!(
            run("render --context c.json --root /r").1,
            Command::Render(RenderArgs {
                context: "c.json".into(),
                target: RenderTarget::Root {
                    dir: "/r".into(),
                    format: None,
                    labels: true
                }
            })
        );
        assert_eq!(
            run("render --context c.json --root /r --no-labels").1,
            Command::Render(RenderArgs {
                context: "c.json".into(),
                target: RenderTarget::Root {
                    dir: "/r".into(),
                    format: None,
                    labels: false
                }
            })
        );
    }

    #[test]
    fn the_last_of_a_repeated_option_wins() {
        let (_, c) = run("context --root /a --root /b");
        assert!(
            matches!(c, Command::Context(ContextArgs { root: Some(ref r), .. }) if r == &PathBuf::from("/b"))
        );
        let (_, c) = run("net --iface a --iface b");
        assert!(matches!(c, Command::Net(NetArgs { ref ifaces, .. }) if ifaces.len() == 2));
    }

    #[test]
    fn help_and_version() {
        for (s, want) in [
            ("", Invocation::Help(None)),
            ("--help", Invocation::Help(None)),
            ("help", Invocation::Help(None)),
            ("-v", Invocation::Help(None)),
            ("grow --help", Invocation::Help(Some(Cmd::Grow))),
            ("grow -h", Invocation::Help(Some(Cmd::Grow))),
            ("--help render", Invocation::Help(Some(Cmd::Render))),
            ("help status", Invocation::Help(Some(Cmd::Status))),
            ("--version", Invocation::Version),
            ("-V", Invocation::Version),
        ] {
            assert_eq!(parse(&args(s)), Ok(want), "case {s:?}");
        }
    }

    #[test]
    fn refuses_what_the_declaration_does_not_allow() {
        for bad in [
            "context --from",
            "context --from bogus:/x",
            "context --from configdrive:",
            "context --from ec2:/x",
            "context --bogus",
            "frobnicate",
            "--root /x",
            "context context",
            "run",
            "run --phase boot",
            "run --phase fetch --from configdrive:/x",
            "show --no-labels",
            "context --json",
            "render --context c --format networkd",
            "render --context c --format yaml --out o",
            "render --format nm --out o",
            "render --context c --root r --out o",
            "context --format nm",
            "grow /dev/a /dev/b",
            "grow --phase grow",
            "context --dry-run",
            "run --phase grow --dry-run",
            "context --platform opennebula",
            "context --platform ec2 --from configdrive:/x",
            "context --metadata-url http://1.2.3.4/",
            "context --platform ec2 --metadata-url https://x/",
            "context --endpoint password=http://127.0.0.1:1/",
            "context --platform ec2 --endpoint password=http://127.0.0.1:1/",
            "context --platform cloudstack --endpoint wire=http://127.0.0.1:1/",
            "context --platform cloudstack --endpoint password",
            "context --platform exoscale --endpoint password=https://x/",
            "context --platform gce --timeout -1",
            "context --platform ec2 --endpoint wireserver=http://127.0.0.1:9/",
            "context --platform azure --endpoint wireserver=https://x/",
            "context --platform azure --endpoint password=http://127.0.0.1:9/",
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
            "-x",
        ] {
            assert!(parse(&args(bad)).is_err(), "case {bad}");
        }
    }
}
