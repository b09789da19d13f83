//! `/etc/selinux/config` of the root being configured: is SELinux on, and which policy.
//!
//! Owns the two keys preroot needs, read as libselinux 3.4 reads them
//! (`libselinux/src/selinux_config.c`, `load_policy.c`):
//! - `SELINUX=` at the very start of a line (no leading blank), its value compared
//!   case-insensitively by prefix with `enforcing`, `permissive`, `disabled`; the first line
//!   with a known value decides. Only `disabled` turns SELinux off: with no such line the
//!   init's `selinux_init_load_policy` still loads the policy (its `seconfig` stays -2);
//! - `SELINUXTYPE=` (case-insensitive key, leading blanks allowed, `#` comments), trailing
//!   blanks and control bytes cut; the last such line wins; `targeted` when there is none.
//!
//! Not read: `SETLOCALDEFS`, `REQUIRESEUSERS`, the kernel command line (`selinux=0`,
//! `enforcing=`): labels are cheap, harmless without a policy, and right if the system later
//! boots with one. Pure: takes the file's bytes.
//!
//! Panic contract: [`parse`] never panics.
#![deny(clippy::arithmetic_side_effects)]

/// libselinux's default policy type (`SELINUXDEFAULT`).
pub const DEFAULT_TYPE: &str = "targeted";
/// Longest `SELINUXTYPE` accepted (one path component).
const MAX_TYPE: usize = 255;

/// What `SELINUX=` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforcing,
    Permissive,
    Disabled,
    /// No line with a known value: the policy is loaded anyway (permissive unless the kernel
    /// command line says `enforcing=1`).
    Unset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// `SELINUXTYPE`: the directory under `/etc/selinux/`.
    pub policy_type: String,
}

impl Config {
    /// Does the booted system label files with a policy?
    pub fn enabled(&self) -> bool {
        self.mode != Mode::Disabled
    }
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|b| b.is_ascii_whitespace() || **b == 0x0b)
        .count();
    s.get(n..).unwrap_or_default()
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Parses the file. `Err` names a `SELINUXTYPE` that cannot be a directory name (empty, `.`,
/// `..`, a `/`, NUL or non-ASCII, over 255 bytes): libselinux would look somewhere else, and
/// preroot will not look outside `/etc/selinux/`.
pub fn parse(text: &[u8]) -> Result<Config, String> {
    let mut mode = Mode::Unset;
    let mut policy_type: Option<&[u8]> = None;
    for line in text.split(|b| *b == b'\n') {
        if mode == Mode::Unset {
            if let Some(value) = line.strip_prefix(b"SELINUX=") {
                let value = trim_start(value);
                if starts_with_ignore_case(value, b"enforcing") {
                    mode = Mode::Enforcing;
                } else if starts_with_ignore_case(value, b"permissive") {
                    mode = Mode::Permissive;
                } else if starts_with_ignore_case(value, b"disabled") {
                    mode = Mode::Disabled;
                }
            }
        }
        let line = trim_start(line);
        if starts_with_ignore_case(line, b"SELINUXTYPE=") {
            let value = trim_start(line.get(b"SELINUXTYPE=".len()..).unwrap_or_default());
            let keep = value
                .iter()
                .rposition(|b| !(b.is_ascii_whitespace() || b.is_ascii_control()))
                .map_or(0, |n| n.saturating_add(1));
            policy_type = Some(value.get(..keep).unwrap_or_default());
        }
    }
    let policy_type = match policy_type {
        None => DEFAULT_TYPE.to_string(),
        Some(t) => {
            let ok = !t.is_empty()
                && t.len() <= MAX_TYPE
                && t != b"."
                && t != b".."
                && t.iter().all(|b| b.is_ascii_graphic() && *b != b'/');
            if !ok {
                return Err(format!(
                    "SELINUXTYPE={:?} is not a policy directory name",
                    String::from_utf8_lossy(t)
                ));
            }
            String::from_utf8_lossy(t).into_owned()
        }
    };
    Ok(Config { mode, policy_type })
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        let cases: &[(&str, &str, Result<(Mode, &str), ()>)] = &[
            (
                "Debian's file",
                "# This file controls the state of SELinux on the system.\n# SELINUX= can take one of these three values:\nSELINUX=permissive\n# SELINUXTYPE= can take one of these two values:\nSELINUXTYPE=default\n\nSETLOCALDEFS=0\n",
                Ok((Mode::Permissive, "default")),
            ),
            ("Fedora's", "SELINUX=enforcing\nSELINUXTYPE=targeted\n", Ok((Mode::Enforcing, "targeted"))),
            ("disabled", "SELINUX=disabled\nSELINUXTYPE=targeted\n", Ok((Mode::Disabled, "targeted"))),
            ("value case and blanks", "SELINUX= Enforcing \n", Ok((Mode::Enforcing, "targeted"))),
            ("first known value wins", "SELINUX=bogus\nSELINUX=disabled\nSELINUX=enforcing\n", Ok((Mode::Disabled, "targeted"))),
            ("indented SELINUX= is not read", "  SELINUX=disabled\n", Ok((Mode::Unset, "targeted"))),
            ("commented out", "#SELINUX=disabled\n", Ok((Mode::Unset, "targeted"))),
            ("empty file", "", Ok((Mode::Unset, "targeted"))),
            ("last type wins, key case-insensitive", "SELINUXTYPE=mls\n selinuxtype = x\nSELINUXTYPE=  default \r\n", Ok((Mode::Unset, "default"))),
            ("type with a slash", "SELINUXTYPE=../../tmp\n", Err(())),
            ("type ..", "SELINUXTYPE=..\n", Err(())),
            ("empty type", "SELINUXTYPE=\n", Err(())),
        ];
        for (name, text, want) in cases {
            let got = parse(text.as_bytes())
                .map(|c| (c.mode, c.policy_type))
                .map_err(|_| ());
            let want = want.map(|(m, t)| (m, t.to_string()));
            assert_eq!(got, want, "case {name}");
        }
    }
}
