//! `preroot apply`: the userspace half, run once per instance in the booted system by
//! `preroot-apply.service` (after the network is online, before sshd accepts logins).
//!
//! Reads the context and the secrets the initramfs left in the state directory, then, in a
//! system root (`/`, or `--root DIR` for tests and images):
//! 1. every boot: `bootcmd` and boothooks (vendor data first, then user data);
//! 2. once per instance id (state in `var/lib/preroot/instances/ID/`, one marker per step in
//!    `sem/`, so an interrupted run resumes and a started script never runs twice): new ssh
//!    host keys (fingerprints printed), users and the default user (`useradd`), ssh keys
//!    (keys already there stay), sudoers, passwords (SHA-512 crypt, `chpasswd -e`),
//!    hostname, `write_files`, OpenStack injected files, Heat's `cfn-userdata`, scripts and
//!    `runcmd` (output to `var/log/preroot-user-data.log`, exit status recorded).
//!
//! Every program runs with a deadline, in a process group of its own (at the deadline the
//! whole group is stopped: SIGTERM, a grace, SIGKILL; a program that exits by itself keeps
//! its daemons), with a fixed environment, and — with `--root` — chrooted into the root
//! (`chroot DIR ...`), never on the host. The cloud-init hand-off ([`write_handoff`]) is
//! also written by the initramfs's sysroot phase ([`handoff_sysroot`]). Files go through [`RootDir`] (no
//! symlink followed). Passwords and user data are never logged. The decisions are in
//! [`crate::userdata`] (pure); this module is the I/O. `/etc/preroot/preroot.conf` is read by
//! [`Config::parse`] (docs/apply.md).

use crate::context::Context;
use crate::output::RootDir;
use crate::state::StateDir;
use crate::userdata::{self, Plan, Script, UserSpec};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// preroot's state in the root, per instance.
pub const INSTANCES: &str = "var/lib/preroot/instances";
/// The id of the instance last applied (plain text).
pub const CURRENT: &str = "var/lib/preroot/instance-id";
pub const USER_DATA_LOG: &str = "var/log/preroot-user-data.log";
pub const HEAT_DIR: &str = "var/lib/heat-cfntools";
pub const HEAT_LOG: &str = "var/log/heat-provision.log";
pub const CONF: &str = "etc/preroot/preroot.conf";
/// This boot's outcome, in the state directory (`preroot status`).
pub const STATUS_FILE: &str = "apply.json";
const SUDOERS: &str = "etc/sudoers.d/90-preroot-users";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `/etc/preroot/preroot.conf`: `key = value` lines, `#` comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `default_user`: who gets the instance's ssh keys and password [cloud-user].
    pub default_user: String,
    /// `default_user_groups`: comma-separated supplementary groups [none].
    pub default_user_groups: Vec<String>,
    /// `default_user_sudo`: a sudoers rule, or `none` [ALL=(ALL) NOPASSWD:ALL].
    pub default_user_sudo: Option<String>,
    /// `default_user_shell` [/bin/bash if the root has it, else /bin/sh].
    pub default_user_shell: Option<String>,
    /// `ssh_host_keys = regenerate|keep`: new host keys for a new instance [regenerate].
    pub regenerate_host_keys: bool,
    /// `script_timeout`: seconds each program may run before it is killed [1800].
    pub script_timeout: Duration,
    /// `handoff = cloud-init|none`: leave user data to cloud-init [detected: the root has
    /// cloud-init, enabled] (see [`crate::cloudinit`]).
    pub handoff: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_user: "cloud-user".into(),
            default_user_groups: Vec::new(),
            default_user_sudo: Some("ALL=(ALL) NOPASSWD:ALL".into()),
            default_user_shell: None,
            regenerate_host_keys: true,
            script_timeout: Duration::from_secs(1800),
            handoff: None,
        }
    }
}

impl Config {
    /// Parses the file; a bad line is reported and skipped, the rest still counts.
    pub fn parse(text: &str) -> (Config, Vec<String>) {
        let mut c = Config::default();
        let mut problems = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = n.saturating_add(1);
            let Some((key, value)) = line.split_once('=') else {
                problems.push(format!("{CONF}:{at}: not key = value"));
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "default_user" if userdata::valid_user_name(value) => c.default_user = value.into(),
                "default_user_groups" => {
                    c.default_user_groups = value
                        .split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                }
                "default_user_sudo" => {
                    c.default_user_sudo =
                        (value != "none" && !value.is_empty()).then(|| value.to_string())
                }
                "default_user_shell" if value.starts_with('/') => {
                    c.default_user_shell = Some(value.into())
                }
                "ssh_host_keys" if value == "regenerate" || value == "keep" => {
                    c.regenerate_host_keys = value == "regenerate"
                }
                "script_timeout" => match value.parse::<u64>() {
                    Ok(s) if s > 0 => c.script_timeout = Duration::from_secs(s),
                    _ => problems.push(format!("{CONF}:{at}: script_timeout {value:?}")),
                },
                "handoff" if value == "cloud-init" || value == "none" => {
                    c.handoff = Some(value.to_string())
                }
                _ => problems.push(format!("{CONF}:{at}: {key} = {value:?} not understood")),
            }
        }
        (c, problems)
    }
}

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
    /// a process group of its own; at the deadline the whole group is stopped
    /// ([`stop_group`]), so a script's background children die with it. A program that exits
    /// by itself leaves its children running (daemons a script starts on purpose, as under
    /// cloud-init). Returns the exit code (signals as 128 + N).
    fn run(&self, argv: &[&str], stdin: Option<&[u8]>, log: Option<&File>) -> Result<i32, String> {
        let Some((prog, args)) = argv.split_first() else {
            return Err("empty command".into());
        };
        let mut cmd = if self.chroot {
            let chroot = [
                "/usr/sbin/chroot",
                "/usr/bin/chroot",
                "/sbin/chroot",
                "/bin/chroot",
            ]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("no chroot program on this system")?;
            let mut c = Command::new(chroot);
            c.arg(&self.root).arg(prog);
            c
        } else {
            Command::new(prog)
        };
        use std::os::unix::process::CommandExt;
        cmd.args(args)
            .process_group(0)
            .current_dir("/")
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .env("INSTANCE_ID", &self.instance_id)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        match log {
            Some(f) => {
                let out = f.try_clone().map_err(|e| e.to_string())?;
                let err = f.try_clone().map_err(|e| e.to_string())?;
                cmd.stdout(out).stderr(err);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let mut child = cmd.spawn().map_err(|e| format!("{prog}: {e}"))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            // Small inputs (a chpasswd line): fits the pipe buffer, cannot block.
            let _ = pipe.write_all(data);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    use std::os::unix::process::ExitStatusExt;
                    return Ok(status
                        .code()
                        .or_else(|| status.signal().map(|s| s.saturating_add(128)))
                        .unwrap_or(-1));
                }
                Ok(None) if Instant::now() >= deadline => {
                    let left = stop_group(&mut child);
                    return Err(format!(
                        "{prog}: killed with its process group after {} s (script_timeout){}",
                        self.timeout.as_secs(),
                        if left {
                            "; some of it would not die"
                        } else {
                            ""
                        }
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("{prog}: {e}")),
            }
        }
    }
}

/// How long a script's process group has between `SIGTERM` and `SIGKILL`.
const GRACE: Duration = Duration::from_secs(2);
/// How long to wait for killed processes to be gone before giving up.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Stops `child` and everything in its process group: `SIGTERM`, up to [`GRACE`] for them to
/// end, then `SIGKILL`; reaps `child`. Processes that left the group (`setsid`) are not
/// reached. Returns whether something was still in the group after [`KILL_WAIT`] (zombies
/// their new parent has not reaped yet count).
fn stop_group(child: &mut std::process::Child) -> bool {
    use crate::sys::spawn::{signal_group, GroupSignal};
    let pgid = child.id();
    // Every wait below is bounded: `until` polls `done` until its deadline.
    let until = |limit: Duration, child: &mut std::process::Child| -> bool {
        let end = Instant::now() + limit;
        let mut reaped = false;
        loop {
            reaped = reaped || matches!(child.try_wait(), Ok(Some(_)) | Err(_));
            let empty = matches!(signal_group(pgid, GroupSignal::Probe), Ok(false) | Err(_));
            if reaped && empty {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if signal_group(pgid, GroupSignal::Terminate).is_err() {
        let _ = child.kill();
    }
    if until(GRACE, child) {
        return false;
    }
    log::warn!("apply: process group {pgid} still running after SIGTERM; SIGKILL");
    if signal_group(pgid, GroupSignal::Kill).is_err() {
        let _ = child.kill();
    }
    !until(KILL_WAIT, child)
}

/// A passwd entry: (uid, gid, home).
pub fn passwd_entry(passwd: &str, name: &str) -> Option<(u32, u32, String)> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        if f.next()? != name {
            return None;
        }
        let _pw = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        let _gecos = f.next()?;
        let home = f.next()?.to_string();
        Some((uid, gid, home))
    })
}

/// A group's gid from `/etc/group` text.
pub fn group_id(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// Existing `authorized_keys` plus the new keys not already in it, in order.
pub fn merge_keys(existing: &str, keys: &[String]) -> String {
    let mut out = existing.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let have: Vec<&str> = existing.lines().map(str::trim).collect();
    let mut added: Vec<&str> = Vec::new();
    for k in keys {
        let k = k.trim();
        if k.is_empty() || k.contains('\n') || have.contains(&k) || added.contains(&k) {
            continue;
        }
        out.push_str(k);
        out.push('\n');
        added.push(k);
    }
    out
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
    fn err(&mut self, what: impl Into<String>) {
        let what = what.into();
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

    fn text(&self, rel: &str) -> String {
        self.root
            .read(rel)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
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
        // Fingerprints to the console (the unit's output), as cloud-init prints them.
        let fp = format!("{}/ssh-host-key-fingerprints", self.inst);
        let _ = self.root.remove(&fp);
        let log = self.log_file(&fp);
        let pubs: Vec<String> = self
            .root
            .list("etc/ssh")
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, d)| !d && n.starts_with("ssh_host_") && n.ends_with(".pub"))
            .map(|(n, _)| n)
            .collect();
        for n in &pubs {
            let path = format!("/etc/ssh/{n}");
            if let Err(e) = self
                .exec
                .run(&["ssh-keygen", "-l", "-f", &path], None, log.as_ref())
            {
                self.err(format!("ssh-keygen -l {path}: {e}"));
            }
        }
        let prints = self.text(&fp);
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
        if let Some(e) = passwd_entry(&self.text("etc/passwd"), name) {
            return Some(e);
        }
        let groups_text = self.text("etc/group");
        for g in &spec.groups {
            if group_id(&groups_text, g).is_none() && userdata::valid_user_name(g) {
                if let Err(e) = self.exec.run(&["groupadd", g], None, None) {
                    self.err(format!("groupadd {g}: {e}"));
                }
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
        let entry = passwd_entry(&self.text("etc/passwd"), name);
        if entry.is_none() {
            self.err(format!("user {name}: not in /etc/passwd after useradd"));
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
        let result = (|| -> std::io::Result<()> {
            self.root.mkdir(&ssh, 0o700)?;
            self.root.set_owner_mode(&ssh, None, Some((*uid, *gid)))?;
            let existing = self
                .root
                .read(&file)?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            self.root
                .write(&file, merge_keys(&existing, keys).as_bytes(), 0o600)?;
            self.root.set_owner_mode(&file, None, Some((*uid, *gid)))
        })();
        match result {
            Ok(()) => self.step(
                &format!("ssh-keys {name}"),
                format!("{} keys offered", keys.len()),
            ),
            Err(e) => self.err(format!("{file}: {e}")),
        }
    }

    fn users(&mut self, plans: &[&Plan]) {
        if self.done("users") {
            return;
        }
        let default = self.conf.default_user.clone();
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
            for rule in &spec.sudo {
                sudoers.push_str(&format!("{default} {rule}\n"));
            }
        }
        for spec in specs.iter().filter(|s| s.name.is_some()) {
            let name = spec.name.clone().unwrap_or_default();
            if let Some(entry) = self.ensure_user(&name, spec) {
                self.authorize(&name, &entry, &spec.ssh_keys);
            }
            for rule in &spec.sudo {
                if !rule.contains('\n') {
                    sudoers.push_str(&format!("{name} {rule}\n"));
                }
            }
        }
        if !sudoers.is_empty() {
            let body = format!("# Written by preroot apply (cloud-config users)\n{sudoers}");
            if let Err(e) = self.root.write(SUDOERS, body.as_bytes(), 0o440) {
                self.err(format!("{SUDOERS}: {e}"));
            }
        }
        self.mark("users", "done");
    }

    fn passwords(&mut self, plans: &[&Plan]) {
        if self.done("passwords") {
            return;
        }
        let mut list: Vec<userdata::Password> = Vec::new();
        if let Some(secret) = &self.ctx.password {
            match std::fs::read(&secret.path) {
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
                Err(e) => self.err(format!("{}: {e}", secret.path)),
            }
        }
        for p in plans {
            list.extend(p.passwords.iter().cloned());
        }
        let mut set = 0usize;
        for pw in &list {
            let user = pw
                .user
                .clone()
                .unwrap_or_else(|| self.conf.default_user.clone());
            if !userdata::valid_user_name(&user) || pw.value.contains(['\n', ':']) && !pw.hashed {
                self.err(format!(
                    "password for {user:?}: refused (bad user name or value)"
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

    fn owner(&self, spec: &str) -> Option<(u32, u32)> {
        let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
        let passwd = self.text("etc/passwd");
        let group = self.text("etc/group");
        let uid = u
            .parse()
            .ok()
            .or_else(|| passwd_entry(&passwd, u).map(|e| e.0))?;
        let gid = g.parse().ok().or_else(|| group_id(&group, g))?;
        Some((uid, gid))
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
        for f in &files {
            let f = &userdata::WriteFile {
                path: self.resolve_parent(&f.path),
                ..f.clone()
            };
            let mut data = Vec::new();
            if f.append {
                data = self.root.read(&f.path).ok().flatten().unwrap_or_default();
            }
            data.extend_from_slice(&f.content);
            if let Err(e) = self.root.write(&f.path, &data, f.mode) {
                self.err(format!("write_files /{}: {e}", f.path));
                continue;
            }
            if let Some(spec) = &f.owner {
                match self.owner(spec) {
                    Some(o) => {
                        if let Err(e) = self.root.set_owner_mode(&f.path, None, Some(o)) {
                            self.err(format!("write_files /{}: {e}", f.path));
                        }
                    }
                    None => self.err(format!("write_files /{}: owner {spec:?} unknown", f.path)),
                }
            }
        }
        // OpenStack's injected ("personality") files.
        for f in &self.ctx.files {
            let rel = self.resolve_parent(f.path.trim_start_matches('/'));
            match std::fs::read(&f.content.path) {
                Ok(data) => {
                    if let Err(e) = self.root.write(&rel, &data, 0o644) {
                        self.err(format!("injected file {}: {e}", f.path));
                    }
                }
                Err(e) => self.err(format!("{}: {e}", f.content.path)),
            }
        }
        let n = files.len().saturating_add(self.ctx.files.len());
        if n > 0 {
            self.step("write-files", format!("{n} files"));
        }
        self.mark("write-files", "done");
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

    fn scripts(&mut self, plans: &[&Plan]) {
        let dir = format!("{}/scripts", self.inst);
        for script in plans.iter().flat_map(|p| p.scripts.iter()) {
            let step = format!("script {}", script.name);
            if let Some(prev) = self
                .root
                .read(&self.sem(&step))
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            {
                if prev == "started" {
                    log::warn!("apply: {step} started at an earlier boot and did not finish; not run again");
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

/// Reads a secret payload the context references, or nothing.
fn payload(secret: Option<&crate::context::SecretFile>, errors: &mut Vec<String>) -> Vec<u8> {
    let Some(s) = secret else {
        return Vec::new();
    };
    match std::fs::read(&s.path) {
        Ok(b) => b,
        Err(e) => {
            errors.push(format!("{}: {e}", s.path));
            Vec::new()
        }
    }
}

/// Vendor data as cloud-init takes it: OpenStack's `vendor_data.json` is JSON whose
/// `cloud-init` member (a string) is the payload; anything else is the payload itself.
pub fn vendor_payload(data: &[u8]) -> Vec<u8> {
    if crate::context::detect_payload_type(data) != crate::context::PayloadType::Json {
        return data.to_vec();
    }
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(v) => v
            .get("cloud-init")
            .and_then(|c| c.as_str())
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Is the cloud-init hand-off wanted for `root`? `cmdline` is the kernel command line text
/// (`preroot.handoff=`), `conf` the root's preroot.conf; detected when the root has
/// cloud-init, enabled ([`crate::cloudinit::wanted`]).
pub fn handoff_wanted(root: &RootDir, conf: &Config, cmdline: &str) -> bool {
    let installed =
        root.exists("usr/bin/cloud-init") && !root.exists("etc/cloud/cloud-init.disabled");
    crate::cloudinit::wanted(
        crate::cloudinit::cmdline_value(cmdline),
        conf.handoff.as_deref(),
        installed,
    )
}

/// Writes the cloud-init hand-off (NoCloud seed and drop-in, [`crate::cloudinit::seed`]) for
/// `ctx` into `root`. Returns the problems, one line each (unreadable secrets, failed
/// writes); what could be written is.
pub fn write_handoff(root: &RootDir, ctx: &Context) -> Vec<String> {
    let mut errors = Vec::new();
    let user = payload(ctx.user_data.as_ref(), &mut errors);
    let vendor = vendor_payload(&payload(ctx.vendor_data.as_ref(), &mut errors));
    for (rel, data, mode) in crate::cloudinit::seed(ctx, &user, &vendor) {
        if let Err(e) = root.write(&rel, &data, mode) {
            errors.push(format!("{rel}: {e}"));
        }
    }
    errors
}

/// The sysroot phase's part of the hand-off: cloud-init's generator (`ds-identify`) and its
/// local stage run long before `preroot-apply.service` (which waits for the network), and
/// ds-identify's choice of datasource overrides `/etc/cloud/cloud.cfg.d`. So the seed and
/// the drop-in must be in the root before it boots: written here, from the initramfs, into
/// the root at `target`. Returns a one-line summary, `None` when no hand-off is wanted.
pub fn handoff_sysroot(ctx: &mut Context, target: &Path, cmdline: &str) -> Option<String> {
    let root = match RootDir::open(target) {
        Ok(r) => r,
        Err(e) => {
            ctx.error("handoff", &target.display().to_string(), e.to_string());
            return None;
        }
    };
    let (conf, _) = match root.read(CONF) {
        Ok(Some(b)) => Config::parse(&String::from_utf8_lossy(&b)),
        _ => (Config::default(), Vec::new()),
    };
    if !handoff_wanted(&root, &conf, cmdline) {
        return None;
    }
    let errors = write_handoff(&root, ctx);
    for e in &errors {
        ctx.error("handoff", crate::cloudinit::SEED_DIR, e.clone());
    }
    let summary = format!(
        "cloud-init hand-off: NoCloud seed in /{} and /{}{}",
        crate::cloudinit::SEED_DIR,
        crate::cloudinit::DROPIN,
        if errors.is_empty() {
            ""
        } else {
            " (with errors)"
        }
    );
    log::info!("sysroot: {summary}");
    Some(summary)
}

/// `preroot apply [--root DIR]`: returns the exit status (0 done, 1 something failed).
pub fn apply(state: &StateDir, target: Option<&Path>) -> i32 {
    let mut status = Status {
        stage: "running".into(),
        ..Status::default()
    };
    save_status(state, &status);
    let ctx = match crate::run::load(state) {
        Ok(c) => c,
        Err(e) => {
            status.stage = "done".into();
            status.errors.push(e.clone());
            save_status(state, &status);
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    let root_path = target.unwrap_or(Path::new("/")).to_path_buf();
    let root = match RootDir::open(&root_path) {
        Ok(r) => r,
        Err(e) => {
            status.stage = "done".into();
            status.errors.push(e.to_string());
            save_status(state, &status);
            eprintln!("preroot: {e}");
            return 1;
        }
    };
    let (conf, conf_problems) = match root.read(CONF) {
        Ok(Some(b)) => Config::parse(&String::from_utf8_lossy(&b)),
        Ok(None) => (Config::default(), Vec::new()),
        Err(e) => (Config::default(), vec![format!("{CONF}: {e}")]),
    };
    status.errors.extend(conf_problems);
    let id = ctx
        .instance_id
        .clone()
        .unwrap_or_else(|| "no-instance-id".into());
    status.instance_id = ctx.instance_id.clone();
    let inst = format!("{INSTANCES}/{}", component(&id));
    let chroot = root_path != Path::new("/");
    let exec = Exec {
        root: root_path.clone(),
        chroot,
        timeout: conf.script_timeout,
        instance_id: id.clone(),
    };
    let mut errors = Vec::new();
    let user = payload(ctx.user_data.as_ref(), &mut errors);
    let vendor = vendor_payload(&payload(ctx.vendor_data.as_ref(), &mut errors));
    let vendor2 = vendor_payload(&payload(ctx.vendor_data2.as_ref(), &mut errors));
    let user_plan = userdata::plan(&user, "user-data");
    let (vendor_plan, vendor2_plan) = if user_plan.vendor_data_disabled {
        (Plan::default(), Plan::default())
    } else {
        (
            userdata::plan(&vendor, "vendor-data"),
            userdata::plan(&vendor2, "vendor-data2"),
        )
    };
    status.errors.extend(errors);
    let plans = [&vendor_plan, &vendor2_plan, &user_plan];
    let base_errors = status.errors.len();
    for p in plans {
        status.ignored.extend(p.ignored.iter().cloned());
        status.errors.extend(p.problems.iter().cloned());
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
    let cmdline = if chroot {
        String::new()
    } else {
        std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
    };
    if handoff_wanted(&a.root, &a.conf, &cmdline) {
        // Normally already written by the sysroot phase ([`handoff_sysroot`]); written again
        // (unchanged files are left alone) for roots that booted without it.
        a.status.errors.truncate(base_errors);
        for e in write_handoff(&a.root, &ctx) {
            a.err(e);
        }
        a.step(
            "handoff",
            format!(
                "cloud-init: NoCloud seed in /{}",
                crate::cloudinit::SEED_DIR
            ),
        );
        // cloud-init applies user data, keys and users itself: what preroot's reading of
        // user data found does not apply.
        a.status.ignored.clear();
        a.status.errors.truncate(base_errors);
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
        let _ = a.root.write(CURRENT, format!("{id}\n").as_bytes(), 0o644);
        a.host_keys();
        a.users(&plans);
        a.passwords(&plans);
        a.hostname(&plans);
        a.write_files(&plans);
        a.heat(&plans);
        a.scripts(&plans);
        let done = format!("{}/done", a.inst);
        if let Err(e) = a.root.write(&done, b"", 0o644) {
            a.err(format!("{done}: {e}"));
        }
    } else {
        log::info!("apply: instance {id} already applied; only boot commands ran");
        a.step("instance", "already applied; only boot commands ran");
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
    fn config() {
        let (c, p) = Config::parse(
            "# comment\ndefault_user = debian\ndefault_user_groups = adm, sudo\n\
             default_user_sudo = none\nssh_host_keys = keep\nscript_timeout = 5\nbogus\nx = y\n",
        );
        assert_eq!(c.default_user, "debian");
        assert_eq!(c.default_user_groups, ["adm", "sudo"]);
        assert_eq!(c.default_user_sudo, None);
        assert!(!c.regenerate_host_keys);
        assert_eq!(c.script_timeout, Duration::from_secs(5));
        assert_eq!(p.len(), 2, "{p:?}");
    }

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
            "ssh-rsa OLD\nssh-ed25519 NEW\n"
        );
        assert_eq!(merge_keys("", &["a\nb".into()]), "");
        assert_eq!(component("i-123/../x"), "i-123_.._x");
        assert_eq!(component(".."), "_");
        assert_eq!(vendor_payload(br#"{"cloud-init": "yes"}"#), b"yes".to_vec());
        assert_eq!(vendor_payload(br#"{"x": 1}"#), Vec::<u8>::new());
    }
}
