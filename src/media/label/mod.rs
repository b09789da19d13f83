//! Filesystem label probes, read from the first bytes of a block device or image: ISO9660
//! volume id (`iso9660.rs`), FAT volume label (`fat.rs`), ext2/3/4 label (`ext4.rs`).
//!
//! Owns the dispatch between the three pure, non-allocating probes and the one read of a
//! device ([`probe_path`]). Does not support other filesystems (btrfs, xfs, UDF, exFAT):
//! datasource media are ISO9660 (config drive, NoCloud `cidata`), FAT (`config-2`/`cidata`
//! written by Ironic or users) or ext4 (`cidata` images).
//!
//! Panic contract: [`probe`] never panics; the byte-level probes it calls carry `#[no_panic]`.

pub mod ext4;
pub mod fat;
pub mod iso9660;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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
    /// The label with trailing padding removed, as written (case kept). Empty when the
    /// filesystem has none: a probe that recognises the filesystem always returns a `Label`.
    pub label: String,
}

/// Bytes from the start of a device that [`probe`] needs to see.
pub const PROBE_LEN: usize = 64 * 1024;

/// How much of a FAT root directory [`probe_path`] reads when it lies past [`PROBE_LEN`].
/// The volume-label entry is the first entry in practice; 64 KiB is 2048 entries.
const FAT_ROOT_SCAN: u64 = 64 * 1024;

/// Recognises the filesystem in `buf` (the first bytes of a device) and returns its label.
/// ISO9660 is tried first: a hybrid ISO also carries an MBR in its first sector.
pub fn probe(buf: &[u8]) -> Option<Label> {
    if let Some(raw) = iso9660::probe(buf) {
        let label = match raw {
            iso9660::RawLabel::Ascii(b) => String::from_utf8_lossy(b).into_owned(),
            iso9660::RawLabel::Ucs2Be(b) => ucs2be_to_string(b),
        };
        return Some(Label {
            fs: FsType::Iso9660,
            label,
        });
    }
    if let Some(found) = fat::probe(buf) {
        return Some(fat_label(found.label.as_ref()));
    }
    ext4::probe(buf).map(|b| Label {
        fs: FsType::Ext4,
        label: String::from_utf8_lossy(b).into_owned(),
    })
}

fn fat_label(raw: Option<&[u8; 11]>) -> Label {
    Label {
        fs: FsType::Fat,
        label: raw
            .and_then(fat::label_text)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default(),
    }
}

/// Decodes UCS-2/UTF-16 big-endian; unpaired surrogates become U+FFFD.
pub(crate) fn ucs2be_to_string(b: &[u8]) -> String {
    let units = b.chunks_exact(2).map(|c| {
        u16::from_be_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    });
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Opens `path` read-only and close-on-exec (a device is opened the same way; no `O_EXCL`, so
/// a mounted device can still be probed). Only a regular file (an image) or a block device is
/// opened: a FIFO, character device or socket is an error naming what it is, never a read
/// that blocks or never ends (`/dev/zero` as `dev/sr0`, a FIFO given to `--from`). The first
/// open is non-blocking (opening a FIFO would wait for a writer); a block device is then
/// opened again without `O_NONBLOCK` (a CD-ROM drive opened non-blocking is opened for its
/// tray, not its disc), and must be the same device.
pub(crate) fn open_ro(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let open = |extra: i32| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | extra)
            .open(path)
    };
    let file = open(libc::O_NONBLOCK)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    if !kind.is_block_device() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "a special file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}, not an image file or a block device"),
        ));
    }
    let again = open(0)?;
    let same = again.metadata()?;
    if !same.file_type().is_block_device() || same.rdev() != meta.rdev() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "changed while it was opened",
        ));
    }
    Ok(again)
}

/// Reads up to `len` bytes at `offset`; fewer at the end of the file.
fn read_upto(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0usize;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        let at = offset.saturating_add(u64::try_from(got).unwrap_or(u64::MAX));
        match file.read_at(rest, at) {
            Ok(0) => break,
            Ok(n) => got = got.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Reads the first [`PROBE_LEN`] bytes of `path` (a device or image) and probes them. A short
/// file is fine. For FAT, when the root directory lies past those bytes, it is read too so the
/// root volume-label entry wins over the BPB label, as with [`probe`] on a long enough prefix.
pub fn probe_path(path: &Path) -> io::Result<Option<Label>> {
    let file = open_ro(path)?;
    let buf = read_upto(&file, 0, PROBE_LEN)?;
    if iso9660::probe(&buf).is_none() {
        if let Some(found) = fat::probe(&buf) {
            if !found.root_seen {
                if let Some((at, len)) = found.bpb.root_dir_region() {
                    let len = usize::try_from(len.min(FAT_ROOT_SCAN)).unwrap_or(0);
                    // A root directory we cannot read leaves the BPB label: the probe must
                    // not fail on what the reader would report as damage later.
                    if let Some(l) = read_upto(&file, at, len)
                        .ok()
                        .and_then(|dir| fat::dir_volume_label(&dir))
                    {
                        return Ok(Some(fat_label(Some(&l))));
                    }
                }
            }
        }
    }
    Ok(probe(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucs2() {
        assert_eq!(ucs2be_to_string(b"\0c\0i\0d"), "cid", "ascii");
        assert_eq!(
            ucs2be_to_string(b"\x00\xe9\xd8\x00"),
            "é\u{FFFD}",
            "lone surrogate"
        );
    }

    #[test]
    fn dispatch() {
        let mut ext = vec![0u8; 2048];
        ext[1024 + 0x38..1024 + 0x3A].copy_from_slice(&[0x53, 0xEF]);
        ext[1024 + 0x78..1024 + 0x7E].copy_from_slice(b"cidata");
        assert_eq!(
            probe(&ext),
            Some(Label {
                fs: FsType::Ext4,
                label: "cidata".into()
            }),
            "ext4"
        );
        assert_eq!(probe(&[0u8; PROBE_LEN]), None, "zeros");
        assert_eq!(probe(&[]), None, "empty");
    }

    #[test]
    fn probe_path_short_file() {
        let dir = std::env::temp_dir().join(format!("preroot-label-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("short");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(probe_path(&f).unwrap(), None, "short file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
