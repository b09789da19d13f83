//! Reading datasource media without mounting them: a directory, an ISO9660 image or device
//! (`iso9660.rs`), or a FAT12/16/32 image or device (`fat.rs`), all behind one [`Tree`].
//!
//! Owns path lookup and the size cap on every read. Never mounts, never writes, never follows
//! a path out of the medium (`..` and absolute components are refused).

pub mod fat;
pub mod iso9660;

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

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

/// A directory on a mounted filesystem (or a test tree). Refuses symlinks that leave it.
#[derive(Debug, Clone)]
pub struct DirTree {
    base: PathBuf,
}

impl DirTree {
    pub fn new(base: impl Into<PathBuf>) -> DirTree {
        DirTree { base: base.into() }
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, MediaError> {
        let parts = components(path)
            .ok_or_else(|| MediaError::new(self.name(path), MediaErrorKind::BadPath))?;
        let mut p = self.base.clone();
        for part in parts {
            p.push(part);
        }
        Ok(p)
    }

    fn name(&self, path: &str) -> String {
        self.base.join(path).display().to_string()
    }
}

impl Tree for DirTree {
    fn read(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let full = self.resolve(path)?;
        let object = full.display().to_string();
        let file = match fs::File::open(&full) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(MediaError::new(object, MediaErrorKind::Io(e))),
        };
        let meta = file
            .metadata()
            .map_err(|e| MediaError::new(object.clone(), MediaErrorKind::Io(e)))?;
        if meta.is_dir() {
            return Ok(None);
        }
        read_capped(file, cap, &object).map(Some)
    }

    fn list(&self, dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        let full = self.resolve(dir)?;
        let entries = match fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(MediaError::new(
                    full.display().to_string(),
                    MediaErrorKind::Io(e),
                ))
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
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
}

/// Opens `path` as a directory, or as an ISO9660 or FAT image/device, whichever it is.
pub fn open(path: &Path) -> Result<(Box<dyn Tree>, crate::context::Medium), MediaError> {
    use crate::context::Medium;
    let object = path.display().to_string();
    let meta =
        fs::metadata(path).map_err(|e| MediaError::new(object.clone(), MediaErrorKind::Io(e)))?;
    if meta.is_dir() {
        return Ok((Box::new(DirTree::new(path)), Medium::Directory));
    }
    match crate::detect::label::probe_path(path)
        .map_err(|e| MediaError::new(object.clone(), MediaErrorKind::Io(e)))?
    {
        Some(label) if label.fs == crate::detect::label::FsType::Iso9660 => {
            Ok((Box::new(iso9660::IsoTree::open(path)?), Medium::Iso9660))
        }
        Some(label) if label.fs == crate::detect::label::FsType::Fat => {
            Ok((Box::new(fat::FatTree::open(path)?), Medium::Fat))
        }
        _ => Err(MediaError::new(
            object,
            MediaErrorKind::Corrupt("neither a directory, an ISO9660 image nor a FAT image".into()),
        )),
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
