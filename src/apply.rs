//! `preroot apply`: the userspace half, run once per instance in the booted system by
//! `preroot-apply.service` (after the network is online, before sshd accepts logins).
//!
//! Reads the context and the secrets the initramfs left in the state directory, then, in a
//! system root (`/`, or `--root DIR` for tests and images):
//! 1. every boot: `bootcmd` and boothooks (vendor data first, then user data);
//! 2. once per instance id (state in `var/lib/preroot/instances/ID/`, one marker per step in
//!    `sem/`, so an interrupted run resumes and a started script never runs twice): new ssh
//!    host keys (fingerprints printed), users and the default user (`useradd`; `/etc/passwd`
//!    and `/etc/group` streamed whole), ssh keys (keys already there stay), sudoers (each rule
//!    checked, the file checked by the root's `visudo -c` before it is put into place),
//!    passwords (SHA-512 crypt, `chpasswd -e`), hostname, `write_files` (`append` with
//!    `O_APPEND`), OpenStack injected files, Heat's `cfn-userdata`, scripts and `runcmd`
//!    (output to `var/log/preroot-user-data.log`, exit status recorded). On Azure, the ready
//!    report to the wire server comes after the steps that make the machine usable (host
//!    keys, users, passwords, hostname), once per instance
//!    ([`crate::providers::azure::report`]; also after the cloud-init hand-off).
//!
//! Every program runs with a deadline, in a process group of its own (at the deadline the
//! whole group is stopped: SIGTERM, a grace, SIGKILL; a program that exits by itself keeps
//! its daemons), with a fixed environment, and — with `--root` — chrooted into the root
//! (`chroot DIR ...`), never on the host. The cloud-init hand-off is [`crate::cloudinit`]'s,
//! also written by the initramfs's sysroot phase. Files go through [`RootDir`] (no
//! symlink followed). Passwords and user data are never logged. The decisions are in
//! [`crate::userdata`] (pure); this module is the I/O. `/etc/preroot/preroot.conf` is read by
//! [`crate::conf`] (docs/apply.md).

use crate::conf::{Config, CONF};
use crate::context::Context;
use crate::output::RootDir;
use crate::state::StateDir;
use crate::userdata::{self, Plan, Script, UserSpec};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// preroot's state in the root, per instance.
pub const INSTANCES: &str = "var/lib/preroot/instances";
/// The id of the instance last applied (plain text).
pub const CURRENT: &str = "var/lib/preroot/instance-id";
pub const USER_DATA_LOG: &str = "var/log/preroot-user-data.log";
pub const HEAT_DIR: &str = "var/lib/heat-cfntools";
pub const HEAT_LOG: &str = "var/log/heat-provision.log";
/// This boot's outcome, in the state directory (`preroot status`).
pub const STATUS_FILE: &str = "apply.json";
const SUDOERS: &str = "etc/sudoers.d/90-preroot-users";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One step's outcome, for the status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub step: String,
    pub outcome: String,
}

/// What `apply` did at this boot (`STATE/apply.json`, read by `preroot status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `running` or `done`.
    pub stage: String,
    pub instance_id: Option<String>,
    /// The once-per-instance steps ran at this boot (a new instance id).
    pub new_instance: bool,
    pub steps: Vec<Step>,
    /// What user data asked for that preroot does not do, by name.
    pub ignored: Vec<String>,
    pub errors: Vec<String>,
}

/// How programs are run: in the root (`chroot`) or directly when the root is `/`.
struct Exec {
    root: PathBuf,
    chroot: bool,
    timeout: Duration,
    instance_id: String,
}

impl Exec {
    /// Runs `argv` with its output appended to `log` (else discarded), `stdin` fed to it, in
    /// a process group of its own, with a fixed environment, chrooted into the root unless it
    /// is `/`; at the deadline the whole group is stopped ([`crate::sys::spawn`]), so a
    /// script's background children die with it. Returns the exit code (signals as 128 + N).
    fn run(&self, argv: &[&str], stdin: Option<&[u8]>, log: Option<&File>) -> Result<i32, String> {
        use crate::sys::spawn::Sink;
        let sink = log.map_or(Sink::Null, Sink::File);
        self.run_to(argv, stdin, sink).map(|out| out.status())
    }

    /// Runs `argv` as [`Exec::run`] does, its output captured (at most `cap` bytes) rather than
    /// given a file: a program the booted policy runs in a domain of its own (`ssh-keygen` in
    /// `ssh_keygen_t`) may not write to preroot's files, but the pipe is preroot's to read.
    fn capture(&self, argv: &[&str], cap: usize) -> Result<(i32, Vec<u8>), String> {
        let out = self.run_to(argv, None, crate::sys::spawn::Sink::Capture { cap })?;
        Ok((out.status(), out.stdout))
    }

    /// [`Exec::run`] with the output going to `output` (a log, nowhere, or captured).
    fn run_to(
        &self,
        argv: &[&str],
        stdin: Option<&[u8]>,
        output: crate::sys::spawn::Sink,
    ) -> Result<crate::sys::spawn::Output, String> {
        use crate::sys::spawn::{self, Spec, Stdin};
        let Some((prog, args)) = argv.split_first() else {
            return Err("empty command".into());
        };
        let root = self.root.to_string_lossy();
        let (path, args): (String, Vec<&str>) = if self.chroot {
            let chroot = [
                "/usr/sbin/chroot",
                "/usr/bin/chroot",
                "/sbin/chroot",
                "/bin/chroot",
            ]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("no chroot program on this system")?;
            let mut all = vec![root.as_ref(), *prog];
            all.extend_from_slice(args);
            (chroot.to_string(), all)
        } else {
            let path = spawn::which(prog, PATH).ok_or_else(|| format!("{prog}: not found"))?;
            (path, args.to_vec())
        };
        let path_env = format!("PATH={PATH}");
        let id_env = format!("INSTANCE_ID={}", self.instance_id);
        let env = [
            path_env.as_str(),
            "HOME=/root",
            "LANG=C.UTF-8",
            id_env.as_str(),
        ];
        let spec = Spec {
            path: &path,
            args: &args,
            env: &env,
            dir: Some("/"),
            stdin: stdin.map_or(Stdin::Null, Stdin::Bytes),
            output,
            group: true,
        };
        let deadline = crate::deadline::Deadline::after(self.timeout);
        let out = spawn::exec(&spec, deadline.instant()).map_err(|e| format!("{prog}: {e}"))?;
        if out.timed_out {
            return Err(format!(
                "{prog}: killed with its process group after {} s (script_timeout){}",
                self.timeout.as_secs(),
                if out.survivors {
                    "; some of it would not die"
                } else {
                    ""
                }
            ));
        }
        Ok(out)
    }
}

/// A passwd entry: (uid, gid, home).
pub fn passwd_entry(passwd: &str, name: &str) -> Option<(u32, u32, String)> {
    passwd.lines().find_map(|l| passwd_line(l, name))
}

/// The (uid, gid, home) of `name` if `line` is its passwd line.
pub fn passwd_line(line: &str, name: &str) -> Option<(u32, u32, String)> {
    let mut f = line.split(':');
    if f.next()? != name {
        return None;
    }
    let _pw = f.next()?;
    let uid = f.next()?.parse().ok()?;
    let gid = f.next()?.parse().ok()?;
    let _gecos = f.next()?;
    let home = f.next()?.to_string();
    Some((uid, gid, home))
}

/// A group's gid from `/etc/group` text.
pub fn group_id(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| group_line(l, name))
}

/// The gid of `name` if `line` is its group line.
pub fn group_line(line: &str, name: &str) -> Option<u32> {
    let mut f = line.split(':');
    (f.next()? == name).then_some(())?;
    f.next()?;
    f.next()?.parse().ok()
}

/// Longest line of an account file looked at; a longer one is read past, not kept.
const ACCOUNT_LINE_MAX: u64 = 64 * 1024;

/// The first `found(line)` of the lines `reader` streams, the file read to its end if need be
/// (no cap on the file: a large `/etc/passwd` is still searched whole); lines over
/// `ACCOUNT_LINE_MAX` are skipped.
pub fn find_line<T>(
    reader: impl std::io::Read,
    mut found: impl FnMut(&str) -> Option<T>,
) -> std::io::Result<Option<T>> {
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .by_ref()
            .take(ACCOUNT_LINE_MAX)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() != Some(&b'\n') && u64::try_from(n).unwrap_or(u64::MAX) >= ACCOUNT_LINE_MAX {
            // Too long: read past the rest of it.
            let mut rest = Vec::new();
            while reader
                .by_ref()
                .take(ACCOUNT_LINE_MAX)
                .read_until(b'\n', &mut rest)?
                > 0
            {
                if rest.last() == Some(&b'\n') {
                    break;
                }
                rest.clear();
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(t) = found(text.trim_end_matches(['\n', '\r'])) {
            return Ok(Some(t));
        }
    }
}

/// Existing `authorized_keys` plus the new keys not already in it, in order, and the keys
/// refused: one with a control character other than a tab inside (a newline would make it two lines of the
/// file; the readers split such text into keys before it comes here).
pub fn merge_keys(existing: &str, keys: &[String]) -> (String, Vec<String>) {
    let mut out = existing.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let have: Vec<&str> = existing.lines().map(str::trim).collect();
    let mut added: Vec<&str> = Vec::new();
    let mut refused = Vec::new();
    for k in keys {
        let k = k.trim();
        if k.chars().any(|c| c.is_control() && c != '\t') {
            refused.push(k.to_string());
            continue;
        }
        if k.is_empty() || have.contains(&k) || added.contains(&k) {
            continue;
        }
        out.push_str(k);
        out.push('\n');
        added.push(k);
    }
    (out, refused)
}

/// A string safe as one path component of preroot's state (the instance id).
pub fn component(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    match s.as_str() {
        "" | "." | ".." => "_".into(),
        _ => s,
    }
}

struct Applier<'a> {
    root: RootDir,
    exec: Exec,
    conf: Config,
    inst: String,
    status: Status,
    ctx: &'a Context,
}

impl Applier<'_> {
    /// Records an error in the status (and the log), as one line.
    fn err(&mut self, what: impl Into<String>) {
        let what = crate::text::one_line(&what.into());
        log::error!("apply: {what}");
        self.status.errors.push(what);
    }

    fn step(&mut self, step: &str, outcome: impl Into<String>) {
        let outcome = outcome.into();
        log::info!("apply: {step}: {outcome}");
        self.status.steps.push(Step {
            step: step.into(),
            outcome,
        });
    }

    fn sem(&self, step: &str) -> String {
        format!("{}/sem/{}", self.inst, component(step))
    }

    fn done(&self, step: &str) -> bool {
        self.root.exists(&self.sem(step))
    }

    fn mark(&mut self, step: &str, note: &str) {
        let sem = self.sem(step);
        if let Err(e) = self.root.write(&sem, format!("{note}\n").as_bytes(), 0o644) {
            self.err(format!("{sem}: {e}"));
        }
    }

    /// Gives what a program just made or replaced the labels of the root's policy
    /// (`restorecon`'s rule: only what differs), recursively for a directory when
    /// `recursive`: in the booted system the kernel labels new files by its own rules, which
    /// do not always agree with file_contexts (an `ssh-keygen` run from here makes
    /// `etc_t` host keys, not `sshd_key_t`), and under `--root` or with no policy loaded
    /// they get none. Failures are counted by the root ([`RootDir::label_problems`]).
    fn relabel(&mut self, paths: &[&str], recursive: bool) {
        for rel in paths {
            let n = self.root.relabel(rel, recursive);
            if n > 0 {
                log::info!("apply: SELinux: relabelled {n} under /{rel}");
            }
        }
    }

    /// The first `found(line)` of an account file (`etc/passwd`, `etc/group`), streamed to its
    /// end whatever its size ([`find_line`]). `Err`: why it could not be read, so a caller
    /// never takes "unreadable" for "not there".
    fn account<T>(
        &self,
        rel: &str,
        found: impl FnMut(&str) -> Option<T>,
    ) -> Result<Option<T>, String> {
        let file = self
            .root
            .open_read(rel)
            .map_err(|e| format!("/{rel}: {e}"))?;
        match file {
            None => Ok(None),
            Some(f) => find_line(f, found).map_err(|e| format!("/{rel}: {e}")),
        }
    }

    fn log_file(&mut self, rel: &str) -> Option<File> {
        match self.root.open_append(rel, 0o600) {
            Ok(f) => Some(f),
            Err(e) => {
                self.err(format!("{rel}: {e}"));
                None
            }
        }
    }

    /// Writes `script` into `dir` (0700) and runs it, output to `log`.
    /// Runs a user-data script (log: [`USER_DATA_LOG`]); a non-zero exit is an error. Returns
    /// the outcome recorded for the step.
    fn run_user_script(&mut self, dir: &str, script: &Script) -> String {
        match self.run_script(dir, script, USER_DATA_LOG) {
            Some(0) => "exit 0".to_string(),
            Some(c) => {
                self.err(format!("{}: exit status {c}", script.name));
                format!("exit {c}")
            }
            None => "not run".into(),
        }
    }

    fn run_script(&mut self, dir: &str, script: &Script, log: &str) -> Option<i32> {
        let rel = format!("{dir}/{}", component(&script.name));
        let mut body = script.body.clone();
        if !body.starts_with(b"#!") {
            let mut b = b"#!/bin/sh\n".to_vec();
            b.extend_from_slice(&body);
            body = b;
        }
        if let Err(e) = self.root.write(&rel, &body, 0o700) {
            self.err(format!("{rel}: {e}"));
            return None;
        }
        let log = self.log_file(log);
        let path = format!("/{rel}");
        match self.exec.run(&[path.as_str()], None, log.as_ref()) {
            Ok(code) => Some(code),
            Err(e) => {
                self.err(format!("{}: {e}", script.name));
                None
            }
        }
    }

    fn boot_scripts(&mut self, plans: &[&Plan]) {
        let dir = format!("{}/boot", self.inst);
        for script in plans.iter().flat_map(|p| p.boot.iter()) {
            let outcome = self.run_user_script(&dir, script);
            self.step(&script.name, outcome);
        }
    }

    fn host_keys(&mut self) {
        if !self.conf.regenerate_host_keys || self.done("ssh-host-keys") {
            return;
        }
        if !self.root.exists("etc/ssh") {
            self.step("ssh-host-keys", "no /etc/ssh, skipped");
            return;
        }
        let old: Vec<String> = match self.root.list("etc/ssh") {
            Ok(l) => l
                .into_iter()
                .filter(|(n, d)| !d && n.starts_with("ssh_host_"))
                .map(|(n, _)| n)
                .collect(),
            Err(e) => return self.err(format!("etc/ssh: {e}")),
        };
        for n in &old {
            if let Err(e) = self.root.remove(&format!("etc/ssh/{n}")) {
                self.err(format!("etc/ssh/{n}: {e}"));
            }
        }
        match self.exec.run(&["ssh-keygen", "-A"], None, None) {
            Ok(0) => {}
            Ok(c) => return self.err(format!("ssh-keygen -A: exit status {c}")),
            Err(e) => return self.err(format!("ssh-keygen -A: {e}")),
        }
        let keys: Vec<String> = self
            .root
            .list("etc/ssh")
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, d)| !d && n.starts_with("ssh_host_"))
            .map(|(n, _)| format!("etc/ssh/{n}"))
            .collect();
        self.relabel(&keys.iter().map(String::as_str).collect::<Vec<_>>(), false);
        // Fingerprints to the console (the unit's output), as cloud-init prints them, and to
        // a file of the instance's state.
        let fp = format!("{}/ssh-host-key-fingerprints", self.inst);
        let pubs: Vec<String> = self
            .root
            .list("etc/ssh")
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, d)| !d && n.starts_with("ssh_host_") && n.ends_with(".pub"))
            .map(|(n, _)| n)
            .collect();
        let mut prints = String::new();
        for n in &pubs {
            let path = format!("/etc/ssh/{n}");
            match self.exec.capture(&["ssh-keygen", "-l", "-f", &path], 4096) {
                Ok((0, out)) => prints.push_str(&String::from_utf8_lossy(&out)),
                Ok((c, _)) => self.err(format!("ssh-keygen -l {path}: exit status {c}")),
                Err(e) => self.err(format!("ssh-keygen -l {path}: {e}")),
            }
        }
        if let Err(e) = self.root.write(&fp, prints.as_bytes(), 0o600) {
            self.err(format!("{fp}: {e}"));
        }
        println!("-----BEGIN SSH HOST KEY FINGERPRINTS-----");
        print!("{prints}");
        println!("-----END SSH HOST KEY FINGERPRINTS-----");
        self.step(
            "ssh-host-keys",
            format!("regenerated ({} keys)", pubs.len()),
        );
        self.mark("ssh-host-keys", "done");
    }

    /// Makes sure `name` exists (`groupadd` missing groups, `useradd -m`); returns its
    /// (uid, gid, home).
    fn ensure_user(&mut self, name: &str, spec: &UserSpec) -> Option<(u32, u32, String)> {
        // Unreadable is not "absent": without knowing, useradd is not run.
        match self.account("etc/passwd", |l| passwd_line(l, name)) {
            Ok(Some(e)) => return Some(e),
            Ok(None) => {}
            Err(e) => {
                self.err(format!("user {name}: cannot tell whether it exists: {e}"));
                return None;
            }
        }
        for g in &spec.groups {
            match self.account("etc/group", |l| group_line(l, g)) {
                Ok(Some(_)) => {}
                Ok(None) if userdata::valid_user_name(g) => {
                    if let Err(e) = self.exec.run(&["groupadd", g], None, None) {
                        self.err(format!("groupadd {g}: {e}"));
                    }
                    self.relabel(&["etc/group", "etc/gshadow"], false);
                }
                Ok(None) => self.err(format!(
                    "user {name}: group \"{}\" is not a group name; not created",
                    crate::text::show(g)
                )),
                Err(e) => self.err(format!("group {g}: cannot tell whether it exists: {e}")),
            }
        }
        let shell = spec
            .shell
            .clone()
            .or_else(|| self.conf.default_user_shell.clone())
            .unwrap_or_else(|| {
                if self.root.exists("bin/bash") {
                    "/bin/bash".into()
                } else {
                    "/bin/sh".into()
                }
            });
        let groups = spec.groups.join(",");
        let mut argv = vec!["useradd", "-m", "-s", shell.as_str()];
        if !groups.is_empty() {
            argv.extend(["-G", groups.as_str()]);
        }
        argv.push(name);
        match self.exec.run(&argv, None, None) {
            Ok(0) => {}
            Ok(c) => self.err(format!("useradd {name}: exit status {c}")),
            Err(e) => self.err(format!("useradd {name}: {e}")),
        }
        let entry = match self.account("etc/passwd", |l| passwd_line(l, name)) {
            Ok(Some(e)) => Some(e),
            Ok(None) => {
                self.err(format!("user {name}: not in /etc/passwd after useradd"));
                None
            }
            Err(e) => {
                self.err(format!("user {name}: after useradd: {e}"));
                None
            }
        };
        let files = [
            "etc/passwd",
            "etc/shadow",
            "etc/group",
            "etc/gshadow",
            "etc/subuid",
            "etc/subgid",
        ];
        self.relabel(&files, false);
        // The home `useradd -m` made from /etc/skel, where the booted system sees it.
        if let Some((_, _, home)) = &entry {
            let home = home.trim_start_matches('/');
            if !home.is_empty() {
                let home = self.resolve_parent(home);
                self.relabel(&[home.as_str()], true);
            }
        }
        entry
    }

    fn authorize(&mut self, name: &str, (uid, gid, home): &(u32, u32, String), keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let home = home.trim_start_matches('/');
        if home.is_empty() {
            return self.err(format!("user {name}: home is /"));
        }
        // The directories above the home are the system's, and may be links (an ostree
        // system's /home -> var/home, /root -> var/roothome): resolved as the booted system
        // would, confined to the root. The home itself and what is in it belong to the user:
        // no link there is followed.
        let home = self.resolve_parent(home);
        let ssh = format!("{home}/.ssh");
        let file = format!("{ssh}/authorized_keys");
        let result = (|| -> std::io::Result<Vec<String>> {
            self.root.mkdir(&ssh, 0o700)?;
            self.root.set_owner_mode(&ssh, None, Some((*uid, *gid)))?;
            let existing = self
                .root
                .read(&file)?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let (merged, refused) = merge_keys(&existing, keys);
            self.root.write(&file, merged.as_bytes(), 0o600)?;
            self.root.set_owner_mode(&file, None, Some((*uid, *gid)))?;
            Ok(refused)
        })();
        match result {
            Ok(refused) => {
                for k in &refused {
                    self.err(format!(
                        "ssh key for {name} \"{}\" refused: it holds a control character",
                        crate::text::show(k)
                    ));
                }
                let offered = keys.len().saturating_sub(refused.len());
                let outcome = match refused.len() {
                    0 => format!("{offered} keys offered"),
                    n => format!("{offered} keys offered, {n} refused"),
                };
                self.step(&format!("ssh-keys {name}"), outcome);
            }
            Err(e) => self.err(format!("{file}: {e}")),
        }
    }

    fn users(&mut self, plans: &[&Plan]) {
        if self.done("users") {
            return;
        }
        let default = self.default_user();
        let mut default_keys: Vec<String> = self.ctx.ssh_keys.clone();
        let mut specs: Vec<UserSpec> = Vec::new();
        for p in plans {
            default_keys.extend(p.ssh_keys.iter().cloned());
            specs.extend(p.users.iter().cloned());
        }
        let wants_default = !default_keys.is_empty()
            || self.ctx.password.is_some()
            || specs.iter().any(|s| s.name.is_none())
            || plans
                .iter()
                .any(|p| p.passwords.iter().any(|pw| pw.user.is_none()));
        let mut sudoers = String::new();
        if wants_default {
            let spec = UserSpec {
                name: Some(default.clone()),
                groups: self.conf.default_user_groups.clone(),
                sudo: self.conf.default_user_sudo.clone().into_iter().collect(),
                shell: None,
                ssh_keys: Vec::new(),
            };
            if let Some(entry) = self.ensure_user(&default, &spec) {
                self.authorize(&default, &entry, &default_keys);
            }
            self.sudo_rules(&mut sudoers, &default, &spec.sudo);
        }
        for spec in specs.iter().filter(|s| s.name.is_some()) {
            let name = spec.name.clone().unwrap_or_default();
            if let Some(entry) = self.ensure_user(&name, spec) {
                self.authorize(&name, &entry, &spec.ssh_keys);
            }
            self.sudo_rules(&mut sudoers, &name, &spec.sudo);
        }
        if !sudoers.is_empty() {
            let body = format!("# Written by preroot apply (cloud-config users)\n{sudoers}");
            self.write_sudoers(&body);
        }
        self.mark("users", "done");
    }

    /// Adds `user`'s rules to the sudoers text, each checked first ([`crate::valid::sudo_rule`]:
    /// a newline or a trailing backslash would run into the next user's line).
    fn sudo_rules(&mut self, sudoers: &mut String, user: &str, rules: &[String]) {
        for rule in rules {
            match crate::valid::sudo_rule(rule) {
                Ok(()) => sudoers.push_str(&format!("{user} {rule}\n")),
                Err(why) => self.err(format!("user {user}: {why}; not written")),
            }
        }
    }

    /// Puts the sudoers drop-in into place only once it is known to parse: checked by the
    /// root's own `visudo -c` (on a copy beside it whose name has a `.`, which sudo's
    /// `#includedir` never reads), or, in a root without visudo, by the rule checks alone.
    /// A file visudo refuses is not written: a broken drop-in breaks sudo for everyone.
    fn write_sudoers(&mut self, body: &str) {
        const CHECK: &str = "etc/sudoers.d/.90-preroot-users.check";
        let visudo = [
            "usr/sbin/visudo",
            "usr/bin/visudo",
            "sbin/visudo",
            "bin/visudo",
        ]
        .into_iter()
        .any(|p| self.root.exists(p));
        if visudo {
            if let Err(e) = self.root.write(CHECK, body.as_bytes(), 0o440) {
                return self.err(format!("{CHECK}: {e}"));
            }
            let check = format!("/{CHECK}");
            let sink = crate::sys::spawn::Sink::Capture { cap: 4096 };
            let verdict = self
                .exec
                .run_to(&["visudo", "-c", "-q", "-f", &check], None, sink);
            let _ = self.root.remove(CHECK);
            match verdict {
                Ok(out) if out.status() == 0 => {}
                Ok(out) => {
                    let said = [out.stderr.as_slice(), out.stdout.as_slice()].concat();
                    let said = String::from_utf8_lossy(&said);
                    let first = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                    return self.err(format!(
                        "/{SUDOERS}: visudo -c refused it (exit {}: \"{}\"); not written",
                        out.status(),
                        crate::text::show(first.trim())
                    ));
                }
                Err(e) => return self.err(format!("/{SUDOERS}: visudo -c: {e}; not written")),
            }
        }
        if let Err(e) = self.root.write(SUDOERS, body.as_bytes(), 0o440) {
            self.err(format!("{SUDOERS}: {e}"));
        }
    }

    fn passwords(&mut self, plans: &[&Plan]) {
        if self.done("passwords") {
            return;
        }
        let mut list: Vec<userdata::Password> = Vec::new();
        if let Some(secret) = &self.ctx.password {
            match crate::state::read_secret(&secret.path) {
                Ok(bytes) => {
                    let value = String::from_utf8_lossy(&bytes).trim_end().to_string();
                    let crypted = self.ctx.extra.get("password_kind").and_then(|v| v.as_str())
                        == Some("crypted");
                    list.push(userdata::Password {
                        user: None,
                        hashed: crypted || crate::crypt::is_hash(&value),
                        value,
                    });
                }
                Err(e) => self.err(e),
            }
        }
        for p in plans {
            list.extend(p.passwords.iter().cloned());
        }
        let mut set = 0usize;
        for pw in &list {
            let user = pw.user.clone().unwrap_or_else(|| self.default_user());
            if !userdata::valid_user_name(&user) {
                self.err(format!(
                    "password for \"{}\" refused: not a user name",
                    crate::text::show(&user)
                ));
                continue;
            }
            // The value itself is a secret: only the rule is said.
            if pw.value.contains(['\n', ':']) && !pw.hashed {
                self.err(format!(
                    "password for {user} refused: it holds a newline or ':' (chpasswd reads USER:PASSWORD lines)"
                ));
                continue;
            }
            let hash = if pw.hashed {
                pw.value.clone()
            } else {
                match crate::crypt::salt() {
                    Ok(salt) => crate::crypt::sha512_crypt(pw.value.as_bytes(), &salt, None),
                    Err(e) => {
                        self.err(format!("password for {user}: no salt: {e}"));
                        continue;
                    }
                }
            };
            if !crate::crypt::is_hash(&hash) {
                self.err(format!("password for {user}: not a crypt(3) hash, refused"));
                continue;
            }
            let line = format!("{user}:{hash}\n");
            match self
                .exec
                .run(&["chpasswd", "-e"], Some(line.as_bytes()), None)
            {
                Ok(0) => set = set.saturating_add(1),
                Ok(c) => self.err(format!("chpasswd for {user}: exit status {c}")),
                Err(e) => self.err(format!("chpasswd for {user}: {e}")),
            }
        }
        if !list.is_empty() {
            self.relabel(&["etc/shadow"], false);
            self.step("passwords", format!("{set} of {} set", list.len()));
        }
        self.mark("passwords", "done");
    }

    fn hostname(&mut self, plans: &[&Plan]) {
        let Some(name) = plans.iter().rev().find_map(|p| p.hostname.clone()) else {
            return;
        };
        if self.done("hostname") {
            return;
        }
        let short = name.split('.').next().unwrap_or(&name).to_string();
        if let Err(e) = self
            .root
            .write("etc/hostname", format!("{short}\n").as_bytes(), 0o644)
        {
            return self.err(format!("etc/hostname: {e}"));
        }
        if !self.exec.chroot {
            // The running system too; never with --root (the UTS namespace is the host's).
            if let Err(e) = self.exec.run(&["hostname", &short], None, None) {
                self.err(format!("hostname {short}: {e}"));
            }
        }
        self.step("hostname", short);
        self.mark("hostname", "done");
    }

    /// The (uid, gid) of `user[:group]` (names or numbers); `Err`: unknown, or why the
    /// account files could not be read.
    fn owner(&self, spec: &str) -> Result<(u32, u32), String> {
        let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
        let uid = match u.parse() {
            Ok(uid) => Some(uid),
            Err(_) => self.account("etc/passwd", |l| passwd_line(l, u).map(|e| e.0))?,
        };
        let gid = match g.parse() {
            Ok(gid) => Some(gid),
            Err(_) => self.account("etc/group", |l| group_line(l, g))?,
        };
        match (uid, gid) {
            (Some(uid), Some(gid)) => Ok((uid, gid)),
            _ => Err(format!(
                "owner \"{}\" unknown (no such user or group in the root)",
                crate::text::show(spec)
            )),
        }
    }

    /// `rel` with the symlinks of its directory resolved the way the booted system would,
    /// confined to the root ([`crate::sysroot::resolve_in`]): `/bin/x` lands in `usr/bin/x`
    /// on a merged-/usr system. A directory that does not exist yet stays as given (created
    /// by [`RootDir::write`], which follows no link).
    fn resolve_parent(&self, rel: &str) -> String {
        let Some((dir, name)) = rel.rsplit_once('/') else {
            return rel.to_string();
        };
        match crate::sysroot::resolve_in(&self.exec.root, &format!("/{dir}")) {
            Ok(d) if d.is_empty() => name.to_string(),
            Ok(d) => format!("{d}/{name}"),
            Err(_) => rel.to_string(),
        }
    }

    fn write_files(&mut self, plans: &[&Plan]) {
        if self.done("write-files") {
            return;
        }
        let files: Vec<userdata::WriteFile> = plans
            .iter()
            .flat_map(|p| p.write_files.iter().cloned())
            .collect();
        let mut written = 0usize;
        for f in &files {
            let f = &userdata::WriteFile {
                path: self.resolve_parent(&f.path),
                ..f.clone()
            };
            let put = if f.append {
                self.append(&f.path, &f.content, f.mode)
            } else {
                self.root.write(&f.path, &f.content, f.mode).map(|_| ())
            };
            if let Err(e) = put {
                self.err(format!("write_files /{}: {e}", f.path));
                continue;
            }
            written = written.saturating_add(1);
            if let Some(spec) = &f.owner {
                match self.owner(spec) {
                    Ok(o) => {
                        if let Err(e) = self.root.set_owner_mode(&f.path, None, Some(o)) {
                            self.err(format!("write_files /{}: {e}", f.path));
                        }
                    }
                    Err(why) => self.err(format!("write_files /{}: {why}", f.path)),
                }
            }
        }
        // OpenStack's injected ("personality") files.
        for f in &self.ctx.files {
            let rel = self.resolve_parent(f.path.trim_start_matches('/'));
            match crate::state::read_secret(&f.content.path) {
                Ok(data) => match self.root.write(&rel, &data, 0o644) {
                    Ok(_) => written = written.saturating_add(1),
                    Err(e) => self.err(format!("injected file {}: {e}", f.path)),
                },
                Err(e) => self.err(e),
            }
        }
        // What was asked and what was written: entries refused when the user data was read
        // count too.
        let refused = plans
            .iter()
            .fold(0usize, |n, p| n.saturating_add(p.write_files_refused));
        let n = files
            .len()
            .saturating_add(self.ctx.files.len())
            .saturating_add(refused);
        if n > 0 {
            let outcome = if written == n {
                format!("{n} files written")
            } else {
                format!(
                    "{written} of {n} files written, {} refused (see errors)",
                    n.saturating_sub(written)
                )
            };
            self.step("write-files", outcome);
        }
        self.mark("write-files", "done");
    }

    /// `write_files` with `append: true`: `content` added to the end of `rel` (created with
    /// `mode` if missing), never read back whole, so a file of any size is appended to and
    /// never replaced; then `mode` set, as cloud-init does. A link there is an error.
    fn append(&self, rel: &str, content: &[u8], mode: u32) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = self.root.open_append(rel, mode)?;
        file.write_all(content)?;
        file.sync_all()?;
        self.root.set_owner_mode(rel, Some(mode), None)
    }

    /// Heat's contract: the parts in /var/lib/heat-cfntools (0700), then `cfn-userdata` run
    /// once, its output in /var/log/heat-provision.log, then `provision-finished` touched
    /// (only when it succeeded, as Heat's loguserdata.py does).
    fn heat(&mut self, plans: &[&Plan]) {
        let files: Vec<(String, Vec<u8>)> = plans
            .iter()
            .flat_map(|p| p.cfn_files.iter().cloned())
            .collect();
        if files.is_empty() || self.done("heat-cfn-userdata") {
            return;
        }
        if let Err(e) = self.root.mkdir(HEAT_DIR, 0o700) {
            return self.err(format!("{HEAT_DIR}: {e}"));
        }
        for (name, data) in &files {
            let rel = format!("{HEAT_DIR}/{name}");
            if let Err(e) = self.root.write(&rel, data, 0o600) {
                self.err(format!("{rel}: {e}"));
            }
        }
        let userdata = format!("{HEAT_DIR}/cfn-userdata");
        if !self.root.exists(&userdata) {
            self.step("heat", format!("{} files, no cfn-userdata", files.len()));
            return self.mark("heat-cfn-userdata", "no cfn-userdata");
        }
        if let Err(e) = self.root.set_owner_mode(&userdata, Some(0o700), None) {
            return self.err(format!("{userdata}: {e}"));
        }
        self.mark("heat-cfn-userdata", "started");
        let log = self.log_file(HEAT_LOG);
        let path = format!("/{userdata}");
        match self.exec.run(&[path.as_str()], None, log.as_ref()) {
            Ok(0) => {
                let fin = format!("{HEAT_DIR}/provision-finished");
                if let Err(e) = self.root.write(&fin, b"", 0o644) {
                    self.err(format!("{fin}: {e}"));
                }
                self.step("heat cfn-userdata", "exit 0");
                self.mark("heat-cfn-userdata", "exit 0");
            }
            Ok(c) => {
                self.err(format!("cfn-userdata: exit status {c}"));
                self.mark("heat-cfn-userdata", &format!("exit {c}"));
            }
            Err(e) => self.err(format!("cfn-userdata: {e}")),
        }
    }

    /// The once-per-instance steps, in order. Azure's ready report comes after the steps that
    /// make the machine usable (host keys, users, passwords, hostname) and judges their
    /// errors; user data's files and scripts are the user's work and come after it.
    fn instance_steps(&mut self, plans: &[&Plan], id: &str) {
        let _ = self
            .root
            .write(CURRENT, format!("{id}\n").as_bytes(), 0o644);
        let before = self.status.errors.len();
        self.host_keys();
        self.users(plans);
        self.passwords(plans);
        self.hostname(plans);
        let provisioning = self
            .status
            .errors
            .get(before..)
            .unwrap_or_default()
            .to_vec();
        self.ready_report(Some(&provisioning));
        self.write_files(plans);
        self.heat(plans);
        self.scripts(plans);
        let done = format!("{}/done", self.inst);
        if let Err(e) = self.root.write(&done, b"", 0o644) {
            self.err(format!("{done}: {e}"));
        }
    }

    /// Azure's ready report ([`crate::providers::azure::report`]), when the context names a
    /// wire server, until one is taken for this instance (then recorded in `sem/`):
    /// `NotReady` if the context or `provisioning` (the errors of the provisioning steps:
    /// this run's, kept in the instance's state, or with `None` those an earlier boot kept)
    /// holds an error, else `Ready`. Bounded by its own deadline.
    fn ready_report(&mut self, provisioning: Option<&[String]>) {
        use crate::providers::azure::report;
        const STEP: &str = "azure-ready";
        let Some(endpoint) = report::endpoint(self.ctx) else {
            return;
        };
        if self.done(STEP) {
            return;
        }
        // The instance directory is 0700 (after a hand-off it may not exist yet).
        if let Err(e) = self.root.mkdir(&self.inst, 0o700) {
            return self.err(format!("{}: {e}", self.inst));
        }
        let kept = format!("{}/azure-provisioning-errors.json", self.inst);
        let provisioning = match provisioning {
            Some(errors) => {
                let json = serde_json::to_vec(errors).unwrap_or_default();
                if let Err(e) = self.root.write(&kept, &json, 0o600) {
                    self.err(format!("{kept}: {e}"));
                }
                errors.to_vec()
            }
            None => self
                .root
                .read(&kept)
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        };
        if report::preprovisioned(self.ctx) {
            self.step(
                STEP,
                "a pre-provisioned pool VM: not reported (not supported)",
            );
            return;
        }
        let url = match endpoint {
            Ok(u) => u,
            Err(e) => return self.err(format!("azure wire server: {e}")),
        };
        let health = report::health(self.ctx, &provisioning);
        let deadline = crate::deadline::Deadline::after(report::REPORT_TIMEOUT);
        match report::send(&url, health.clone(), deadline)
            .and_then(|o| report::describe(&o, &health))
        {
            Ok(note) => {
                self.step(STEP, note.clone());
                self.mark(STEP, &note);
            }
            Err(e) => self.err(format!("azure ready report to {url}: {e}")),
        }
    }

    /// Who gets the instance's keys and password: the platform's user (Azure's `UserName`)
    /// when it gave a valid one, else preroot.conf's `default_user`.
    fn default_user(&self) -> String {
        self.ctx
            .user
            .clone()
            .filter(|u| userdata::valid_user_name(u))
            .unwrap_or_else(|| self.conf.default_user.clone())
    }

    fn scripts(&mut self, plans: &[&Plan]) {
        let dir = format!("{}/scripts", self.inst);
        for script in plans.iter().flat_map(|p| p.scripts.iter()) {
            let step = format!("script {}", script.name);
            // The marker's existence decides: one that cannot be read (a link, damage) still
            // says the script ran, so it never runs twice.
            if self.done(&step) {
                let prev = self.root.read(&self.sem(&step)).ok().flatten();
                let prev = prev.map(|b| String::from_utf8_lossy(&b).trim().to_string());
                match prev.as_deref() {
                    Some("started") => log::warn!(
                        "apply: {step} started at an earlier boot and did not finish; not run again"
                    ),
                    None => log::warn!("apply: {step}: its marker is unreadable; taken as run"),
                    Some(_) => {}
                }
                continue;
            }
            self.mark(&step, "started");
            let outcome = self.run_user_script(&dir, script);
            self.mark(&step, &outcome);
            self.step(&step, outcome);
        }
    }
}

/// Where apply writes its status: `STATE/apply.json`.
fn save_status(state: &StateDir, status: &Status) {
    if let Ok(json) = serde_json::to_vec_pretty(status) {
        let _ = crate::output::ensure_dir(state.path(), 0o700);
        if let Err(e) = crate::output::write_atomic(state.path(), STATUS_FILE, &json, 0o644) {
            log::error!("apply: {}/{STATUS_FILE}: {e}", state.path().display());
        }
    }
}

/// The root to apply to, made absolute (every program runs as `chroot ROOT ...` from `/`,
/// where a relative ROOT names something else: each failed with exit status 125), and opened;
/// with the kernel command line that applies to it (the running kernel's when the root is
/// `/`, else none). The root carries the labels of its own SELinux policy unless
/// `--no-labels` (`labels` false) or `preroot.selinux=0` (docs/selinux.md); a policy that
/// cannot be read is one error in `errors`, and the root is written unlabelled.
fn open_root(
    target: Option<&Path>,
    labels: bool,
    errors: &mut Vec<String>,
) -> Result<(PathBuf, RootDir, crate::cmdline::Cmdline), String> {
    let path = match target {
        Some(t) => std::path::absolute(t).map_err(|e| format!("--root {}: {e}", t.display()))?,
        None => PathBuf::from("/"),
    };
    let cmdline = if path == Path::new("/") {
        // As run::read_cmdline reads it (a larger file is not a command line).
        let text = crate::output::read_file(Path::new("/proc/cmdline"), 1 << 20)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        crate::cmdline::parse(&text)
    } else {
        crate::cmdline::Cmdline::default()
    };
    let labels = labels && cmdline.selinux != Some(false);
    let (root, problem) = RootDir::open_labelled(&path, labels).map_err(|e| e.to_string())?;
    if let Some(p) = problem {
        log::error!("apply: {p}");
        errors.push(p);
    }
    Ok((path, root, cmdline))
}

/// `preroot apply [--root DIR]`: returns the exit status (0 done, 1 something failed).
pub fn apply(state: &StateDir, target: Option<&Path>, labels: bool) -> i32 {
    let mut status = Status {
        stage: "running".into(),
        ..Status::default()
    };
    save_status(state, &status);
    let mut label_errors = Vec::new();
    let opened = crate::state::load_context(state).and_then(|ctx| {
        open_root(target, labels, &mut label_errors)
            .map(|(path, root, cmdline)| (ctx, path, root, cmdline))
    });
    status.errors.append(&mut label_errors);
    let (ctx, root_path, root, cmdline) = match opened {
        Ok(all) => all,
        Err(e) => {
            status.stage = "done".into();
            status.errors.push(e.clone());
            save_status(state, &status);
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    let chroot = root_path != Path::new("/");
    let (conf, conf_problems) = match root.read(CONF) {
        Ok(Some(b)) => Config::parse(&String::from_utf8_lossy(&b)),
        Ok(None) => (Config::default(), Vec::new()),
        Err(e) => (Config::default(), vec![format!("{CONF}: {e}")]),
    };
    let line = |e: &String| crate::text::one_line(e);
    status.errors.extend(conf_problems.iter().map(line));
    let id = ctx
        .instance_id
        .clone()
        .unwrap_or_else(|| "no-instance-id".into());
    status.instance_id = ctx.instance_id.clone();
    let inst = format!("{INSTANCES}/{}", component(&id));
    let exec = Exec {
        root: root_path.clone(),
        chroot,
        timeout: conf.script_timeout,
        instance_id: id.clone(),
    };
    let mut errors = Vec::new();
    let user = crate::state::read_payload(ctx.user_data.as_ref(), &mut errors);
    let vendor = userdata::vendor_payload(&crate::state::read_payload(
        ctx.vendor_data.as_ref(),
        &mut errors,
    ));
    let vendor2 = userdata::vendor_payload(&crate::state::read_payload(
        ctx.vendor_data2.as_ref(),
        &mut errors,
    ));
    let user_plan = userdata::plan(&user, "user-data");
    let (vendor_plan, vendor2_plan) = if user_plan.vendor_data_disabled {
        (Plan::default(), Plan::default())
    } else {
        (
            userdata::plan(&vendor, "vendor-data"),
            userdata::plan(&vendor2, "vendor-data2"),
        )
    };
    status.errors.extend(errors.iter().map(line));
    let plans = [&vendor_plan, &vendor2_plan, &user_plan];
    let base_errors = status.errors.len();
    for p in plans {
        status.ignored.extend(p.ignored.iter().map(line));
        status.errors.extend(p.problems.iter().map(line));
    }
    for i in &status.ignored {
        log::warn!("apply: not applied: {i}");
    }
    let mut a = Applier {
        root,
        exec,
        conf,
        inst,
        status,
        ctx: &ctx,
    };
    if crate::cloudinit::wanted_for(&a.root, &a.conf, cmdline.handoff.as_deref()) {
        // Normally already written by the sysroot phase ([`handoff_sysroot`]); written again
        // (unchanged files are left alone) for roots that booted without it.
        a.status.errors.truncate(base_errors);
        for e in crate::cloudinit::write(&a.root, &ctx) {
            a.err(e);
        }
        a.step(
            "handoff",
            format!(
                "cloud-init: NoCloud seed in /{}",
                crate::cloudinit::SEED_DIR
            ),
        );
        let handoff_errors = a
            .status
            .errors
            .get(base_errors..)
            .unwrap_or_default()
            .to_vec();
        // cloud-init applies user data, keys and users itself: what preroot's reading of
        // user data found does not apply.
        a.status.ignored.clear();
        a.status.errors.truncate(base_errors);
        a.ready_report(Some(&handoff_errors));
        if let Some(p) = a.root.label_problems() {
            a.err(p);
        }
        a.status.stage = "done".into();
        save_status(state, &a.status);
        return i32::from(!a.status.errors.is_empty());
    }
    // The instance directory holds scripts and secrets: 0700 before anything goes in.
    if let Err(e) = a.root.mkdir(&a.inst, 0o700) {
        a.err(format!("{}: {e}", a.inst));
        a.status.stage = "done".into();
        save_status(state, &a.status);
        return 1;
    }
    a.boot_scripts(&plans);
    let new_instance = !a.root.exists(&format!("{}/done", a.inst));
    a.status.new_instance = new_instance;
    if new_instance {
        a.instance_steps(&plans, &id);
    } else {
        log::info!("apply: instance {id} already applied; only boot commands ran");
        a.step("instance", "already applied; only boot commands ran");
        // A ready report no wire server took at an earlier boot is tried again, judging
        // the provisioning errors that boot recorded.
        a.ready_report(None);
    }
    if let Some(p) = a.root.label_problems() {
        a.err(p);
    }
    a.status.stage = "done".into();
    let status = a.status;
    let result = serde_json::to_vec_pretty(&status).unwrap_or_default();
    let _ = a
        .root
        .write(&format!("{}/status.json", a.inst), &result, 0o600);
    save_status(state, &status);
    for e in &status.errors {
        eprintln!("preroot: apply: {e}");
    }
    i32::from(!status.errors.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_helpers() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001::/home/alice:/bin/sh\n";
        assert_eq!(
            passwd_entry(passwd, "alice"),
            Some((1000, 1001, "/home/alice".into()))
        );
        assert_eq!(passwd_entry(passwd, "bob"), None);
        assert_eq!(group_id("adm:x:4:\nwheel:x:10:a\n", "wheel"), Some(10));
        assert_eq!(
            merge_keys(
                "ssh-rsa OLD\n",
                &["ssh-rsa OLD".into(), "ssh-ed25519 NEW".into()]
            ),
            ("ssh-rsa OLD\nssh-ed25519 NEW\n".to_string(), vec![])
        );
        assert_eq!(
            merge_keys("", &["a\nb".into(), "ssh-rsa\tK c".into()]),
            ("ssh-rsa\tK c\n".to_string(), vec!["a\nb".to_string()]),
            "refused by name, never dropped silently"
        );
        assert_eq!(component("i-123/../x"), "i-123_.._x");
        // Issue 16 item 18: streamed, no cap on the file; overlong lines read past.
        let big = format!(
            "{}{}\nalice:x:1000:1001::/home/alice:/bin/sh\n",
            "u:x:1:1::/:/bin/sh\n".repeat(100_000),
            "y".repeat(200_000)
        );
        assert!(big.len() > 2 << 20);
        assert_eq!(
            find_line(big.as_bytes(), |l| passwd_line(l, "alice")).unwrap(),
            Some((1000, 1001, "/home/alice".into()))
        );
        assert_eq!(
            find_line(big.as_bytes(), |l| passwd_line(l, "bob")).unwrap(),
            None
        );
        assert_eq!(component(".."), "_");
    }
}
