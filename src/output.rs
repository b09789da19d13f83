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
//!
//! SELinux (issue 17, docs/selinux.md): a `RootDir` opened with [`RootDir::open_labelled`]
//! carries the root's own policy ([`crate::selinux::Labeler`]) and labels what it creates
//! from it, as the booted system sees the path (`/` + the relative path; the root is always the
//! directory that becomes `/`, an ostree deployment included). A file gets its label on the
//! temporary file, after the mode and before any data, so the name never points at an
//! unlabelled file; a directory gets its label when it is made, before anything is made in it;
//! a file with the right bytes and mode but a missing or wrong label is rewritten;
//! [`RootDir::rename_aside`] and [`RootDir::truncate`] keep the file's own label;
//! [`RootDir::relabel`] fixes what other programs made (`useradd`, `ssh-keygen`). A label
//! that cannot be looked up or set never stops a write: the first such failure is logged, all
//! are counted, and [`RootDir::label_problems`] gives the one line the caller records.
//!
//! [`read_file`] is the one way preroot reads a file of the running system (the context and
//! secrets in the state directory, `/proc/cmdline`, sysfs attributes under a `--root`): a
//! regular file only, opened non-blocking and its type checked before any read, within a cap,
//! so a FIFO, device or socket put in a file's place never blocks nor streams without end.

use crate::selinux::{FileKind, Labeler};
use crate::sys::xattr;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What a file's type is, for messages.
fn kind_of(t: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Reads the regular file `path` whole, at most `cap` bytes. Opened non-blocking (opening a
/// FIFO for reading would wait for a writer) and its type checked before any read: a FIFO,
/// device, socket or directory is an error naming what it is; so is a file over `cap`.
/// Errors name the path. A missing file keeps [`io::ErrorKind::NotFound`].
pub fn read_file(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(named)?;
    let meta = file.metadata().map_err(named)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {}, not a regular file",
                path.display(),
                kind_of(meta.file_type())
            ),
        ));
    }
    let mut data = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(named)?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: more than {cap} bytes", path.display()),
        ));
    }
    Ok(data)
}

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
/// relative (`etc/hostname`); see the module doc for the no-symlink rule and for labels.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
    /// The root's SELinux policy; `None`: nothing is labelled.
    labels: Option<Labeler>,
    failures: RefCell<LabelFailures>,
}

/// Labels that could not be looked up or set, since the root was opened.
#[derive(Debug, Default)]
struct LabelFailures {
    count: usize,
    first: Option<String>,
}

/// Longest file [`RootDir::read`] returns; configuration files are small.
pub const READ_CAP: usize = 1 << 20;
/// Most entries one [`RootDir::relabel`] visits, and how deep it goes: it relabels what a
/// program just made (a home from `/etc/skel`, host keys), never a whole filesystem.
pub const RELABEL_MAX: usize = 10_000;
const RELABEL_DEPTH: u32 = 16;

impl RootDir {
    /// Opens `path` without labels (reading, and roots preroot writes nothing into).
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
            labels: None,
            failures: RefCell::new(LabelFailures::default()),
        })
    }

    /// Opens `path` as a root to write into, with the labels of its own SELinux policy when
    /// `labels` (no `etc/selinux/config`, or `SELINUX=disabled`: none, at the cost of one
    /// failed open). The second value is the one line to log and record when the policy
    /// could not be read: the root is then written unlabelled, as before labels existed.
    pub fn open_labelled(path: &Path, labels: bool) -> io::Result<(RootDir, Option<String>)> {
        let mut root = RootDir::open(path)?;
        if !labels {
            return Ok((root, None));
        }
        let started = std::time::Instant::now();
        match Labeler::open(path) {
            Ok(labeler) => {
                if let Some(l) = &labeler {
                    log::info!(
                        "SELinux: labels from policy {} of {} ({} specs, read in {} ms)",
                        l.policy_type(),
                        path.display(),
                        l.contexts().specs().len(),
                        started.elapsed().as_millis()
                    );
                }
                root.labels = labeler;
                Ok((root, None))
            }
            Err(e) => Ok((
                root,
                Some(format!("SELinux policy: {e}; files are written unlabelled")),
            )),
        }
    }

    /// The policy this root's files are labelled from, if any.
    pub fn labeler(&self) -> Option<&Labeler> {
        self.labels.as_ref()
    }

    /// One line for the caller's errors when some labels could not be set (the first
    /// failure was logged when it happened); `None` when all could.
    pub fn label_problems(&self) -> Option<String> {
        let f = self.failures.borrow();
        let first = f.first.as_deref()?;
        Some(match f.count {
            1 => format!("SELinux label not set: {first}"),
            n => format!("SELinux labels not set on {n} files; the first: {first}"),
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
    /// A directory made here is labelled before anything is made in it.
    fn dir(&self, dirs: &[&str], create: bool) -> io::Result<Option<OwnedFd>> {
        let mut fd = self.fd.try_clone()?;
        let mut walked = self.path.clone();
        let mut rel = String::new();
        for c in dirs {
            walked.push(c);
            if !rel.is_empty() {
                rel.push('/');
            }
            rel.push_str(c);
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let mut made = false;
            let next = match nix::fcntl::openat(fd.as_fd(), *c, flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match nix::sys::stat::mkdirat(fd.as_fd(), *c, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => made = true,
                        Err(Errno::EEXIST) => {}
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
            if made {
                self.label_new(fd.as_fd(), &rel, FileKind::Directory);
            }
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

    /// Writes `rel` atomically (temp file, mode, label, data, fsync, rename, fsync the
    /// directory), creating missing parent directories 0755. Writes nothing when the file
    /// already holds exactly `data` with `mode` and the policy's label; returns whether it
    /// wrote.
    pub fn write(&self, rel: &str, data: &[u8], mode: u32) -> io::Result<bool> {
        let (dirs, name) = Self::split(rel)?;
        if let Ok(Some(old)) = self.read(rel) {
            if old == data
                && self.mode(rel).ok().flatten() == Some(mode)
                && self.label_matches(rel, FileKind::Regular)
            {
                return Ok(false);
            }
        }
        let dir = self
            .dir(&dirs, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let (tmp_name, mut file) = self.temp_file(&dir, rel, name, mode)?;
        let result = (|| {
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

    /// Opens the regular file `rel` for reading (no symlink followed, opened non-blocking,
    /// its type checked: a FIFO or device is an error): for a reader that streams a file of
    /// any size rather than taking it whole within [`READ_CAP`] ([`RootDir::read`]). `Ok(None)`:
    /// absent.
    pub fn open_read(&self, rel: &str) -> io::Result<Option<File>> {
        let Some(file) = self.open_nofollow(rel, OFlag::O_RDONLY)? else {
            return Ok(None);
        };
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a regular file", self.path.join(rel).display()),
            ));
        }
        Ok(Some(file))
    }

    /// The size of the regular file `rel` (not following a symlink); `None` for anything else.
    pub fn read_len(&self, rel: &str) -> Option<u64> {
        let (dirs, name) = Self::split(rel).ok()?;
        let dir = self.dir(&dirs, false).ok()??;
        let st = nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        (st.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Creates the directory `rel` (parents 0755) and sets its mode to `mode`, existing or not;
    /// an existing one also gets the policy's label if it has another.
    pub fn mkdir(&self, rel: &str, mode: u32) -> io::Result<()> {
        let (dirs, name) = Self::split(rel)?;
        let mut all = dirs;
        all.push(name);
        let dir = self
            .dir(&all, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        self.fix_label(dir.as_fd(), rel, FileKind::Directory);
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

    /// Opens `rel` for appending, for a log a child process writes to. A missing file is
    /// made with `mode` and its label under a temporary name and linked into place (never
    /// replacing a file made meanwhile), parents 0755. A symlink is an error; so is anything
    /// but a regular file (a FIFO in the log's place would make the open wait for a reader
    /// forever).
    pub fn open_append(&self, rel: &str, mode: u32) -> io::Result<File> {
        let (dirs, name) = Self::split(rel)?;
        let dir = self
            .dir(&dirs, true)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        // Non-blocking: opening a FIFO for writing would wait for a reader (or fail with
        // ENXIO without one); only a regular file is kept.
        let flags = OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let at = |e: Errno| match e {
            Errno::ENXIO => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: a FIFO or socket, not a regular file",
                    self.path.join(rel).display()
                ),
            ),
            e => annotate(e, &self.path.join(rel)),
        };
        let fd = match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let (tmp_name, file) = self.temp_file(&dir, rel, name, mode)?;
                let linked = nix::unistd::linkat(
                    dir.as_fd(),
                    tmp_name.as_str(),
                    dir.as_fd(),
                    name,
                    AtFlags::empty(),
                );
                let _ = nix::unistd::unlinkat(
                    dir.as_fd(),
                    tmp_name.as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                match linked {
                    // Linked, or made meanwhile by someone else: append to what is there.
                    Ok(()) | Err(Errno::EEXIST) => {
                        let _ = nix::unistd::fsync(dir.as_fd());
                        drop(file);
                        nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()).map_err(at)?
                    }
                    Err(e) => return Err(at(e)),
                }
            }
            Err(e) => return Err(at(e)),
        };
        let file = File::from(fd);
        let kind = file.metadata()?.file_type();
        if !kind.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {}, not a regular file",
                    self.path.join(rel).display(),
                    kind_of(kind)
                ),
            ));
        }
        // The child writes to it blocking, as to any log file.
        nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_APPEND))
            .map_err(|e| annotate(e, &self.path.join(rel)))?;
        Ok(file)
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

/// Labels (see the module doc).
impl RootDir {
    /// Creates `.NAME.tmpPID.N` in `dir` (`O_EXCL`, no link followed) with exactly `mode`
    /// and the label of `rel`, the name it will get.
    fn temp_file(
        &self,
        dir: &OwnedFd,
        rel: &str,
        name: &str,
        mode: u32,
    ) -> io::Result<(String, File)> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let perm = Mode::from_bits_truncate(mode);
        for attempt in 0..16u32 {
            let candidate = format!(".{name}.tmp{}.{attempt}", std::process::id());
            let file = match nix::fcntl::openat(dir.as_fd(), candidate.as_str(), flags, perm) {
                Ok(fd) => File::from(fd),
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(annotate(e, &self.path.join(rel))),
            };
            // The umask may have narrowed `mode` at creation: set it exactly, before the data.
            if let Err(e) = nix::sys::stat::fchmod(file.as_fd(), perm) {
                let _ = nix::unistd::unlinkat(
                    dir.as_fd(),
                    candidate.as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                return Err(annotate(e, &self.path.join(rel)));
            }
            self.label_new(file.as_fd(), rel, FileKind::Regular);
            return Ok((candidate, file));
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary file name",
        ))
    }

    /// The label the policy gives `rel`; `None` with no policy, where it gives none, or when
    /// the lookup failed (counted).
    fn wanted(&self, rel: &str, kind: FileKind) -> Option<String> {
        let labeler = self.labels.as_ref()?;
        match labeler.label_for_rel(rel, kind) {
            Ok(label) => label.map(str::to_string),
            Err(e) => {
                self.failed(format!("/{rel}: {e}"));
                None
            }
        }
    }

    fn failed(&self, what: String) {
        let mut f = self.failures.borrow_mut();
        if f.first.is_none() {
            log::warn!("SELinux: {what} (further failures are counted, not logged)");
            f.first = Some(what);
        }
        f.count = f.count.saturating_add(1);
    }

    /// Labels a file or directory just made (it has no label of its own to keep).
    fn label_new(&self, fd: BorrowedFd<'_>, rel: &str, kind: FileKind) {
        if let Some(label) = self.wanted(rel, kind) {
            if let Err(e) = xattr::set_fd(fd, &label) {
                self.failed(format!("/{rel}: {e}"));
            }
        }
    }

    /// Sets the policy's label on an existing `fd` when it has another (restorecon's rule:
    /// only what differs is written). Returns whether it changed it.
    fn fix_label(&self, fd: BorrowedFd<'_>, rel: &str, kind: FileKind) -> bool {
        let Some(want) = self.wanted(rel, kind) else {
            return false;
        };
        if xattr::get_fd(fd).ok().flatten().as_deref() == Some(want.as_str()) {
            return false;
        }
        match xattr::set_fd(fd, &want) {
            Ok(()) => true,
            Err(e) => {
                self.failed(format!("/{rel}: {e}"));
                false
            }
        }
    }

    /// Does `rel` carry the label the policy gives it (always, without a policy or where the
    /// policy gives none)?
    fn label_matches(&self, rel: &str, kind: FileKind) -> bool {
        let Some(want) = self.wanted(rel, kind) else {
            return true;
        };
        self.label_of(rel).ok().flatten().as_deref() == Some(want.as_str())
    }

    /// The `security.selinux` label of `rel` (not following a symlink); `None`: it has none.
    pub fn label_of(&self, rel: &str) -> io::Result<Option<String>> {
        let file = self
            .open_nofollow(rel, OFlag::O_RDONLY)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{rel}: missing")))?;
        xattr::get_fd(file.as_fd())
    }

    /// Gives `rel` (and, when `recursive`, what a directory holds, at most [`RELABEL_MAX`]
    /// entries) the policy's labels where they differ, as `restorecon [-R]` does: for what
    /// other programs made in the root (`useradd -m`, `ssh-keygen -A`, `chpasswd`). Symlinks
    /// are neither followed nor labelled, nor are devices, FIFOs and sockets. Returns how many
    /// labels it changed; nothing without a policy, or when `rel` is missing.
    pub fn relabel(&self, rel: &str, recursive: bool) -> usize {
        if self.labels.is_none() {
            return 0;
        }
        let mut budget = RELABEL_MAX;
        let changed = self.relabel_walk(rel, recursive, 0, &mut budget);
        if budget == 0 {
            log::warn!("SELinux: relabelling /{rel} stopped after {RELABEL_MAX} entries");
        }
        changed
    }

    fn relabel_walk(&self, rel: &str, recursive: bool, depth: u32, budget: &mut usize) -> usize {
        let Some(left) = budget.checked_sub(1) else {
            return 0;
        };
        *budget = left;
        // Only directories and regular files are opened (opening a device can do things).
        let is_dir_or_file = Self::split(rel).ok().and_then(|(dirs, name)| {
            let dir = self.dir(&dirs, false).ok()??;
            let st =
                nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
            let fmt = st.st_mode & libc::S_IFMT;
            Some(fmt == libc::S_IFDIR || fmt == libc::S_IFREG)
        });
        if is_dir_or_file != Some(true) {
            return 0;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOCTTY;
        let file = match self.open_nofollow(rel, flags) {
            Ok(Some(f)) => f,
            // Missing, or a symlink (ELOOP): nothing to label.
            Ok(None) => return 0,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return 0,
            Err(e) => {
                self.failed(format!("/{rel}: {e}"));
                return 0;
            }
        };
        let kind = match file.metadata() {
            Ok(m) if m.is_dir() => FileKind::Directory,
            Ok(m) if m.is_file() => FileKind::Regular,
            _ => return 0,
        };
        let mut changed = usize::from(self.fix_label(file.as_fd(), rel, kind));
        if kind == FileKind::Directory && recursive && depth < RELABEL_DEPTH {
            for (name, _) in self.list(rel).unwrap_or_default() {
                let child = format!("{rel}/{name}");
                changed = changed.saturating_add(self.relabel_walk(
                    &child,
                    true,
                    depth.saturating_add(1),
                    budget,
                ));
            }
        }
        changed
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
