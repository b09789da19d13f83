//! The one byte reader of the parsers: fixed-width integers at an offset of untrusted bytes,
//! and the one in-place writer of the table code.
//!
//! Owns bounds checking, so no parser indexes or slices a buffer itself. Every function is
//! total: an offset past the end (or an overflowing one) gives `None`, never a panic
//! (`#[no_panic]`, proven by `make nopanic`). Never allocates.

/// `N` bytes at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn array<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    <[u8; N]>::try_from(b.get(off..off.checked_add(N)?)?).ok()
}

/// Little-endian `u16` at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    array(b, off).map(u16::from_le_bytes)
}

/// Little-endian `u32` at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    array(b, off).map(u32::from_le_bytes)
}

/// Little-endian `u64` at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    array(b, off).map(u64::from_le_bytes)
}

/// Big-endian (network order) `u16` at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn be_u16(b: &[u8], off: usize) -> Option<u16> {
    array(b, off).map(u16::from_be_bytes)
}

/// Big-endian (network order) `u32` at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn be_u32(b: &[u8], off: usize) -> Option<u32> {
    array(b, off).map(u32::from_be_bytes)
}

/// Big-endian (network order) `u64` at `off`.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn be_u64(b: &[u8], off: usize) -> Option<u64> {
    array(b, off).map(u64::from_be_bytes)
}

/// Host-order `u16` at `off` (netlink messages).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn ne_u16(b: &[u8], off: usize) -> Option<u16> {
    array(b, off).map(u16::from_ne_bytes)
}

/// Host-order `u32` at `off` (netlink messages).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn ne_u32(b: &[u8], off: usize) -> Option<u32> {
    array(b, off).map(u32::from_ne_bytes)
}

/// Copies `bytes` into `b` at `off`; `None` (and `b` unchanged) if they do not fit.
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn put(b: &mut [u8], off: usize, bytes: &[u8]) -> Option<()> {
    b.get_mut(off..off.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_bounds_only() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(le_u16(&b, 0), Some(0x0201), "le_u16 at 0");
        assert_eq!(be_u16(&b, 0), Some(0x0102), "be_u16 at 0");
        assert_eq!(le_u32(&b, 5), Some(0x0908_0706), "le_u32 at the end");
        assert_eq!(be_u32(&b, 1), Some(0x0203_0405), "be_u32 at 1");
        assert_eq!(le_u64(&b, 1), Some(0x0908_0706_0504_0302), "le_u64 at 1");
        assert_eq!(be_u64(&b, 0), Some(0x0102_0304_0506_0708), "be_u64 at 0");
        assert_eq!(
            ne_u32(&b, 0),
            Some(u32::from_ne_bytes([1, 2, 3, 4])),
            "ne_u32"
        );
        assert_eq!(
            ne_u16(&b, 7),
            Some(u16::from_ne_bytes([8, 9])),
            "ne_u16 at the end"
        );
        for (case, got) in [
            ("le_u32 one past", le_u32(&b, 6).is_none()),
            ("le_u64 past", le_u64(&b, 2).is_none()),
            ("be_u16 at len", be_u16(&b, 9).is_none()),
            ("overflowing offset", le_u16(&b, usize::MAX).is_none()),
            ("empty", array::<1>(&[], 0).is_none()),
        ] {
            assert!(got, "case {case}");
        }
    }

    #[test]
    fn put_fits_or_leaves_alone() {
        let mut b = [0u8; 4];
        assert_eq!(put(&mut b, 2, &[7, 8]), Some(()));
        assert_eq!(b, [0, 0, 7, 8]);
        assert_eq!(put(&mut b, 3, &[1, 1]), None, "one byte over");
        assert_eq!(put(&mut b, usize::MAX, &[1]), None, "overflowing offset");
        assert_eq!(b, [0, 0, 7, 8], "unchanged after refusals");
    }
}
