//! Filesystem label probes, read from the first bytes of a block device or image: ISO9660
//! volume id (`iso9660.rs`), FAT volume label (`fat.rs`), ext4 label (`ext4.rs`).
//!
//! STUB: to be replaced by the media work (see issue 3).

use std::io;
use std::path::Path;

/// A filesystem we can recognise by its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    Iso9660,
    Fat,
    Ext4,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub fs: FsType,
    /// The label with trailing padding removed, as written (case kept).
    pub label: String,
}

/// Bytes from the start of a device that [`probe`] needs to see.
pub const PROBE_LEN: usize = 64 * 1024;

/// Recognises the filesystem in `buf` (the first bytes of a device) and returns its label.
pub fn probe(_buf: &[u8]) -> Option<Label> {
    None
}

/// Reads the first [`PROBE_LEN`] bytes of `path` (a device or image) and probes them.
pub fn probe_path(_path: &Path) -> io::Result<Option<Label>> {
    Ok(None)
}
