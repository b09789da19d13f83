//! Shared by the gpt and mbr targets: a sparse disk in memory built from the fuzz input,
//! the table read and planned as the grow stage does (`preroot::disk::plan_table`), the plan
//! applied, and the result checked: the written table must read back, a second plan must
//! find nothing to do, and a partition never shrinks.
//!
//! Input: an 8-byte head, then records of a 4-byte little-endian sector number and that
//! sector's bytes (the last one may be short; missing sectors read as zeros).
//! Head: `flags` (bit 0: 4096-byte sectors, else 512; bit 1: recompute the primary GPT's
//! CRCs; bit 2: the same for the backup at the primary's `alternate_lba`; bit 3: put a
//! protective entry in sector 0), the partition number, the disk size in sectors (u32 LE,
//! at least past the last record), and how many MiB the disk grew (u16 LE).
#![allow(dead_code)]

use preroot::disk::{crc32, plan_table, ErrorKind, GrowError, Step};
use std::collections::BTreeMap;

pub struct Disk {
    pub ss: u64,
    pub sectors: u64,
    data: BTreeMap<u64, Vec<u8>>,
}

fn io(message: &str) -> GrowError {
    GrowError {
        kind: ErrorKind::Io,
        object: "fuzz".into(),
        message: message.into(),
    }
}

impl Disk {
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, GrowError> {
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| io("offset overflow"))?;
        if end > self.sectors * self.ss {
            return Err(io("read past the end of the disk"));
        }
        let mut out = vec![0u8; len];
        let mut pos = offset;
        while pos < end {
            let lba = pos / self.ss;
            let within = (pos % self.ss) as usize;
            let n = ((self.ss as usize) - within).min((end - pos) as usize);
            if let Some(s) = self.data.get(&lba) {
                let at = (pos - offset) as usize;
                out[at..at + n].copy_from_slice(&s[within..within + n]);
            }
            pos += n as u64;
        }
        Ok(out)
    }

    pub fn write(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset + bytes.len() as u64;
        assert!(
            end <= self.sectors * self.ss,
            "plan writes past the disk's end: {offset}+{} > {}",
            bytes.len(),
            self.sectors * self.ss
        );
        let mut pos = offset;
        while pos < end {
            let lba = pos / self.ss;
            let within = (pos % self.ss) as usize;
            let n = ((self.ss as usize) - within).min((end - pos) as usize);
            let ss = self.ss as usize;
            let s = self.data.entry(lba).or_insert_with(|| vec![0u8; ss]);
            let at = (pos - offset) as usize;
            s[within..within + n].copy_from_slice(&bytes[at..at + n]);
            pos += n as u64;
        }
    }

    fn le32(&self, offset: u64) -> Option<u32> {
        let b = self.read(offset, 4).ok()?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    fn le64(&self, offset: u64) -> Option<u64> {
        let b = self.read(offset, 8).ok()?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Recomputes the entries CRC and header CRC of the GPT header at `lba`, when its sizes
    /// are sane; returns the header's `alternate_lba`.
    fn fix_gpt(&mut self, lba: u64) -> Option<u64> {
        let h = lba.checked_mul(self.ss)?;
        let size = self.le32(h + 12)?;
        if size < 92 || u64::from(size) > self.ss {
            return None;
        }
        let entries_lba = self.le64(h + 72)?;
        let count = self.le32(h + 80)?;
        let esize = self.le32(h + 84)?;
        let bytes = u64::from(count) * u64::from(esize);
        if bytes <= 1 << 20 {
            if let Ok(e) = self.read(entries_lba.checked_mul(self.ss)?, bytes as usize) {
                self.write(h + 88, &crc32(&e).to_le_bytes());
            }
        }
        self.write(h + 16, &[0; 4]);
        let raw = self.read(h, size as usize).ok()?;
        self.write(h + 16, &crc32(&raw).to_le_bytes());
        self.le64(h + 32)
    }
}

pub struct Case {
    pub disk: Disk,
    pub number: u32,
}

pub fn case(data: &[u8], gpt_fixups: bool) -> Option<Case> {
    let (head, mut rest) = data.split_at_checked(8)?;
    let flags = head[0];
    let ss: u64 = if flags & 1 != 0 { 4096 } else { 512 };
    let number = u32::from(head[1]);
    let size = u64::from(u32::from_le_bytes(head[2..6].try_into().ok()?));
    let grow_mib = u64::from(u16::from_le_bytes(head[6..8].try_into().ok()?));
    let mut data = BTreeMap::new();
    let mut last = 0u64;
    while let Some((lba, r)) = rest.split_at_checked(4) {
        let lba = u64::from(u32::from_le_bytes(lba.try_into().ok()?));
        let n = r.len().min(ss as usize);
        let mut sector = vec![0u8; ss as usize];
        sector[..n].copy_from_slice(&r[..n]);
        data.insert(lba, sector);
        last = last.max(lba + 1);
        rest = &r[n..];
    }
    let sectors = size.max(last) + grow_mib * ((1 << 20) / ss);
    if sectors == 0 {
        return None;
    }
    let mut disk = Disk { ss, sectors, data };
    if flags & 8 != 0 {
        disk.write(446 + 4, &[0xEE]);
    }
    if gpt_fixups && flags & 2 != 0 {
        let alt = disk.fix_gpt(1);
        if flags & 4 != 0 {
            if let Some(alt) = alt.filter(|a| *a < disk.sectors) {
                disk.fix_gpt(alt);
            }
        }
    }
    Some(Case { disk, number })
}

/// Plans, applies, and checks the result (see the module comment).
pub fn run(data: &[u8], gpt_fixups: bool) {
    let Some(Case { mut disk, number }) = case(data, gpt_fixups) else {
        return;
    };
    let ss = disk.ss as u32;
    let sectors = disk.sectors;
    let Ok(p) = plan_table(&mut |o, l| disk.read(o, l), "fuzz", number, ss, sectors) else {
        return;
    };
    assert!(
        p.new_sectors >= p.old_sectors,
        "plan shrinks partition {number}: {p:?}"
    );
    for step in &p.steps {
        if let Step::Write { offset, data, .. } = step {
            disk.write(*offset, data);
        }
    }
    let again = plan_table(&mut |o, l| disk.read(o, l), "fuzz", number, ss, sectors);
    let again = match again {
        Ok(a) => a,
        Err(e) => panic!("the table written does not read back: {e}; first plan {p:?}"),
    };
    assert!(
        again.steps.is_empty(),
        "a second plan writes again: {again:?}; first plan {p:?}"
    );
    assert_eq!(
        (again.start_lba, again.old_sectors),
        (p.start_lba, p.new_sectors),
        "the table written does not hold the planned size"
    );
}
