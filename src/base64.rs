//! Base64 (RFC 4648 standard alphabet) decoding, in the two flavours preroot's inputs need:
//! [`strict`] for metadata values (OpenNebula, GCE, OpenStack's `random_seed`), where a
//! damaged value is refused rather than handed on corrupted, and [`lenient`] for MIME
//! bodies, decoded as Python's `email` package does (what cloud-init and Heat produce and
//! read). Pure; never panics.
#![deny(clippy::arithmetic_side_effects)]

/// The 6-bit value of an alphabet character.
fn sextet(b: u8) -> Option<u8> {
    Some(match b {
        b'A'..=b'Z' => b.wrapping_sub(b'A'),
        b'a'..=b'z' => b.wrapping_sub(b'a').wrapping_add(26),
        b'0'..=b'9' => b.wrapping_sub(b'0').wrapping_add(52),
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

/// Characters gathered four at a time into three bytes.
#[derive(Default)]
struct Groups {
    out: Vec<u8>,
    acc: u32,
    count: u8,
}

impl Groups {
    fn push(&mut self, v: u8) {
        self.acc = self.acc.wrapping_shl(6) | u32::from(v);
        self.count = self.count.saturating_add(1);
        if self.count == 4 {
            let [_, x, y, z] = self.acc.to_be_bytes();
            self.out.extend_from_slice(&[x, y, z]);
            self.acc = 0;
            self.count = 0;
        }
    }

    /// The bits of a final group of 2 or 3 characters (12 or 18) that carry no byte.
    fn leftover_bits(&self) -> u32 {
        match self.count {
            2 => self.acc & 0xf,
            3 => self.acc & 0x3,
            _ => 0,
        }
    }

    /// The bytes so far, with those of a final group of 2 or 3 characters.
    fn finish(mut self) -> Vec<u8> {
        match self.count {
            2 => {
                let [_, _, _, x] = self.acc.wrapping_shr(4).to_be_bytes();
                self.out.push(x);
            }
            3 => {
                let [_, _, x, y] = self.acc.wrapping_shr(2).to_be_bytes();
                self.out.extend_from_slice(&[x, y]);
            }
            _ => {}
        }
        self.out
    }
}

/// Strict base64: `=` padding required. ASCII whitespace is skipped (long values are often
/// wrapped); anything else outside the alphabet, data after padding, or non-zero leftover
/// bits is `None`. cloud-init's decoder silently drops invalid characters; we would rather
/// refuse than hand on corrupted user data.
pub fn strict(text: &str) -> Option<Vec<u8>> {
    let mut g = Groups {
        out: Vec::with_capacity(text.len().checked_div(4)?.saturating_mul(3)),
        ..Groups::default()
    };
    let mut pad: u8 = 0;
    for b in text.bytes() {
        if b.is_ascii_whitespace() {
            continue;
        }
        if b == b'=' {
            pad = pad.saturating_add(1);
            continue;
        }
        if pad > 0 {
            return None;
        }
        g.push(sextet(b)?);
    }
    match (g.count, pad) {
        (0, 0) | (2, 2) | (3, 1) if g.leftover_bits() == 0 => Some(g.finish()),
        _ => None,
    }
}

/// Base64 as Python's `email` decodes it: characters outside the alphabet are skipped, a
/// missing final padding is tolerated, data after the padding ignored.
pub fn lenient(text: &[u8]) -> Vec<u8> {
    let mut g = Groups {
        out: Vec::with_capacity((text.len() / 4).saturating_mul(3)),
        ..Groups::default()
    };
    for &b in text {
        if b == b'=' {
            break;
        }
        if let Some(v) = sextet(b) {
            g.push(v);
        }
    }
    g.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_cases() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("", Some(b"")),
            ("aGk=", Some(b"hi")),
            ("aGk", None),
            ("aGV5", Some(b"hey")),
            ("aGVsbG8=", Some(b"hello")),
            ("aGVs\nbG8=\n", Some(b"hello")),
            ("I2Nsb3VkLWNvbmZpZwo=", Some(b"#cloud-config\n")),
            ("/+/+", Some(&[0xff, 0xef, 0xfe])),
            ("aGk=aGk=", None),
            ("aG!=", None),
            ("aGl=", None),
            ("aR==", None),
            ("a===", None),
            ("=", None),
            ("aGk-", None),
        ];
        for (text, want) in cases {
            assert_eq!(strict(text).as_deref(), *want, "case {text:?}");
        }
    }

    #[test]
    fn lenient_cases() {
        assert_eq!(lenient(b"YQ"), b"a");
        assert_eq!(lenient(b"YWI"), b"ab");
        assert_eq!(lenient(b"YW\nI!="), b"ab");
        assert_eq!(lenient(b"aGk=aGk="), b"hi");
        assert_eq!(lenient(b"Y"), b"");
    }
}
