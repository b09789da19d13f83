//! The command line of the `preroot` binary: [`main`] parses the arguments against the one
//! declaration ([`decl`]: every command and option, with its help), prints `--help` made from
//! it ([`help`]), and runs the command ([`commands`]).
//!
//! Owns exit codes (0 done, 1 the data was bad or missing, 2 usage; `status` adds 3, not
//! finished) and the one-line error format `preroot: <object>: <problem>`. Never panics on
//! any argument.

pub mod commands;
pub mod decl;
pub mod help;
pub mod parse;

use crate::state::{StateDir, DEFAULT_STATE_DIR};
use parse::{Command, Invocation};
use std::ffi::OsString;
use std::path::PathBuf;

/// What `preroot --version` prints: `preroot VERSION (commit C)` when built from a git
/// checkout, `preroot VERSION` from a release tarball (`build.rs` sets `PREROOT_COMMIT`).
pub fn version() -> String {
    match env!("PREROOT_COMMIT") {
        "" => format!("preroot {}", env!("CARGO_PKG_VERSION")),
        commit => format!("preroot {} (commit {commit})", env!("CARGO_PKG_VERSION")),
    }
}

/// Runs the program; returns the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let (global, command) = match parse::parse(args) {
        Ok(Invocation::Help(None)) => return commands::print_out(help::general().trim_end()),
        Ok(Invocation::Help(Some(cmd))) => {
            return commands::print_out(help::command(cmd).trim_end())
        }
        Ok(Invocation::Version) => return commands::print_out(&version()),
        Ok(Invocation::Run(global, command)) => (global, command),
        Err(e) => {
            eprintln!("preroot: {e}\nTry 'preroot --help'.");
            return 2;
        }
    };
    let verbose = global.verbose;
    let state = StateDir::new(
        global
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
    );
    match command {
        Command::Context(args) => commands::context(args, &state, verbose),
        Command::Run(args) => {
            let root = args.root.map(crate::root::Root::new).unwrap_or_default();
            let cmd = crate::run::read_cmdline(&root);
            crate::logger::init(verbose, cmd.debug);
            crate::run::run(args.phase, &root, &state)
        }
        Command::Show { json, root } => commands::show(&state, json, root.as_deref()),
        Command::Render(args) => commands::render(args, verbose),
        Command::Grow(args) => commands::grow(args, verbose),
        Command::Net(args) => commands::net(args, verbose),
        Command::Apply { root, labels } => {
            crate::logger::init(verbose, false);
            crate::apply::apply(&state, root.as_deref(), labels)
        }
        Command::Status(args) => commands::status(&state, args),
        Command::Clean(args) => {
            crate::logger::init(verbose, false);
            let what = crate::clean::What {
                ssh_host_keys: args.ssh_host_keys,
                homes: args.homes,
                dry_run: args.dry_run,
            };
            crate::clean::clean(args.root.as_deref(), &what, args.labels)
        }
    }
}
