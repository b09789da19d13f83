//! Reading datasource media without mounting them: a directory, an ISO9660 image or device
//! (`iso9660.rs`), a FAT12/16/32 image or device (`fat.rs`), an ext2/3/4 image or device
//! (`ext4.rs`), or a UDF image or device (`udf.rs`, Azure's provisioning medium), all behind
//! one [`Tree`].
//!
//! Owns path lookup, the size cap on every read, and what reading one open image may cost
//! ([`Budget`]: bytes read and the boot's deadline, counted by every image reader). Never
//! mounts, never writes, never follows a path out of the medium (`..` and absolute components
//! are refused) and never follows a link: a symbolic link on a medium is an error naming its
//! target, in a directory ([`DirTree`]) as in an image (its target is a path on whatever
//! system follows it: `user_data -> /etc/shadow` is the initramfs's shadow file). A FIFO,
//! device or socket is never opened for reading in a way that could block, and never read.

pub mod ext4;
pub mod fat;
pub mod iso9660;
pub mod label;
pub mod udf;

use crate::deadline::Deadline;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// How the data was accessed (the context's `source.medium`): a filesystem image read in
/// user space, a directory, HTTP, or the kernel command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// ISO9660 image or device, read in user space.
    Iso9660,
    /// FAT12/16/32 image or device, read in user space.
    Fat,
    /// ext2/3/4 image or device, read in user space.
    Ext4,
    /// UDF image or device (Azure's provisioning medium), read in user space.
    Udf,
    /// A directory tree (a mounted medium, or a test tree).
    Directory,
    /// HTTP.
    Http,
    /// `/proc/cmdline`.
    Cmdline,
}

/// Most parsed directories an image reader keeps per open image ([`DirCache`]).
pub const MAX_CACHED_DIRS: usize = 64;
/// Most bytes of parsed directories (entries and their names, as allocated) an image reader
/// keeps per open image ([`DirCache`]).
pub const MAX_CACHE_BYTES: usize = 4 << 20;

/// The directories an image reader has parsed, by where each starts on the image (an image
/// never changes while it is open): at most [`MAX_CACHED_DIRS`] of them and
/// [`MAX_CACHE_BYTES`] of parsed entries; past either, a directory is parsed again each time
/// it is read (and its reads counted again against the image's [`Budget`]). One cache for
/// every reader, so each weighs what it keeps the same way.
#[derive(Debug)]
pub struct DirCache<K, V: ?Sized> {
    dirs: RefCell<BTreeMap<K, Rc<V>>>,
    bytes: Cell<usize>,
}

impl<K, V: ?Sized> Default for DirCache<K, V> {
    fn default() -> Self {
        DirCache {
            dirs: RefCell::new(BTreeMap::new()),
            bytes: Cell::new(0),
        }
    }
}

impl<K: Ord, V: ?Sized> DirCache<K, V> {
    /// The directory parsed at `at`, if it was kept.
    pub fn get(&self, at: &K) -> Option<Rc<V>> {
        self.dirs.borrow().get(at).map(Rc::clone)
    }

    /// Keeps `dir`, parsed at `at` and taking `bytes`, if there is room; returns it either way.
    pub fn keep(&self, at: K, dir: Rc<V>, bytes: usize) -> Rc<V> {
        let mut dirs = self.dirs.borrow_mut();
        let cached = self.bytes.get().saturating_add(bytes);
        if dirs.len() < MAX_CACHED_DIRS && cached <= MAX_CACHE_BYTES {
            dirs.insert(at, Rc::clone(&dir));
            self.bytes.set(cached);
        }
        dir
    }

    /// How many directories are kept.
    pub fn len(&self) -> usize {
        self.dirs.borrow().len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opens an image file or block device for one of the image readers: read-only, only an image
/// file or a block device (`label::open_ro`), and its size (a block device reports it through
/// `lseek`, not through its metadata). Errors name `path`.
pub(crate) fn open_image(path: &Path) -> Result<(File, u64), MediaError> {
    let io_err = |e: io::Error| MediaError::new(path.display().to_string(), MediaErrorKind::Io(e));
    let file = label::open_ro(path).map_err(io_err)?;
    let size = (&file).seek(SeekFrom::End(0)).map_err(io_err)?;
    Ok((file, size))
}

/// Most bytes read from one open image, metadata and file data together, by every image
/// reader: well above what the datasources read (a few capped files), far below what would
/// cost a boot its deadline.
pub const MAX_IMAGE_READ: u64 = 256 << 20;

/// What reading one open image may cost: the bytes read so far (at most [`MAX_IMAGE_READ`]) and
/// the boot's deadline, when there is one. Every image reader counts each read here before it
/// makes it, so no image (however its structures loop or repeat) can read for longer.
#[derive(Debug, Default)]
pub struct Budget {
    read: Cell<u64>,
    deadline: Option<Deadline>,
}

impl Budget {
    pub fn new(deadline: Option<Deadline>) -> Budget {
        Budget {
            read: Cell::new(0),
            deadline,
        }
    }

    /// Counts `len` bytes about to be read for `what`; past the budget or the deadline, the
    /// error that stops the read (naming `object`, the image).
    pub fn charge(&self, len: u64, what: &str, object: &str) -> Result<(), MediaError> {
        if self.deadline.is_some_and(|d| d.passed()) {
            return Err(MediaError::new(
                object,
                MediaErrorKind::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what}: the deadline passed while reading this medium; stopped"),
                )),
            ));
        }
        let total = self.read.get().saturating_add(len);
        if total > MAX_IMAGE_READ {
            return Err(MediaError::new(
                object,
                MediaErrorKind::Corrupt(format!(
                    "{what}: more than {MAX_IMAGE_READ} bytes read from this image; stopped"
                )),
            ));
        }
        self.read.set(total);
        Ok(())
    }

    /// Bytes read so far.
    pub fn used(&self) -> u64 {
        self.read.get()
    }
}

/// What went wrong reading a medium. `object` names the file or image.
#[derive(Debug)]
pub struct MediaError {
    pub object: String,
    pub kind: MediaErrorKind,
}

#[derive(Debug)]
pub enum MediaErrorKind {
    /// The file is bigger than the cap the caller gave.
    TooLarge {
        size: u64,
        cap: u64,
    },
    /// The image is not a filesystem we read, or its structures are damaged.
    Corrupt(String),
    /// A path component was `..`, empty, or otherwise not allowed.
    BadPath,
    Io(io::Error),
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            MediaErrorKind::TooLarge { size, cap } => write!(
                f,
                "{}: {size} bytes, more than the {cap}-byte limit",
                self.object
            ),
            MediaErrorKind::Corrupt(why) => {
                write!(f, "{}: damaged or unsupported: {why}", self.object)
            }
            MediaErrorKind::BadPath => write!(f, "{}: path not allowed", self.object),
            MediaErrorKind::Io(e) => write!(f, "{}: {e}", self.object),
        }
    }
}

impl std::error::Error for MediaError {}

impl MediaError {
    pub fn new(object: impl Into<String>, kind: MediaErrorKind) -> MediaError {
        MediaError {
            object: object.into(),
            kind,
        }
    }
}

/// A read-only file tree on some medium. Paths are relative, `/`-separated
/// (`openstack/latest/meta_data.json`).
pub trait Tree {
    /// The whole file, or `Ok(None)` if it does not exist. A file larger than `cap` bytes is
    /// an error ([`MediaErrorKind::TooLarge`]), never a truncated read.
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError>;

    /// Names in a directory (files and sub-directories), or `Ok(None)` if it does not exist.
    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError>;

    /// Human-readable location, for messages (`/dev/sr0`, `seed.iso`, a directory).
    fn describe(&self) -> String;
}

/// Splits a relative path into components, refusing `..`, `.` and empty ones.
pub fn components(path: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == ".." || *p == ".") {
        return None;
    }
    Some(parts)
}

/// A directory on a mounted filesystem (or a test tree). Every path is walked one component
/// at a time from a descriptor of the base with `O_NOFOLLOW` (`openat`, as
/// [`crate::output::RootDir`] does), so no link is followed, in any component: a symbolic
/// link is an error naming its target (links inside the tree too: an image reader refuses
/// them alike). Files are opened non-blocking and read only when regular: a FIFO, device or
/// socket is an error naming it, never a read that blocks or never ends.
#[derive(Debug, Clone)]
pub struct DirTree {
    base: PathBuf,
}

/// What `S_IFMT` of a `stat` says, for messages.
fn file_kind(st: &FileStat) -> &'static str {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFDIR => "a directory",
        libc::S_IFREG => "a regular file",
        _ => "a file of unknown type",
    }
}

impl DirTree {
    pub fn new(base: impl Into<PathBuf>) -> DirTree {
        DirTree { base: base.into() }
    }

    fn name(&self, path: &str) -> String {
        self.base.join(path).display().to_string()
    }

    fn err(&self, path: &str, kind: MediaErrorKind) -> MediaError {
        MediaError::new(self.name(path), kind)
    }

    /// The error for `name` in `dir` (at `path`) when opening it failed with `e`: a link
    /// (named with its target), or the errno.
    fn open_error(&self, dir: &OwnedFd, name: &str, path: &str, e: Errno) -> MediaError {
        let st = nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW);
        match st {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(dir.as_fd(), name)
                    .map(|t| format!("{:?}", t.to_string_lossy()))
                    .unwrap_or_else(|e| format!("an unreadable target ({e})"));
                self.err(
                    path,
                    MediaErrorKind::Corrupt(format!(
                        "a symbolic link to {target}: links on a medium are never followed"
                    )),
                )
            }
            Ok(st) if e == Errno::ENXIO => self.err(
                path,
                MediaErrorKind::Corrupt(format!("{}, not a regular file", file_kind(&st))),
            ),
            _ => self.err(path, MediaErrorKind::Io(io::Error::from(e))),
        }
    }

    /// Opens the directory made of `parts` beneath the base, never following a link.
    /// `Ok(None)`: a component is missing or is not a directory.
    fn open_dir(&self, parts: &[&str]) -> Result<Option<OwnedFd>, MediaError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut fd = match nix::fcntl::open(&self.base, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(e) => return Err(self.err("", MediaErrorKind::Io(io::Error::from(e)))),
        };
        let mut walked = String::new();
        for part in parts {
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(part);
            match nix::fcntl::openat(fd.as_fd(), *part, flags | OFlag::O_NOFOLLOW, Mode::empty()) {
                Ok(next) => fd = next,
                Err(Errno::ENOENT) => return Ok(None),
                Err(e) => {
                    let st =
                        nix::sys::stat::fstatat(fd.as_fd(), *part, AtFlags::AT_SYMLINK_NOFOLLOW);
                    // A file where a directory is wanted: the path does not exist.
                    if e == Errno::ENOTDIR
                        && st.is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFLNK)
                    {
                        return Ok(None);
                    }
                    return Err(self.open_error(&fd, part, &walked, e));
                }
            }
        }
        Ok(Some(fd))
    }
}

impl Tree for DirTree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let parts = components(path).ok_or_else(|| self.err(path, MediaErrorKind::BadPath))?;
        let Some((name, dirs)) = parts.split_last() else {
            return Ok(None); // the base itself is a directory
        };
        let Some(dir) = self.open_dir(dirs)? else {
            return Ok(None);
        };
        // Non-blocking: opening a FIFO for reading would wait for a writer.
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::openat(dir.as_fd(), *name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(self.open_error(&dir, name, path, e)),
        };
        let st = nix::sys::stat::fstat(fd.as_fd())
            .map_err(|e| self.err(path, MediaErrorKind::Io(io::Error::from(e))))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {}
            libc::S_IFDIR => return Ok(None),
            _ => {
                return Err(self.err(
                    path,
                    MediaErrorKind::Corrupt(format!("{}, not a regular file", file_kind(&st))),
                ))
            }
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size > cap {
            return Err(self.err(path, MediaErrorKind::TooLarge { size, cap }));
        }
        read_capped(fs::File::from(fd), cap, &self.name(path)).map(Some)
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let parts = components(dir).ok_or_else(|| self.err(dir, MediaErrorKind::BadPath))?;
        let Some(fd) = self.open_dir(&parts)? else {
            return Ok(None);
        };
        let io_err = |e: Errno| self.err(dir, MediaErrorKind::Io(io::Error::from(e)));
        let mut d = nix::dir::Dir::from_fd(fd).map_err(io_err)?;
        let mut names = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(io_err)?;
            if let Ok(name) = entry.file_name().to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(Some(names))
    }

    fn describe(&self) -> String {
        self.base.display().to_string()
    }
}

/// Files held in memory, by relative path: fuzz targets and tests build a medium with it.
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    files: std::collections::BTreeMap<String, Vec<u8>>,
}

impl MemTree {
    pub fn new() -> MemTree {
        MemTree::default()
    }

    /// Adds a file; a path with `..` or `.` components is ignored.
    pub fn insert(&mut self, path: &str, data: Vec<u8>) {
        if let Some(parts) = components(path) {
            self.files.insert(parts.join("/"), data);
        }
    }
}

impl Tree for MemTree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let parts = components(path)
            .ok_or_else(|| MediaError::new(path.to_string(), MediaErrorKind::BadPath))?;
        let Some(data) = self.files.get(&parts.join("/")) else {
            return Ok(None);
        };
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        if size > cap {
            return Err(MediaError::new(
                path.to_string(),
                MediaErrorKind::TooLarge { size, cap },
            ));
        }
        Ok(Some(data.clone()))
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let parts = components(dir)
            .ok_or_else(|| MediaError::new(dir.to_string(), MediaErrorKind::BadPath))?;
        let prefix = parts.iter().map(|p| format!("{p}/")).collect::<String>();
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_string)
            .collect();
        names.dedup();
        Ok((!names.is_empty()).then_some(names))
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Reads at most `cap` bytes from `r`; more is [`MediaErrorKind::TooLarge`].
pub fn read_capped(r: impl Read, cap: u64, object: &str) -> Result<Vec<u8>, MediaError> {
    let mut buf = Vec::new();
    r.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| MediaError::new(object, MediaErrorKind::Io(e)))?;
    let size = u64::try_from(buf.len()).unwrap_or(u64::MAX);
    if size > cap {
        return Err(MediaError::new(
            object,
            MediaErrorKind::TooLarge { size, cap },
        ));
    }
    Ok(buf)
}

/// Which filesystem an image or device holds, by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Iso9660,
    Fat,
    Ext4,
}

/// Opens `path` as a directory, or as an ISO9660, FAT, ext2/3/4 or UDF image/device, whichever
/// it is. The label probe reads the first 64 KiB, where UDF's anchor (sector 256) is not, so
/// UDF is tried by opening it: first on what probes as ISO9660, since a hybrid ISO9660/UDF
/// disc (`genisoimage -udf`, the shape of Azure's medium) is read by its UDF side, as `blkid`
/// and `mount` do (its ISO9660 side has only 8.3 names without Rock Ridge or Joliet:
/// `ovf-env.xml` is `OVF_ENV.XML` there); then on what probes as nothing we know.
pub fn open(path: &Path) -> Result<(Box<dyn Tree>, Access), MediaError> {
    open_until(path, None)
}

/// [`open`], with every read of an image stopped at `deadline` (the boot's).
pub fn open_until(
    path: &Path,
    deadline: Option<Deadline>,
) -> Result<(Box<dyn Tree>, Access), MediaError> {
    let object = path.display().to_string();
    let meta =
        fs::metadata(path).map_err(|e| MediaError::new(object.clone(), MediaErrorKind::Io(e)))?;
    if meta.is_dir() {
        return Ok((Box::new(DirTree::new(path)), Access::Directory));
    }
    let budget = || Budget::new(deadline);
    match crate::media::label::probe_path(path)
        .map_err(|e| MediaError::new(object.clone(), MediaErrorKind::Io(e)))?
    {
        Some(label) if label.fs == crate::media::label::FsType::Iso9660 => {
            match udf::UdfTree::open_with(path, budget()) {
                Ok(tree) => Ok((Box::new(tree), Access::Udf)),
                Err(_) => Ok((
                    Box::new(iso9660::IsoTree::open_with(path, budget())?),
                    Access::Iso9660,
                )),
            }
        }
        Some(label) if label.fs == crate::media::label::FsType::Fat => Ok((
            Box::new(fat::FatTree::open_with(path, budget())?),
            Access::Fat,
        )),
        Some(label) if label.fs == crate::media::label::FsType::Ext4 => Ok((
            Box::new(ext4::Ext4Tree::open_with(path, budget())?),
            Access::Ext4,
        )),
        _ => match udf::UdfTree::open_with(path, budget()) {
            Ok(tree) => Ok((Box::new(tree), Access::Udf)),
            Err(e) => {
                log::debug!("media: {object}: not UDF either: {e}");
                Err(MediaError::new(
                    object,
                    MediaErrorKind::Corrupt(
                        "neither a directory nor an ISO9660, FAT, ext2/3/4 or UDF image".into(),
                    ),
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_tree_reads_lists_and_caps() {
        let mut t = MemTree::new();
        t.insert("openstack/latest/meta_data.json", b"{}".to_vec());
        t.insert("openstack/2018-08-27/meta_data.json", b"{}".to_vec());
        t.insert("../evil", b"x".to_vec());
        assert_eq!(
            t.read("openstack/latest/meta_data.json", 2)
                .unwrap()
                .unwrap(),
            b"{}"
        );
        assert!(t.read("openstack/latest/meta_data.json", 1).is_err());
        assert_eq!(t.read("openstack/none", 9).unwrap(), None);
        assert!(t.read("../evil", 9).is_err());
        assert_eq!(
            t.list("openstack").unwrap().unwrap(),
            ["2018-08-27", "latest"]
        );
        assert_eq!(t.list("ec2").unwrap(), None);
    }
}
