//! ext2/3/4 label probe: the superblock's `s_volume_name`.
//!
//! Owns only the magic and label fields of the primary superblock at byte 1024. Does not check
//! feature flags, checksums or backup superblocks, and reads no files: `media::ext4` reads an
//! ext2/3/4 seed's files in user space (it is never mounted) and checks the features there.
//!
//! Spec: Linux `Documentation/filesystems/ext4/super.rst`: superblock at byte 1024, `s_magic`
//! 0xEF53 (LE) at 0x38, `s_volume_name[16]` at 0x78, NUL padded.
//!
//! Panic contract: [`probe`] never panics on any input (checked by `#[no_panic]` in the
//! `nopanic` build) and does not allocate.
#![deny(clippy::arithmetic_side_effects)]

/// Byte offset of the primary superblock.
const SUPERBLOCK: usize = 1024;
/// `s_magic`, relative to the superblock.
const MAGIC_AT: usize = SUPERBLOCK + 0x38;
/// `s_volume_name`, relative to the superblock.
const LABEL_AT: usize = SUPERBLOCK + 0x78;
const LABEL_LEN: usize = 16;

/// Recognises an ext2/3/4 superblock in `buf` (the first bytes of a device) and returns the
/// label without its NUL padding (empty when unlabelled), or `None` if this is not ext*.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn probe(buf: &[u8]) -> Option<&[u8]> {
    if buf.get(MAGIC_AT..MAGIC_AT.checked_add(2)?)? != [0x53, 0xEF] {
        return None;
    }
    let mut label = buf.get(LABEL_AT..LABEL_AT.checked_add(LABEL_LEN)?)?;
    // The kernel treats the name as a C string: stop at the first NUL.
    if let Some(end) = label.iter().position(|b| *b == 0) {
        label = label.get(..end)?;
    }
    Some(label)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::type_complexity)] // test tables build images by hand
mod tests {
    use super::*;

    fn image(label: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 2048];
        b[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[LABEL_AT..LABEL_AT + label.len()].copy_from_slice(label);
        b
    }

    #[test]
    fn probe_cases() {
        let full16 = image(b"0123456789abcdef");
        let cases: &[(&str, &[u8], Option<&[u8]>)] = &[
            ("cidata", &image(b"cidata"), Some(b"cidata")),
            ("unlabelled", &image(b""), Some(b"")),
            ("16 bytes, no NUL", &full16, Some(b"0123456789abcdef")),
            ("cut inside the label", &full16[..LABEL_AT + 15], None),
            (
                "cut at the label end",
                &full16[..LABEL_AT + 16],
                Some(b"0123456789abcdef"),
            ),
            ("cut before the magic", &full16[..MAGIC_AT + 1], None),
            ("all zero", &[0u8; 4096], None),
            ("empty", &[], None),
        ];
        for (name, buf, want) in cases {
            assert_eq!(probe(buf), *want, "case {name}");
        }
    }
}
