//! `/etc/preroot/preroot.conf` in the booted system's root: the image builder's settings for
//! `preroot apply` (the default user, its groups, sudo rule and shell, ssh host keys, the
//! script timeout, the cloud-init hand-off). `key = value` lines, `#` comments; docs/apply.md.
//!
//! Owns the keys, their defaults and their validation. Pure: text in, settings and one
//! problem line per bad line out; a bad line is reported and skipped, never fatal. Never reads
//! the file itself (apply and the sysroot phase do, through their root).

use crate::text::show;
use crate::valid;
use std::time::Duration;

/// Where the file is, relative to the root.
pub const CONF: &str = "etc/preroot/preroot.conf";

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

/// A preroot.conf key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    DefaultUser,
    DefaultUserGroups,
    DefaultUserSudo,
    DefaultUserShell,
    SshHostKeys,
    ScriptTimeout,
    Handoff,
}

/// One declared key: name, value, default and help (the man page preroot.conf(5) is made
/// from these).
#[derive(Debug, Clone, Copy)]
pub struct KeyDecl {
    pub key: Key,
    pub name: &'static str,
    pub value: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every key, declared once: [`Config::parse`] dispatches on it.
pub const KEYS: &[KeyDecl] = &[
    KeyDecl {
        key: Key::DefaultUser,
        name: "default_user",
        value: "NAME",
        default: "cloud-user",
        help: "Who gets the instance's ssh keys and password (created when missing).",
    },
    KeyDecl {
        key: Key::DefaultUserGroups,
        name: "default_user_groups",
        value: "GROUP[,GROUP...]",
        default: "none",
        help: "The default user's supplementary groups.",
    },
    KeyDecl {
        key: Key::DefaultUserSudo,
        name: "default_user_sudo",
        value: "RULE|none",
        default: "ALL=(ALL) NOPASSWD:ALL",
        help: "The default user's sudoers rule, or none.",
    },
    KeyDecl {
        key: Key::DefaultUserShell,
        name: "default_user_shell",
        value: "PATH",
        default: "/bin/bash if the root has it, else /bin/sh",
        help: "The default user's login shell (an absolute path).",
    },
    KeyDecl {
        key: Key::SshHostKeys,
        name: "ssh_host_keys",
        value: "regenerate|keep",
        default: "regenerate",
        help: "New ssh host keys for a new instance, or keep the image's.",
    },
    KeyDecl {
        key: Key::ScriptTimeout,
        name: "script_timeout",
        value: "SECONDS",
        default: "1800",
        help: "How long each program apply runs may take before its process group is killed.",
    },
    KeyDecl {
        key: Key::Handoff,
        name: "handoff",
        value: "cloud-init|none",
        default: "detected: the root has cloud-init, enabled",
        help: "Leave user data, keys and users to the image's cloud-init (preroot writes a \
            NoCloud seed and a drop-in for it), or never.",
    },
];

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
            let Some(known) = KEYS.iter().find(|k| k.name == key) else {
                let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
                problems.push(format!(
                    "{CONF}:{at}: unknown key \"{}\" (known: {})",
                    show(key),
                    names.join(", ")
                ));
                continue;
            };
            if let Err(rule) = c.set(known.key, value) {
                problems.push(format!(
                    "{CONF}:{at}: {key} = \"{}\" refused: {rule}; the default is kept",
                    show(value)
                ));
            }
        }
        (c, problems)
    }

    /// Sets `key` to `value`; `Err`: the rule the value broke.
    fn set(&mut self, key: Key, value: &str) -> Result<(), String> {
        match key {
            Key::DefaultUser if valid::valid_user_name(value) => self.default_user = value.into(),
            Key::DefaultUser => {
                return Err("not a user name ([a-z_][a-z0-9_-]*, at most 32 characters)".into())
            }
            Key::DefaultUserGroups => {
                let groups: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect();
                if let Some(bad) = groups.iter().find(|g| !valid::valid_user_name(g)) {
                    return Err(format!("group \"{}\" is not a group name", show(bad)));
                }
                self.default_user_groups = groups;
            }
            Key::DefaultUserSudo if value == "none" || value.is_empty() => {
                self.default_user_sudo = None
            }
            Key::DefaultUserSudo => {
                valid::sudo_rule(value)?;
                self.default_user_sudo = Some(value.to_string())
            }
            Key::DefaultUserShell
                if value.starts_with('/') && !value.contains(char::is_control) =>
            {
                self.default_user_shell = Some(value.into())
            }
            Key::DefaultUserShell => return Err("not an absolute path".into()),
            Key::SshHostKeys if value == "regenerate" || value == "keep" => {
                self.regenerate_host_keys = value == "regenerate"
            }
            Key::SshHostKeys => return Err("not regenerate or keep".into()),
            // Any number of seconds: the wait saturates far in the future (crate::deadline).
            Key::ScriptTimeout => match value.parse::<u64>() {
                Ok(s) if s > 0 => self.script_timeout = Duration::from_secs(s),
                _ => return Err("not a whole number of seconds, 1 or more".into()),
            },
            Key::Handoff if value == "cloud-init" || value == "none" => {
                self.handoff = Some(value.to_string())
            }
            Key::Handoff => return Err("not cloud-init or none".into()),
        }
        Ok(())
    }
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
        assert!(p[1].contains("unknown key \"x\""), "{p:?}");
    }

    /// Issue 16 items 14 and 22: the largest timeout is taken (the wait saturates, no
    /// overflow), and each refused value says which rule it broke; a sudo rule that would
    /// join the next line of the sudoers file is refused.
    #[test]
    fn values_and_reasons() {
        let (c, p) = Config::parse("script_timeout = 18446744073709551615\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(c.script_timeout, Duration::from_secs(u64::MAX));
        let (c, p) = Config::parse(
            "script_timeout = 0\ndefault_user = Root;rm\ndefault_user_sudo = ALL=(ALL) ALL \\\n\
             ssh_host_keys = maybe\nhandoff = x\ndefault_user_shell = bash\n",
        );
        assert_eq!(c, Config::default());
        for (i, why) in [
            "seconds",
            "not a user name",
            "ends with a backslash",
            "regenerate or keep",
            "cloud-init or none",
            "absolute path",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                p[i].contains("refused: ") && p[i].contains(why),
                "{i}: {p:?}"
            );
        }
    }
}
