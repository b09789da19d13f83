//! Atomic file writes: temp file in the same directory, mode set before any data, write,
//! fsync, rename, fsync the directory. Every file preroot writes goes through here.
//!
//! Never follows a symlink at the final component (the temp file is created with
//! `O_EXCL|O_NOFOLLOW`, and rename replaces a link rather than writing through it).
//!
//! [`RootDir`] is the only writer into the booted system's root (/sysroot): every path is
//! relative, walked one component at a time from a directory descriptor with `O_NOFOLLOW`, so
//! no symlink is ever followed in any component and nothing can land outside the root —
//! whatever links an image (or a user) left in `/etc`. A symlink where a directory or file
//! should be is an error naming it, not something to write through.

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `data` to `dir/name` atomically with permission bits `mode`.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8], mode: u32) -> io::Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad file name {name:?}"),
        ));
    }
    let target = dir.join(name);
    let mut tmp = None;
    for attempt in 0..16u32 {
        let candidate = dir.join(format!(".{name}.tmp{}.{attempt}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&candidate)
        {
            Ok(f) => {
                tmp = Some((candidate, f));
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    let (tmp_path, mut file) = tmp.ok_or_else(|| {
        io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name")
    })?;
    let result = (|| {
        // The umask may have narrowed `mode` at creation; set it exactly, before the data.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp_path, &target)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result.map(|()| target)
}

/// Creates `dir` (and parents) with mode `mode` for the last component if missing.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

/// A directory that stands for `/` of the system being configured. Paths given to it are
/// relative (`etc/hostname`); see the module doc for the no-symlink rule.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Longest file [`RootDir::read`] returns; configuration files are small.
pub const READ_CAP: usize = 1 << 20;

impl RootDir {
    pub fn open(path: &Path) -> io::Result<RootDir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| annotate(e, path))?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Splits `rel` into its directory components and file name, refusing absolute paths,
    /// `.`, `..` and empty components.
    fn split(rel: &str) -> io::Result<(Vec<&str>, &str)> {
        let mut parts: Vec<&str> = rel.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        if std::iter::once(name)
            .chain(parts.iter().copied())
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0'))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("path {rel:?} is not a plain relative path"),
            ));
        }
        Ok((parts, name))
    }

    /// Opens the directory `dirs` under the root without following a symlink, creating
    /// missing directories (mode 0755) when `create`. `Ok(None)`: missing and not created.
    fn dir(&self, dirs: &[&str], create: bool) -> io::Result<Option<OwnedFd>> {
        let mut fd = self.fd.try_clone()?;
        let mut walked = self.path.clone();
        for c in dirs {
            walked.push(c);
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let next = match nix::fcntl::openat(fd.as_fd(), *c, flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match nix::sys::stat::mkdirat(fd.as_fd(), *c, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(annotate(e, &walked)),
                    }
                    nix::fcntl::openat(fd.as_fd(), *c, flags, Mode::empty())
                }
                other => other,
            };
            fd = match next {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => return Ok(None),
                Err(e) => return Err(annotate(e, &walked)),
            };
        }
        Ok(Some(fd))
    }

    /// The file's content, `None` if it does not exist. A symlink is an error.
    pub fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        let (dirs, name) = Self::split(rel)?;
        let Some(dir) = self.dir(&dirs, false)? else {
            return Ok(None);
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(annotate(e, &self.path.join(rel))),
        };
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a regular file", self.path.join(rel).display()),
            ));
        }
        let mut data = Vec::new();
        file.take(
            u64::try_from(READ_CAP)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        )
        .read_to_end(&mut data)?;
        if data.len() > READ_CAP {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: more than {READ_CAP} bytes",
                    self.path.join(rel).display()
                ),
            ));
        }
        Ok(Some(data))
    }

    /// Does `rel` exist (as anything, a symlink included)? Symlinked directories on the way
    /// count as absent.
    pub fn exists(&self, rel: &str) -> bool {
        let Ok((dirs, name)) = Self::split(rel) else {
            return false;
        };
        match self.dir(&dirs, false) {
            Ok(Some(dir)) => {
                nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
            }
            _ => false,
        }
    }

    /// Writes `rel` atomically (temp file, mode, data, fsync, rename, fsync the directory),
    /// creating missing parent directories 0755. Writes nothing when the file already holds
    /// exactly `data` with `mode`; returns whether it wrote.
    pub fn write(&self, rel: &str, data: &[u8], mode: u32) -> io::Result<bool> {
        let (dirs, name) = Self::split(rel)?;
        if let Ok(Some(old)) = self.read(rel) {
            if old == data && self.mode(rel).ok().flatten() == Some(mode) {
                return Ok(false);
            }
        }
        let dir = self
            .dir(&dirs, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let perm = Mode::from_bits_truncate(mode);
        let mut tmp = None;
        for attempt in 0..16u32 {
            let candidate = format!(".{name}.tmp{}.{attempt}", std::process::id());
            match nix::fcntl::openat(dir.as_fd(), candidate.as_str(), flags, perm) {
                Ok(fd) => {
                    tmp = Some((candidate, File::from(fd)));
                    break;
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(annotate(e, &self.path.join(rel))),
            }
        }
        let (tmp_name, mut file) = tmp.ok_or_else(|| {
            io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name")
        })?;
        let result = (|| {
            nix::sys::stat::fchmod(file.as_fd(), perm)?;
            file.write_all(data)?;
            file.sync_all()?;
            nix::fcntl::renameat(dir.as_fd(), tmp_name.as_str(), dir.as_fd(), name)?;
            nix::unistd::fsync(dir.as_fd())?;
            Ok::<(), io::Error>(())
        })();
        if result.is_err() {
            let _ = nix::unistd::unlinkat(
                dir.as_fd(),
                tmp_name.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        result.map_err(|e| {
            io::Error::new(e.kind(), format!("{}: {e}", self.path.join(rel).display()))
        })?;
        Ok(true)
    }

    /// Permission bits of `rel` (not following a symlink), `None` if it does not exist.
    pub fn mode(&self, rel: &str) -> io::Result<Option<u32>> {
        let (dirs, name) = Self::split(rel)?;
        let Some(dir) = self.dir(&dirs, false)? else {
            return Ok(None);
        };
        match nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st.st_mode & 0o7777)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(annotate(e, &self.path.join(rel))),
        }
    }

    /// Renames `from` to `to` within one directory of the root (a link is renamed, not
    /// followed). Refuses to replace an existing `to`.
    pub fn rename_aside(&self, from: &str, to: &str) -> io::Result<()> {
        let (dirs, from_name) = Self::split(from)?;
        let (to_dirs, to_name) = Self::split(to)?;
        if dirs != to_dirs {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "rename across directories",
            ));
        }
        let dir = self
            .dir(&dirs, false)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if nix::sys::stat::fstatat(dir.as_fd(), to_name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", self.path.join(to).display()),
            ));
        }
        nix::fcntl::renameat(dir.as_fd(), from_name, dir.as_fd(), to_name)
            .map_err(|e| annotate(e, &self.path.join(from)))?;
        nix::unistd::fsync(dir.as_fd()).map_err(|e| annotate(e, &self.path.join(from)))
    }

    /// Removes the file `rel` (a symlink itself, never its target); absent is fine.
    pub fn remove(&self, rel: &str) -> io::Result<()> {
        let (dirs, name) = Self::split(rel)?;
        let Some(dir) = self.dir(&dirs, false)? else {
            return Ok(());
        };
        match nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(annotate(e, &self.path.join(rel))),
        }
    }
}

impl RootDir {
    /// Opens the final component of `rel` without following a symlink (`Ok(None)`: absent).
    fn open_nofollow(&self, rel: &str, flags: OFlag) -> io::Result<Option<File>> {
        let (dirs, name) = Self::split(rel)?;
        let Some(dir) = self.dir(&dirs, false)? else {
            return Ok(None);
        };
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(annotate(e, &self.path.join(rel))),
        }
    }

    /// The size of the regular file `rel` (not following a symlink); `None` for anything else.
    pub fn read_len(&self, rel: &str) -> Option<u64> {
        let (dirs, name) = Self::split(rel).ok()?;
        let dir = self.dir(&dirs, false).ok()??;
        let st = nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        (st.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Creates the directory `rel` (parents 0755) and sets its mode to `mode`, existing or not.
    pub fn mkdir(&self, rel: &str, mode: u32) -> io::Result<()> {
        let (dirs, name) = Self::split(rel)?;
        let mut all = dirs;
        all.push(name);
        self.dir(&all, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        self.set_owner_mode(rel, Some(mode), None)
    }

    /// Sets the mode and/or the owner of `rel` (a file or directory, never a symlink's target).
    pub fn set_owner_mode(
        &self,
        rel: &str,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let file = self
            .open_nofollow(rel, OFlag::O_RDONLY)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{rel}: missing")))?;
        let at = |e: Errno| annotate(e, &self.path.join(rel));
        if let Some((uid, gid)) = owner {
            nix::unistd::fchown(
                file.as_fd(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(at)?;
        }
        if let Some(mode) = mode {
            nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(mode)).map_err(at)?;
        }
        Ok(())
    }

    /// Opens `rel` for appending (created with `mode`, parents 0755), for a log a child
    /// process writes to. A symlink is an error.
    pub fn open_append(&self, rel: &str, mode: u32) -> io::Result<File> {
        let (dirs, name) = Self::split(rel)?;
        let dir = self
            .dir(&dirs, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(mode))
            .map_err(|e| annotate(e, &self.path.join(rel)))?;
        Ok(File::from(fd))
    }

    /// Empties the regular file `rel` in place: its inode, mode and owner stay. Returns whether
    /// it existed and was not empty before.
    pub fn truncate(&self, rel: &str) -> io::Result<bool> {
        let Some(file) = self.open_nofollow(rel, OFlag::O_WRONLY)? else {
            return Ok(false);
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(false);
        }
        file.set_len(0)?;
        Ok(meta.len() > 0)
    }

    /// The entries of the directory `rel` (names, sorted; `.` and `..` left out), with
    /// whether each is a directory (not following links). Absent: empty.
    pub fn list(&self, rel: &str) -> io::Result<Vec<(String, bool)>> {
        let dir = if rel.is_empty() {
            Some(self.fd.try_clone()?)
        } else {
            let (dirs, name) = Self::split(rel)?;
            let mut all = dirs;
            all.push(name);
            self.dir(&all, false)?
        };
        let Some(dir) = dir else {
            return Ok(Vec::new());
        };
        let mut d = nix::dir::Dir::from_fd(dir).map_err(|e| annotate(e, &self.path.join(rel)))?;
        let mut out = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(|e| annotate(e, &self.path.join(rel)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." {
                continue;
            }
            let is_dir = entry.file_type() == Some(nix::dir::Type::Directory);
            out.push((name, is_dir));
        }
        out.sort();
        Ok(out)
    }

    /// Removes `rel` and, for a directory, everything in it (links removed, never followed).
    pub fn remove_tree(&self, rel: &str) -> io::Result<()> {
        for (name, is_dir) in self.list(rel)? {
            let child = format!("{rel}/{name}");
            if is_dir {
                self.remove_tree(&child)?;
            } else {
                self.remove(&child)?;
            }
        }
        let (dirs, name) = Self::split(rel)?;
        let Some(dir) = self.dir(&dirs, false)? else {
            return Ok(());
        };
        match nix::unistd::unlinkat(dir.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::ENOTDIR) => self.remove(rel),
            Err(e) => Err(annotate(e, &self.path.join(rel))),
        }
    }
}

/// An errno as an `io::Error` naming the path; ELOOP and ENOTDIR say "symlink".
fn annotate(e: Errno, path: &Path) -> io::Error {
    let why = match e {
        Errno::ELOOP => "is a symlink, not followed".to_string(),
        Errno::ENOTDIR => "is a symlink or not a directory, not followed".to_string(),
        e => e.desc().to_string(),
    };
    io::Error::new(
        io::Error::from(e).kind(),
        format!("{}: {why}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = std::env::temp_dir().join(format!("preroot-out-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        ensure_dir(&dir, 0o700).unwrap();
        let p = write_atomic(&dir, "secret", b"one", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        write_atomic(&dir, "secret", b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(write_atomic(&dir, "../x", b"", 0o600).is_err());
        let leftovers = fs::read_dir(&dir).unwrap().count();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(leftovers, 1);
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("preroot-rootdir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn root_dir_writes_reads_and_skips_identical() {
        let dir = scratch("rw");
        let root = RootDir::open(&dir).unwrap();
        assert!(root
            .write("etc/systemd/network/10-x.network", b"a", 0o644)
            .unwrap());
        assert!(
            !root
                .write("etc/systemd/network/10-x.network", b"a", 0o644)
                .unwrap(),
            "identical: no write"
        );
        assert!(
            root.write("etc/systemd/network/10-x.network", b"a", 0o600)
                .unwrap(),
            "mode differs"
        );
        assert_eq!(
            root.read("etc/systemd/network/10-x.network")
                .unwrap()
                .unwrap(),
            b"a"
        );
        assert_eq!(
            root.mode("etc/systemd/network/10-x.network").unwrap(),
            Some(0o600)
        );
        assert_eq!(root.read("etc/nothing").unwrap(), None);
        assert_eq!(root.read("nowhere/nothing").unwrap(), None);
        for bad in ["/etc/x", "etc/../x", "etc//x", "", "etc/.", "a\0b"] {
            assert!(root.write(bad, b"", 0o644).is_err(), "case {bad:?}");
        }
        root.rename_aside(
            "etc/systemd/network/10-x.network",
            "etc/systemd/network/10-x.network.orig",
        )
        .unwrap();
        assert!(!root.exists("etc/systemd/network/10-x.network"));
        assert!(root.exists("etc/systemd/network/10-x.network.orig"));
        root.remove("etc/systemd/network/10-x.network.orig")
            .unwrap();
        root.remove("etc/systemd/network/10-x.network.orig")
            .unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_dir_never_follows_symlinks() {
        let dir = scratch("links");
        let outside = scratch("links-outside");
        fs::create_dir_all(dir.join("etc")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("etc/NetworkManager")).unwrap();
        std::os::unix::fs::symlink(outside.join("hostname"), dir.join("etc/hostname")).unwrap();
        let root = RootDir::open(&dir).unwrap();
        let err = root
            .write(
                "etc/NetworkManager/system-connections/x.nmconnection",
                b"x",
                0o600,
            )
            .unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(
            root.read("etc/hostname").is_err(),
            "a symlinked file is not read"
        );
        // Writing a file replaces the link itself; the target is never touched.
        root.write("etc/hostname", b"h\n", 0o644).unwrap();
        assert!(!outside.join("hostname").exists());
        assert!(fs::symlink_metadata(dir.join("etc/hostname"))
            .unwrap()
            .is_file());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}
