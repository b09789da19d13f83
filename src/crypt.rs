//! SHA-512 (FIPS 180-4) and the SHA-512 crypt password hash (`$6$`, Ulrich Drepper's
//! "Unix crypt using SHA-256 and SHA-512", <https://akkadia.org/drepper/SHA-crypt.txt>),
//! what `/etc/shadow` holds on every current distribution.
//!
//! Own code because it is ~150 lines; the `sha-crypt` crate brings `sha2`, `digest`,
//! `base64ct` and `rand_core` for the same. The salt comes from the caller ([`salt`] reads
//! /dev/urandom). Never logs: a password passes through here and nowhere else.
//! Panic contract: no input makes these functions panic (fixed-size arrays, checked access).
#![deny(clippy::arithmetic_side_effects)]

const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// An incremental SHA-512.
#[derive(Clone)]
pub struct Sha512 {
    h: [u64; 8],
    buf: [u8; 128],
    used: usize,
    len: u128,
}

impl Default for Sha512 {
    fn default() -> Self {
        Sha512 {
            h: [
                0x6a09e667f3bcc908,
                0xbb67ae8584caa73b,
                0x3c6ef372fe94f82b,
                0xa54ff53a5f1d36f1,
                0x510e527fade682d1,
                0x9b05688c2b3e6c1f,
                0x1f83d9abfb41bd6b,
                0x5be0cd19137e2179,
            ],
            buf: [0; 128],
            used: 0,
            len: 0,
        }
    }
}

impl Sha512 {
    pub fn update(&mut self, data: &[u8]) {
        self.len = self
            .len
            .wrapping_add(u128::try_from(data.len()).unwrap_or(0));
        for &b in data {
            if let Some(slot) = self.buf.get_mut(self.used) {
                *slot = b;
            }
            self.used = self.used.saturating_add(1);
            if self.used == 128 {
                let block = self.buf;
                self.compress(&block);
                self.used = 0;
            }
        }
    }

    fn compress(&mut self, block: &[u8; 128]) {
        let mut w = [0u64; 80];
        for (slot, chunk) in w.iter_mut().zip(block.chunks_exact(8)) {
            *slot = u64::from_be_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        }
        for i in 16usize..80 {
            let at = |k: usize| w.get(i.wrapping_sub(k)).copied().unwrap_or(0);
            let (w15, w2) = (at(15), at(2));
            let s0 = w15.rotate_right(1) ^ w15.rotate_right(8) ^ (w15 >> 7);
            let s1 = w2.rotate_right(19) ^ w2.rotate_right(61) ^ (w2 >> 6);
            let v = at(16).wrapping_add(s0).wrapping_add(at(7)).wrapping_add(s1);
            if let Some(slot) = w.get_mut(i) {
                *slot = v;
            }
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.h;
        for (k, wi) in K.iter().zip(w.iter()) {
            let s1 = e.rotate_right(14) ^ e.rotate_right(18) ^ e.rotate_right(41);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(*wi);
            let s0 = a.rotate_right(28) ^ a.rotate_right(34) ^ a.rotate_right(39);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, v) in self.h.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *x = x.wrapping_add(v);
        }
    }

    pub fn finish(mut self) -> [u8; 64] {
        let bits = self.len.wrapping_mul(8);
        self.update_raw(&[0x80]);
        while self.used != 112 {
            self.update_raw(&[0]);
        }
        self.update_raw(&bits.to_be_bytes());
        let mut out = [0u8; 64];
        for (chunk, v) in out.chunks_exact_mut(8).zip(self.h) {
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// `update` without counting the bytes into the message length (padding).
    fn update_raw(&mut self, data: &[u8]) {
        let len = self.len;
        self.update(data);
        self.len = len;
    }
}

pub fn sha512(data: &[u8]) -> [u8; 64] {
    let mut h = Sha512::default();
    h.update(data);
    h.finish()
}

/// The default and the bounds of `rounds=` in the spec.
const ROUNDS_DEFAULT: u32 = 5000;
const ROUNDS_MIN: u32 = 1000;
const ROUNDS_MAX: u32 = 999_999_999;
const B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `$6$[rounds=N$]SALT$HASH` of `password`. The salt is cut to 16 bytes as the spec says.
pub fn sha512_crypt(password: &[u8], salt: &str, rounds: Option<u32>) -> String {
    let salt = salt.as_bytes().get(..16).unwrap_or(salt.as_bytes());
    let rounds_n = rounds
        .unwrap_or(ROUNDS_DEFAULT)
        .clamp(ROUNDS_MIN, ROUNDS_MAX);
    let plen = password.len();
    // Digest B: password, salt, password.
    let mut b = Sha512::default();
    b.update(password);
    b.update(salt);
    b.update(password);
    let db = b.finish();
    // Digest A.
    let mut a = Sha512::default();
    a.update(password);
    a.update(salt);
    let mut n = plen;
    while n > 64 {
        a.update(&db);
        n = n.saturating_sub(64);
    }
    a.update(db.get(..n).unwrap_or_default());
    let mut n = plen;
    while n > 0 {
        if n & 1 == 1 {
            a.update(&db);
        } else {
            a.update(password);
        }
        n >>= 1;
    }
    let mut da = a.finish();
    // P: the password repeated, cut to its length.
    let mut dp_h = Sha512::default();
    for _ in 0..plen {
        dp_h.update(password);
    }
    let dp = dp_h.finish();
    let p: Vec<u8> = dp.iter().copied().cycle().take(plen).collect();
    // S: the salt repeated 16 + A[0] times.
    let mut ds_h = Sha512::default();
    for _ in 0..16usize.saturating_add(usize::from(da.first().copied().unwrap_or(0))) {
        ds_h.update(salt);
    }
    let ds = ds_h.finish();
    let s: Vec<u8> = ds.iter().copied().cycle().take(salt.len()).collect();
    for i in 0..rounds_n {
        let mut c = Sha512::default();
        if i & 1 == 1 {
            c.update(&p);
        } else {
            c.update(&da);
        }
        if i % 3 != 0 {
            c.update(&s);
        }
        if i % 7 != 0 {
            c.update(&p);
        }
        if i & 1 == 1 {
            c.update(&da);
        } else {
            c.update(&p);
        }
        da = c.finish();
    }
    let mut out = String::from("$6$");
    if rounds.is_some() {
        out.push_str(&format!("rounds={rounds_n}$"));
    }
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    // The spec's byte order for the final 64 bytes.
    const ORDER: [(usize, usize, usize); 21] = [
        (0, 21, 42),
        (22, 43, 1),
        (44, 2, 23),
        (3, 24, 45),
        (25, 46, 4),
        (47, 5, 26),
        (6, 27, 48),
        (28, 49, 7),
        (50, 8, 29),
        (9, 30, 51),
        (31, 52, 10),
        (53, 11, 32),
        (12, 33, 54),
        (34, 55, 13),
        (56, 14, 35),
        (15, 36, 57),
        (37, 58, 16),
        (59, 17, 38),
        (18, 39, 60),
        (40, 61, 19),
        (62, 20, 41),
    ];
    let byte = |i: usize| u32::from(da.get(i).copied().unwrap_or(0));
    let mut push = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(
                B64.get((v & 0x3f) as usize).copied().unwrap_or(b'.'),
            ));
            v >>= 6;
        }
    };
    for (x, y, z) in ORDER {
        push((byte(x) << 16) | (byte(y) << 8) | byte(z), 4);
    }
    push(byte(63), 2);
    out
}

/// 16 salt characters from /dev/urandom.
pub fn salt() -> std::io::Result<String> {
    use std::io::Read;
    let mut raw = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw
        .iter()
        .map(|b| char::from(B64.get(usize::from(b & 0x3f)).copied().unwrap_or(b'.')))
        .collect())
}

/// Does `value` look like a crypt(3) hash already (`$id$...`, as cloud-config's
/// `chpasswd` `type: hash` and OpenNebula's `CRYPTED_PASSWORD` give)?
pub fn is_hash(value: &str) -> bool {
    value.starts_with('$') && value.matches('$').count() >= 3 && !value.contains([':', '\n'])
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha512_vectors() {
        assert_eq!(hex(&sha512(b"abc")), "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
        let long = vec![b'a'; 1000];
        let mut h = Sha512::default();
        h.update(&long[..300]);
        h.update(&long[300..]);
        assert_eq!(h.finish(), sha512(&long), "incremental");
    }

    #[test]
    fn drepper_vectors() {
        // From the specification's test vectors.
        assert_eq!(
            sha512_crypt(b"Hello world!", "saltstring", None),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert_eq!(
            sha512_crypt(b"Hello world!", "saltstringsaltstring", Some(10000)),
            "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."
        );
        assert!(is_hash("$6$abc$def") && !is_hash("hunter2"));
        assert_eq!(salt().unwrap().len(), 16);
    }
}
