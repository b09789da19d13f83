//! MBR (DOS) partition tables: parse, validate and plan the growth of a primary partition,
//! or of the last logical partition together with its extended partition. No I/O.
//!
//! Owns the four-entry table at byte 446 of sector 0 and the EBR chain of an extended
//! partition (types 0x05, 0x0F, 0x85). Limits: a partition ends at the next one, the disk's
//! end or the 2 TiB limit of 32-bit LBAs (2^32 sectors), whichever comes first, aligned down
//! to 1 MiB. CHS fields of a changed entry are set to "beyond CHS" (0xFE 0xFF 0xFF), as
//! `sfdisk` does for large disks. Does not handle a protective MBR (that is [`super::gpt`]).
//!
//! Panic contract: nothing here panics on any input; arithmetic is checked.
#![deny(clippy::arithmetic_side_effects)]

use super::{Step, TableError};
use crate::bytes::{le_u32, put};

const TABLE: usize = 446;
/// EBR chains longer than this are refused (a loop, or hostile).
const MAX_LOGICAL: usize = 128;

/// One entry of a partition table (MBR or EBR), LBAs absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub kind: u8,
    pub start: u64,
    pub sectors: u64,
    /// Sector holding the table with this entry, and the entry's index in it.
    table_lba: u64,
    slot: usize,
}

impl Part {
    pub fn end_excl(&self) -> u64 {
        self.start.saturating_add(self.sectors)
    }
}

/// A validated MBR: its primaries and, if any, the logical partitions of its extended one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    pub primaries: Vec<Part>,
    pub extended: Option<Part>,
    pub logicals: Vec<Part>,
    /// Each table sector read (sector 0 and the EBRs), by LBA, first 512 bytes.
    tables: Vec<(u64, Vec<u8>)>,
}

fn err(message: impl Into<String>) -> TableError {
    TableError(message.into())
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

/// The four raw entries of a table sector: (type, relative start, sectors).
fn entries(sector: &[u8]) -> Result<[(u8, u32, u32); 4], TableError> {
    if sector.get(510..512) != Some([0x55, 0xAA].as_slice()) {
        return Err(err("no MBR signature"));
    }
    let mut out = [(0u8, 0u32, 0u32); 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let base = i
            .checked_mul(16)
            .and_then(|o| o.checked_add(TABLE))
            .ok_or_else(|| err("MBR"))?;
        let kind = *sector
            .get(base.saturating_add(4))
            .ok_or_else(|| err("MBR cut short"))?;
        let start = le_u32(sector, base.saturating_add(8)).ok_or_else(|| err("MBR cut short"))?;
        let size = le_u32(sector, base.saturating_add(12)).ok_or_else(|| err("MBR cut short"))?;
        *slot = (kind, start, size);
    }
    Ok(out)
}

impl Mbr {
    /// Parses sector 0 (`sector0`); `read_ebr(lba)` returns the first 512 bytes of an EBR.
    /// Refuses a protective MBR (0xEE), overlapping partitions, partitions past the disk's
    /// end and EBR chains that loop or leave the extended partition.
    pub fn parse(
        sector0: &[u8],
        disk_sectors: u64,
        mut read_ebr: impl FnMut(u64) -> Option<Vec<u8>>,
    ) -> Result<Mbr, TableError> {
        let mut mbr = Mbr {
            primaries: Vec::new(),
            extended: None,
            logicals: Vec::new(),
            tables: vec![(
                0,
                sector0
                    .get(..512)
                    .ok_or_else(|| err("MBR cut short"))?
                    .to_vec(),
            )],
        };
        for (slot, (kind, start, size)) in entries(sector0)?.into_iter().enumerate() {
            if kind == 0 || size == 0 {
                continue;
            }
            if kind == 0xEE {
                return Err(err("protective MBR: this is a GPT disk"));
            }
            let number = u32::try_from(slot)
                .ok()
                .and_then(|s| s.checked_add(1))
                .ok_or_else(|| err("MBR"))?;
            let part = Part {
                number,
                kind,
                start: u64::from(start),
                sectors: u64::from(size),
                table_lba: 0,
                slot,
            };
            if start == 0 || part.end_excl() > disk_sectors {
                return Err(err(format!("MBR partition {number} lies outside the disk")));
            }
            if is_extended(kind) {
                if mbr.extended.is_some() {
                    return Err(err("MBR has two extended partitions"));
                }
                mbr.extended = Some(part);
            }
            mbr.primaries.push(part);
        }
        if let Some(ext) = mbr.extended {
            let mut ebr = ext.start;
            let mut number = 5u32;
            loop {
                if mbr.logicals.len() >= MAX_LOGICAL {
                    return Err(err("EBR chain too long (a loop?)"));
                }
                let sector = read_ebr(ebr)
                    .ok_or_else(|| err(format!("cannot read the EBR at LBA {ebr}")))?;
                let e = entries(&sector).map_err(|e| err(format!("EBR at LBA {ebr}: {}", e.0)))?;
                mbr.tables.push((ebr, sector));
                let (kind, rel, size) = e[0];
                if kind != 0 && size != 0 {
                    let start = ebr.checked_add(u64::from(rel)).ok_or_else(|| err("EBR"))?;
                    let part = Part {
                        number,
                        kind,
                        start,
                        sectors: u64::from(size),
                        table_lba: ebr,
                        slot: 0,
                    };
                    if rel == 0 || start < ext.start || part.end_excl() > ext.end_excl() {
                        return Err(err(format!(
                            "logical partition {number} lies outside its extended partition"
                        )));
                    }
                    mbr.logicals.push(part);
                    number = number.checked_add(1).ok_or_else(|| err("EBR"))?;
                }
                let (next_kind, next_rel, _) = e[1];
                if next_kind == 0 || next_rel == 0 {
                    break;
                }
                let next = ext
                    .start
                    .checked_add(u64::from(next_rel))
                    .ok_or_else(|| err("EBR"))?;
                if next <= ebr || next >= ext.end_excl() {
                    return Err(err(format!(
                        "EBR chain goes backwards or out at LBA {next}"
                    )));
                }
                ebr = next;
            }
        }
        // No overlaps among primaries (the extended one contains the logicals), nor among logicals.
        for list in [&mbr.primaries, &mbr.logicals] {
            for (i, a) in list.iter().enumerate() {
                for b in list.iter().skip(i.saturating_add(1)) {
                    if a.start < b.end_excl() && b.start < a.end_excl() {
                        return Err(err(format!(
                            "MBR partitions {} and {} overlap",
                            a.number, b.number
                        )));
                    }
                }
            }
        }
        Ok(mbr)
    }

    pub fn partition(&self, number: u32) -> Option<&Part> {
        self.primaries
            .iter()
            .chain(self.logicals.iter())
            .find(|p| p.number == number)
    }

    fn table(&self, lba: u64) -> Option<&[u8]> {
        self.tables
            .iter()
            .find(|(l, _)| *l == lba)
            .map(|(_, s)| s.as_slice())
    }
}

/// What growing an MBR partition would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrPlan {
    pub partition: u32,
    pub start: u64,
    pub old_sectors: u64,
    pub new_sectors: u64,
    pub steps: Vec<Step>,
}

/// Sets entry `slot` of the table `sector` to `sectors` long, CHS end "beyond CHS".
fn resize_entry(sector: &[u8], slot: usize, sectors: u64) -> Option<Vec<u8>> {
    let mut s = sector.get(..512)?.to_vec();
    let base = slot.checked_mul(16)?.checked_add(TABLE)?;
    put(&mut s, base.checked_add(5)?, &[0xFE, 0xFF, 0xFF])?;
    put(
        &mut s,
        base.checked_add(12)?,
        &u32::try_from(sectors).ok()?.to_le_bytes(),
    )?;
    Some(s)
}

/// Plans growing partition `number` on a disk of `disk_sectors` 512-byte... sectors of the
/// disk's logical size (`sector_size` bytes), the end aligned down to `align_bytes`.
///
/// Write order for a logical partition: the extended partition grows first (sector 0), then
/// the logical one (its EBR), each followed by a sync, so an interruption leaves at worst an
/// extended partition with free space at its end.
pub fn plan(
    mbr: &Mbr,
    number: u32,
    disk_sectors: u64,
    sector_size: u32,
    align_bytes: u64,
) -> Result<MbrPlan, TableError> {
    let target = *mbr
        .partition(number)
        .ok_or_else(|| err(format!("MBR has no partition {number}")))?;
    if is_extended(target.kind) {
        return Err(err(format!("partition {number} is an extended partition")));
    }
    let overflow = || err("MBR arithmetic overflow");
    let align = align_bytes
        .checked_div(u64::from(sector_size))
        .unwrap_or(1)
        .max(1);
    // 32-bit LBAs: nothing may end past 2^32 sectors.
    let disk_limit = disk_sectors.min(1u64 << 32);
    let logical = number >= 5;
    // The container the partition grows in: the disk, minus the primaries after it.
    let outer = if logical {
        mbr.extended
            .ok_or_else(|| err("logical partition without extended"))?
    } else {
        target
    };
    let next_primary = mbr
        .primaries
        .iter()
        .filter(|p| p.start >= outer.end_excl())
        .map(|p| p.start)
        .min()
        .unwrap_or(disk_limit)
        .min(disk_limit);
    if logical && mbr.logicals.iter().any(|p| p.start > target.start) {
        return Err(err(format!(
            "logical partition {number} is not the last one; it cannot grow"
        )));
    }
    let limit = next_primary
        .checked_div(align)
        .and_then(|n| n.checked_mul(align))
        .ok_or_else(overflow)?;
    let mut p = MbrPlan {
        partition: number,
        start: target.start,
        old_sectors: target.sectors,
        new_sectors: target.sectors,
        steps: Vec::new(),
    };
    if limit <= target.end_excl() {
        return Ok(p);
    }
    let new_sectors = limit.checked_sub(target.start).ok_or_else(overflow)?;
    if u32::try_from(new_sectors).is_err() {
        return Err(overflow());
    }
    p.new_sectors = new_sectors;
    let byte = |lba: u64| lba.checked_mul(u64::from(sector_size)).ok_or_else(overflow);
    if logical {
        let new_ext = limit.checked_sub(outer.start).ok_or_else(overflow)?;
        if new_ext > outer.sectors {
            let s0 = mbr.table(0).ok_or_else(overflow)?;
            let data = resize_entry(s0, outer.slot, new_ext).ok_or_else(overflow)?;
            p.steps.push(Step::Write {
                what: "MBR (extended partition)".into(),
                offset: 0,
                data,
            });
            p.steps.push(Step::Sync);
        }
    }
    let t = mbr.table(target.table_lba).ok_or_else(overflow)?;
    let data = resize_entry(t, target.slot, new_sectors).ok_or_else(overflow)?;
    let what = if logical { "EBR" } else { "MBR" };
    p.steps.push(Step::Write {
        what: what.into(),
        offset: byte(target.table_lba)?,
        data,
    });
    p.steps.push(Step::Sync);
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn set(s: &mut [u8], slot: usize, kind: u8, start: u32, size: u32) {
        let b = TABLE + slot * 16;
        s[b + 4] = kind;
        s[b + 8..b + 12].copy_from_slice(&start.to_le_bytes());
        s[b + 12..b + 16].copy_from_slice(&size.to_le_bytes());
        s[510] = 0x55;
        s[511] = 0xAA;
    }

    fn parse(img: &[u8]) -> Result<Mbr, TableError> {
        Mbr::parse(&img[..512], (img.len() / 512) as u64, |lba| {
            img.get(lba as usize * 512..)?
                .get(..512)
                .map(<[u8]>::to_vec)
        })
    }

    fn apply(img: &mut [u8], steps: &[Step]) {
        for s in steps {
            if let Step::Write { offset, data, .. } = s {
                img[*offset as usize..][..data.len()].copy_from_slice(data);
            }
        }
    }

    #[test]
    fn primary_grows_to_the_next_or_the_end() {
        let mut img = vec![0u8; 200 * 2048 * 512 / 100]; // 2 MiB-ish placeholder, resized below
        img.resize(64 << 20, 0);
        set(&mut img, 0, 0x83, 2048, 20480);
        set(&mut img, 1, 0x83, 40960, 2048);
        let m = parse(&img).unwrap();
        let p = plan(&m, 1, 131072, 512, 1 << 20).unwrap();
        assert_eq!(p.new_sectors, 40960 - 2048, "stops at partition 2");
        let p = plan(&m, 2, 131072, 512, 1 << 20).unwrap();
        assert_eq!(p.start + p.new_sectors, 131072, "grows to the end");
        apply(&mut img, &p.steps);
        let m2 = parse(&img).unwrap();
        assert_eq!(m2.partition(2).unwrap().sectors, 131072 - 40960);
        assert!(
            plan(&m2, 2, 131072, 512, 1 << 20).unwrap().steps.is_empty(),
            "idempotent"
        );
    }

    #[test]
    fn logical_grows_with_its_extended() {
        let mut img = vec![0u8; 64 << 20];
        set(&mut img, 0, 0x83, 2048, 2048);
        set(&mut img, 1, 0x05, 4096, 20480);
        // EBR at 4096: logical 5 at +2048, next EBR at ext+10240.
        let e1 = 4096 * 512;
        set(&mut img[e1..], 0, 0x83, 2048, 4096);
        set(&mut img[e1..], 1, 0x05, 10240, 8192);
        let e2 = (4096 + 10240) * 512;
        set(&mut img[e2..], 0, 0x83, 2048, 6144);
        let m = parse(&img).unwrap();
        assert_eq!(m.logicals.len(), 2);
        assert!(plan(&m, 5, 131072, 512, 1 << 20).is_err(), "5 is not last");
        let p = plan(&m, 6, 131072, 512, 1 << 20).unwrap();
        assert_eq!(p.start + p.new_sectors, 131072);
        apply(&mut img, &p.steps);
        let m2 = parse(&img).unwrap();
        assert_eq!(m2.extended.unwrap().end_excl(), 131072);
        assert_eq!(m2.partition(6).unwrap().end_excl(), 131072);
        assert_eq!(m2.partition(5), m.partition(5));
    }

    #[test]
    fn two_tib_limit_and_hostile() {
        let mut img = vec![0u8; 512];
        set(&mut img, 0, 0x83, 2048, 4096);
        let m = Mbr::parse(&img, 1 << 40, |_| None).unwrap();
        let p = plan(&m, 1, 1 << 40, 512, 1 << 20).unwrap();
        assert_eq!(p.start + p.new_sectors, 1 << 32);
        let mut bad = img.clone();
        set(&mut bad, 1, 0x83, 3000, 10);
        assert!(Mbr::parse(&bad, 1 << 20, |_| None).is_err(), "overlap");
        let mut bad = img.clone();
        set(&mut bad, 1, 0xEE, 1, 10);
        assert!(Mbr::parse(&bad, 1 << 20, |_| None).is_err(), "protective");
        assert!(Mbr::parse(&img, 100, |_| None).is_err(), "past the end");
        // An EBR chain pointing to itself.
        let mut img = vec![0u8; 8 << 20];
        set(&mut img, 0, 0x05, 2048, 8192);
        let e = 2048 * 512;
        set(&mut img[e..], 0, 0x83, 1, 10);
        set(&mut img[e..], 1, 0x05, 0, 10);
        assert!(parse(&img).is_ok(), "next at 0 ends the chain");
        set(&mut img[e..], 1, 0x05, 100, 10);
        let e2 = (2048 + 100) * 512;
        set(&mut img[e2..], 1, 0x05, 50, 10);
        assert!(parse(&img).is_err(), "backwards");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 7;
        for _ in 0..3000 {
            let mut img = vec![0u8; 4096];
            img[510] = 0x55;
            img[511] = 0xAA;
            for b in img[446..510].iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = (x % 7) as u8 * 3;
            }
            if let Ok(m) = Mbr::parse(&img, 8, |_| Some(img[..512].to_vec())) {
                for n in 1..9 {
                    let _ = plan(&m, n, 8, 512, 0);
                }
            }
        }
    }
}
