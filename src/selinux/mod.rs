//! SELinux labels for the files preroot writes, from the target root's own policy (issue 17).
//!
//! Owns the question "which label does the booted system's policy give this path": it reads
//! the root's `etc/selinux/config` ([`config`]) and, when SELinux is not `disabled`, the text
//! files of that policy's `contexts/files/` directory: `file_contexts`, `.homedirs`, `.local`
//! (specs) and `.subs_dist`, `.subs` (path substitutions), the inputs of libselinux's
//! `selabel_open(SELABEL_CTX_FILE)`, looked up with its rules ([`contexts`], matcher in
//! [`regex`]). Setting the attribute is `sys::xattr`; deciding when (temp file before its
//! rename, a directory when it is made) is the writer's (`output::RootDir`).
//!
//! Never does: load or query a kernel policy, validate contexts against the binary policy,
//! follow a symlink inside `etc/selinux/` (a link there is an error: it could point out of
//! the root), or read `file_contexts.bin`. libselinux opens whichever of `file_contexts` and
//! `file_contexts.bin` is newer (`.bin` on a tie); both are written together from the same
//! specs (semodule/`sefcontext_compile`), and every policy package ships the text file beside
//! the `.bin` (Debian's selinux-policy-default, Fedora's selinux-policy-targeted). The `.bin`
//! format has changed version five times and, before libselinux 3.8, holds PCRE2's serialized
//! byte code tied to its version and architecture; the text is the one stable input.
//!
//! Paths are looked up as the booted system sees them: `/etc/hostname`, not
//! `/sysroot/etc/hostname` nor `/ostree/deploy/OS/deploy/CSUM.0/etc/hostname`. preroot's
//! writer is always opened on the directory that becomes `/` (the ostree deployment, see
//! `sysroot::target`), so a root-relative path with a leading `/` is that path
//! ([`Labeler::label_for_rel`]). Homes behind links (`/home -> var/home`) are looked up at
//! the path written (`/var/home/alice/.ssh`), as `restorecon` looks up a path's `realpath`;
//! the policy's `.homedirs` or `.subs` (`/var/home /home`) decide what that gets.
//!
//! Bounds: each file at most [`MAX_FILE`] bytes; the rest in [`contexts`] and [`regex`].
pub mod config;
pub mod contexts;
pub mod regex;

pub use contexts::{FileKind, LookupError};

use contexts::{FileContexts, Sources};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Largest policy file read (Debian's `file_contexts` is 327 kB, Fedora's about 600 kB).
pub const MAX_FILE: usize = 16 << 20;
/// Largest `etc/selinux/config`.
const MAX_CONFIG: usize = 64 << 10;
pub const CONFIG: &str = "etc/selinux/config";

/// Why the policy could not be used. The caller logs it and writes files unlabelled (what
/// preroot did before labels), never fails the boot on it.
#[derive(Debug)]
pub enum OpenError {
    /// Reading a file failed (a symlink in the way, permissions, I/O).
    Io { path: String, error: io::Error },
    /// A file is larger than [`MAX_FILE`].
    TooLarge { path: String },
    /// `etc/selinux/config` names an unusable policy type.
    Config { path: String, what: String },
    /// SELinux is on, but the policy has no `file_contexts` text file.
    NoFileContexts { path: String },
    /// A spec file libselinux would refuse as well.
    Parse {
        path: String,
        error: contexts::ParseError,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io { path, error } => write!(f, "{path}: {error}"),
            OpenError::TooLarge { path } => write!(f, "{path}: larger than {MAX_FILE} bytes"),
            OpenError::Config { path, what } => write!(f, "{path}: {what}"),
            OpenError::NoFileContexts { path } => {
                write!(
                    f,
                    "{path}: missing, but SELinux is not disabled: files stay unlabelled"
                )
            }
            OpenError::Parse { path, error } => write!(f, "{path}: {error}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// The labels of one root's policy.
#[derive(Debug)]
pub struct Labeler {
    policy_type: String,
    contexts: FileContexts,
}

/// How a file's label compares with what the policy wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The label the policy gives (or none, where the policy gives none).
    Matches,
    /// Has no label, the policy gives `want`.
    Missing { want: String },
    /// Has `have`, the policy gives `want`.
    Wrong { want: String, have: String },
    /// Has `have`, the policy gives no label (`<<none>>` or no matching spec).
    Unexpected { have: String },
    /// The policy's answer is not known (a lookup error).
    Unknown { why: String },
}

impl Labeler {
    /// Reads `root`'s SELinux configuration and file contexts. `Ok(None)`: labelling is off
    /// (no `etc/selinux/config`, or `SELINUX=disabled`), which costs one failed open.
    pub fn open(root: &Path) -> Result<Option<Labeler>, OpenError> {
        let dir = nix::fcntl::open(
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| OpenError::Io {
            path: root.display().to_string(),
            error: e.into(),
        })?;
        let read = |rel: &str, cap: usize| -> Result<Option<Vec<u8>>, OpenError> {
            let shown = format!("{}/{rel}", root.display());
            match read_in(&dir, rel, cap) {
                Ok(Some(data)) if data.len() > cap => Err(OpenError::TooLarge { path: shown }),
                Ok(found) => Ok(found),
                Err(error) => Err(OpenError::Io { path: shown, error }),
            }
        };
        let Some(text) = read(CONFIG, MAX_CONFIG)? else {
            return Ok(None);
        };
        let config = config::parse(&text).map_err(|what| OpenError::Config {
            path: format!("{}/{CONFIG}", root.display()),
            what,
        })?;
        if !config.enabled() {
            return Ok(None);
        }
        let files = format!(
            "etc/selinux/{}/contexts/files/file_contexts",
            config.policy_type
        );
        let Some(base) = read(&files, MAX_FILE)? else {
            return Err(OpenError::NoFileContexts {
                path: format!("{}/{files}", root.display()),
            });
        };
        let homedirs = read(&format!("{files}.homedirs"), MAX_FILE)?;
        let local = read(&format!("{files}.local"), MAX_FILE)?;
        let subs_dist = read(&format!("{files}.subs_dist"), MAX_FILE)?;
        let subs = read(&format!("{files}.subs"), MAX_FILE)?;
        let contexts = FileContexts::new(Sources {
            base: &base,
            homedirs: homedirs.as_deref(),
            local: local.as_deref(),
            subs_dist: subs_dist.as_deref(),
            subs: subs.as_deref(),
        })
        .map_err(|error| OpenError::Parse {
            path: format!("{}/{files}{}", root.display(), error.input.suffix()),
            error,
        })?;
        Ok(Some(Labeler {
            policy_type: config.policy_type,
            contexts,
        }))
    }

    /// A labeler over file texts already read (tests, fuzzing, tools).
    pub fn from_sources(
        policy_type: &str,
        sources: Sources<'_>,
    ) -> Result<Labeler, contexts::ParseError> {
        Ok(Labeler {
            policy_type: policy_type.to_string(),
            contexts: FileContexts::new(sources)?,
        })
    }

    /// `SELINUXTYPE`: the policy the labels come from.
    pub fn policy_type(&self) -> &str {
        &self.policy_type
    }

    pub fn contexts(&self) -> &FileContexts {
        &self.contexts
    }

    /// The label for `path` (absolute, as the booted system sees it) of type `kind`;
    /// `Ok(None)`: the policy gives none (`<<none>>`, or no spec matches), so set none.
    pub fn label_for(&self, path: &str, kind: FileKind) -> Result<Option<&str>, LookupError> {
        Ok(self
            .contexts
            .lookup(path.as_bytes(), Some(kind))?
            .and_then(|spec| spec.context.as_deref()))
    }

    /// [`Labeler::label_for`] for a path relative to the root (`etc/hostname`), the form
    /// `output::RootDir` uses.
    pub fn label_for_rel(&self, rel: &str, kind: FileKind) -> Result<Option<&str>, LookupError> {
        self.label_for(&format!("/{rel}"), kind)
    }

    /// Compares a file's label `have` (as read by `sys::xattr`) with the policy's.
    pub fn verify(&self, path: &str, kind: FileKind, have: Option<&str>) -> Verdict {
        match (self.label_for(path, kind), have) {
            (Err(e), _) => Verdict::Unknown { why: e.to_string() },
            (Ok(want), have) if want == have => Verdict::Matches,
            (Ok(Some(want)), None) => Verdict::Missing {
                want: want.to_string(),
            },
            (Ok(Some(want)), Some(have)) => Verdict::Wrong {
                want: want.to_string(),
                have: have.to_string(),
            },
            (Ok(None), Some(have)) => Verdict::Unexpected {
                have: have.to_string(),
            },
            (Ok(None), None) => Verdict::Matches,
        }
    }
}

/// Reads `rel` under the directory `dir` without following a symlink in any component;
/// `Ok(None)` when it does not exist. Reads at most `cap + 1` bytes (the caller tells "too
/// large" by the length).
fn read_in(dir: &OwnedFd, rel: &str, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    let mut fd = dir.try_clone()?;
    for part in parts {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        fd = match nix::fcntl::openat(fd.as_fd(), part, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!("{part}: {}", why(e)),
                ))
            }
        };
    }
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let file = match nix::fcntl::openat(fd.as_fd(), name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(io::Error::new(io::Error::from(e).kind(), why(e))),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut data = Vec::new();
    file.take(u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut data)?;
    Ok(Some(data))
}

fn why(e: Errno) -> String {
    match e {
        Errno::ELOOP | Errno::ENOTDIR => "a symlink or not a directory, not followed".to_string(),
        e => e.desc().to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables
mod tests {
    use super::*;

    fn tree(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("preroot-selinux-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, text) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const FC: &str = "etc/selinux/targeted/contexts/files/file_contexts";

    #[test]
    fn open_cases() {
        let fc = "/.* system_u:object_r:default_t:s0\n/etc/hostname -- system_u:object_r:net_conf_t:s0\n";
        // (case, files, Ok(Some(label of /etc/hostname)) | Ok(None) = off | Err = error)
        let cases: &[(&str, Vec<(&str, &str)>, Result<Option<&str>, ()>)] = &[
            ("no config: off", vec![(FC, fc)], Ok(None)),
            (
                "disabled: off",
                vec![(CONFIG, "SELINUX=disabled\n"), (FC, fc)],
                Ok(None),
            ),
            (
                "enforcing",
                vec![
                    (CONFIG, "SELINUX=enforcing\nSELINUXTYPE=targeted\n"),
                    (FC, fc),
                ],
                Ok(Some("system_u:object_r:net_conf_t:s0")),
            ),
            (
                "no SELINUX line: on, default type",
                vec![(CONFIG, "\n"), (FC, fc)],
                Ok(Some("system_u:object_r:net_conf_t:s0")),
            ),
            (
                "on, but no file_contexts",
                vec![(CONFIG, "SELINUX=permissive\n")],
                Err(()),
            ),
            (
                "bad type",
                vec![(CONFIG, "SELINUXTYPE=../x\n"), (FC, fc)],
                Err(()),
            ),
            (
                "broken file_contexts",
                vec![(CONFIG, "SELINUX=enforcing\n"), (FC, "/a\n")],
                Err(()),
            ),
        ];
        for (name, files, want) in cases {
            let dir = tree(&name.replace([' ', ':', ','], "-"), files);
            let got = Labeler::open(&dir).map(|l| {
                l.map(|l| {
                    l.label_for("/etc/hostname", FileKind::Regular)
                        .unwrap()
                        .map(str::to_string)
                })
            });
            std::fs::remove_dir_all(&dir).unwrap();
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got.flatten().as_deref(), *want, "case {name}"),
                (Err(_), Err(())) => {}
                (got, want) => panic!("case {name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn symlinked_policy_is_refused() {
        let dir = tree("link", &[(CONFIG, "SELINUX=enforcing\n")]);
        let outside = tree(
            "link-outside",
            &[("contexts/files/file_contexts", "/.* a:b:c_t:s0\n")],
        );
        std::os::unix::fs::symlink(&outside, dir.join("etc/selinux/targeted")).unwrap();
        let got = Labeler::open(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
        let err = got.unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
    }

    #[test]
    fn verify_cases() {
        let l = Labeler::from_sources(
            "t",
            Sources {
                base: b"/.* a:b:default_t:s0\n/tmp/.* <<none>>\n",
                ..Sources::default()
            },
        )
        .unwrap();
        let f = FileKind::Regular;
        let cases: &[(&str, &str, Option<&str>, Verdict)] = &[
            (
                "right",
                "/etc/x",
                Some("a:b:default_t:s0"),
                Verdict::Matches,
            ),
            (
                "missing",
                "/etc/x",
                None,
                Verdict::Missing {
                    want: "a:b:default_t:s0".into(),
                },
            ),
            (
                "wrong",
                "/etc/x",
                Some("a:b:etc_t:s0"),
                Verdict::Wrong {
                    want: "a:b:default_t:s0".into(),
                    have: "a:b:etc_t:s0".into(),
                },
            ),
            ("none wanted, none had", "/tmp/x", None, Verdict::Matches),
            (
                "none wanted",
                "/tmp/x",
                Some("a:b:tmp_t:s0"),
                Verdict::Unexpected {
                    have: "a:b:tmp_t:s0".into(),
                },
            ),
        ];
        for (name, path, have, want) in cases {
            assert_eq!(l.verify(path, f, *have), *want, "case {name}");
        }
    }
}
