//! GPT: parse and validate a table from raw sectors, and plan its growth as a list of
//! sector writes. No I/O: [`super::apply`] carries the writes out.
//!
//! Owns the header and entry-array layout (UEFI 2.10 §5.3), CRC32 checks, the validation
//! that makes planning safe (bounded entry array, entries inside the usable range, no
//! overlaps), and the write order that keeps a valid table on disk after an interruption.
//! Keeps every entry byte-for-byte except the grown one's `EndingLBA`: entry slots are never
//! moved, so partition numbers with gaps (Ubuntu's 1, 14, 15) stay as they are. Updates the
//! protective MBR's size (a hybrid MBR's other entries are left alone).
//!
//! Does not repair a table whose primary copy is invalid (that is a job for a person with
//! `gdisk`), and does not move a partition's start.
//!
//! Panic contract: nothing here panics on any input; arithmetic is checked.
#![deny(clippy::arithmetic_side_effects)]

use super::{crc32, Step, TableError};
use crate::bytes::{le_u32, le_u64, put};

/// `"EFI PART"`.
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// The smallest header the spec allows (bytes).
const MIN_HEADER: u32 = 92;
/// Entry arrays larger than this are refused (the usual one is 16 KiB).
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;
/// Entry counts larger than this are refused (the usual one is 128).
pub const MAX_ENTRIES: u32 = 4096;

/// Header field offsets.
mod field {
    pub const HEADER_SIZE: usize = 12;
    pub const HEADER_CRC: usize = 16;
    pub const MY_LBA: usize = 24;
    pub const ALTERNATE_LBA: usize = 32;
    pub const FIRST_USABLE: usize = 40;
    pub const LAST_USABLE: usize = 48;
    pub const ENTRIES_LBA: usize = 72;
    pub const NUM_ENTRIES: usize = 80;
    pub const ENTRY_SIZE: usize = 84;
    pub const ENTRIES_CRC: usize = 88;
    /// In an entry.
    pub const TYPE_GUID: usize = 0;
    pub const UNIQUE_GUID: usize = 16;
    pub const FIRST_LBA: usize = 32;
    pub const LAST_LBA: usize = 40;
}

/// A validated GPT header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's bytes (`header_size` of them), kept so unknown fields survive.
    raw: Vec<u8>,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub entries_lba: u64,
    pub num_entries: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

/// One used entry of the array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The partition number: slot index + 1.
    pub number: u32,
    pub type_guid: [u8; 16],
    pub unique_guid: [u8; 16],
    pub first_lba: u64,
    pub last_lba: u64,
}

/// A GPT whose primary header and entries are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    pub sector_size: u32,
    pub primary: Header,
    /// The primary entry array, exactly as on disk.
    entries_raw: Vec<u8>,
    /// The used entries, by slot order.
    pub entries: Vec<Entry>,
}

fn err(message: impl Into<String>) -> TableError {
    TableError(message.into())
}

impl Header {
    /// Parses and checks the header in `sector` (read at `lba`).
    pub fn parse(sector: &[u8], lba: u64) -> Result<Header, TableError> {
        if sector.get(..8) != Some(SIGNATURE.as_slice()) {
            return Err(err(format!("no GPT signature at LBA {lba}")));
        }
        let f = |off| le_u32(sector, off).ok_or_else(|| err("GPT header cut short"));
        let g = |off| le_u64(sector, off).ok_or_else(|| err("GPT header cut short"));
        let size = f(field::HEADER_SIZE)?;
        let len = usize::try_from(size).map_err(|_| err("GPT header size"))?;
        if size < MIN_HEADER || len > sector.len() {
            return Err(err(format!("GPT header at LBA {lba}: header size {size}")));
        }
        let mut raw = sector.get(..len).ok_or_else(|| err("GPT header"))?.to_vec();
        let stored = f(field::HEADER_CRC)?;
        put(&mut raw, field::HEADER_CRC, &[0; 4]).ok_or_else(|| err("GPT header"))?;
        if crc32(&raw) != stored {
            return Err(err(format!("GPT header at LBA {lba}: bad CRC")));
        }
        let h = Header {
            my_lba: g(field::MY_LBA)?,
            alternate_lba: g(field::ALTERNATE_LBA)?,
            first_usable: g(field::FIRST_USABLE)?,
            last_usable: g(field::LAST_USABLE)?,
            entries_lba: g(field::ENTRIES_LBA)?,
            num_entries: f(field::NUM_ENTRIES)?,
            entry_size: f(field::ENTRY_SIZE)?,
            entries_crc: f(field::ENTRIES_CRC)?,
            raw,
        };
        if h.my_lba != lba {
            return Err(err(format!(
                "GPT header at LBA {lba} says it is at LBA {}",
                h.my_lba
            )));
        }
        if h.entry_size < 128 || h.entry_size % 8 != 0 || h.entry_size > 4096 {
            return Err(err(format!("GPT entry size {}", h.entry_size)));
        }
        if h.num_entries == 0 || h.num_entries > MAX_ENTRIES || h.entries_bytes() > MAX_ENTRY_BYTES
        {
            return Err(err(format!(
                "GPT entry count {} (size {}): more than preroot accepts",
                h.num_entries, h.entry_size
            )));
        }
        if h.first_usable > h.last_usable {
            return Err(err("GPT first usable LBA after last usable LBA"));
        }
        Ok(h)
    }

    /// Bytes in the entry array (bounded by the checks in [`Header::parse`]).
    pub fn entries_bytes(&self) -> u64 {
        u64::from(self.num_entries).saturating_mul(u64::from(self.entry_size))
    }

    /// Sectors the entry array takes.
    fn entries_sectors(&self, sector_size: u32) -> Option<u64> {
        self.entries_bytes()
            .checked_next_multiple_of(u64::from(sector_size))?
            .checked_div(u64::from(sector_size))
    }

    /// This header with new locations and entries CRC, CRC recomputed, padded to a sector.
    fn rewrite(
        &self,
        my_lba: u64,
        alternate_lba: u64,
        last_usable: u64,
        entries_lba: u64,
        entries_crc: u32,
        sector_size: u32,
    ) -> Option<Vec<u8>> {
        let mut raw = self.raw.clone();
        put(&mut raw, field::MY_LBA, &my_lba.to_le_bytes())?;
        put(&mut raw, field::ALTERNATE_LBA, &alternate_lba.to_le_bytes())?;
        put(&mut raw, field::LAST_USABLE, &last_usable.to_le_bytes())?;
        put(&mut raw, field::ENTRIES_LBA, &entries_lba.to_le_bytes())?;
        put(&mut raw, field::ENTRIES_CRC, &entries_crc.to_le_bytes())?;
        put(&mut raw, field::HEADER_CRC, &[0; 4])?;
        let crc = crc32(&raw);
        put(&mut raw, field::HEADER_CRC, &crc.to_le_bytes())?;
        raw.resize(usize::try_from(sector_size).ok()?, 0);
        Some(raw)
    }
}

/// Reads the 16-byte GUID at `off`.
fn guid(b: &[u8], off: usize) -> Option<[u8; 16]> {
    b.get(off..off.checked_add(16)?)?.try_into().ok()
}

impl Gpt {
    /// Checks the primary header `header` against the disk and the entry array `entries`
    /// (read at `header.entries_lba`, `header.entries_bytes()` long).
    ///
    /// Refuses, without planning anything: a bad entries CRC, an entry array overlapping the
    /// usable range, a used entry outside the usable range or with first > last, and
    /// overlapping entries.
    pub fn parse(
        header: Header,
        entries_raw: &[u8],
        sector_size: u32,
        disk_sectors: u64,
    ) -> Result<Gpt, TableError> {
        let want = usize::try_from(header.entries_bytes()).map_err(|_| err("GPT entries"))?;
        let entries_raw = entries_raw
            .get(..want)
            .ok_or_else(|| err("GPT entries cut short"))?;
        if crc32(entries_raw) != header.entries_crc {
            return Err(err("GPT entry array: bad CRC"));
        }
        if header.alternate_lba >= disk_sectors || header.last_usable >= disk_sectors {
            return Err(err(format!(
                "GPT describes a disk larger than this one ({disk_sectors} sectors): did it shrink?"
            )));
        }
        let array_end = header
            .entries_sectors(sector_size)
            .and_then(|n| header.entries_lba.checked_add(n))
            .ok_or_else(|| err("GPT entry array location"))?;
        if header.entries_lba < 2 || array_end > header.first_usable {
            return Err(err("GPT entry array overlaps the usable area"));
        }
        let size = usize::try_from(header.entry_size).map_err(|_| err("GPT entry size"))?;
        let mut entries = Vec::new();
        for (i, e) in entries_raw.chunks_exact(size).enumerate() {
            let bad = || err(format!("GPT entry {}", i.saturating_add(1)));
            let type_guid = guid(e, field::TYPE_GUID).ok_or_else(bad)?;
            if type_guid == [0; 16] {
                continue;
            }
            let number = u32::try_from(i)
                .ok()
                .and_then(|n| n.checked_add(1))
                .ok_or_else(bad)?;
            let entry = Entry {
                number,
                type_guid,
                unique_guid: guid(e, field::UNIQUE_GUID).ok_or_else(bad)?,
                first_lba: le_u64(e, field::FIRST_LBA).ok_or_else(bad)?,
                last_lba: le_u64(e, field::LAST_LBA).ok_or_else(bad)?,
            };
            if entry.first_lba > entry.last_lba
                || entry.first_lba < header.first_usable
                || entry.last_lba > header.last_usable
            {
                return Err(err(format!(
                    "GPT partition {number}: LBA {}..{} outside the usable range {}..{}",
                    entry.first_lba, entry.last_lba, header.first_usable, header.last_usable
                )));
            }
            entries.push(entry);
        }
        // Pairwise (at most 4096 entries: milliseconds); a sort would cost 5 KB of code.
        for (i, a) in entries.iter().enumerate() {
            for b in entries.iter().skip(i.saturating_add(1)) {
                if a.first_lba <= b.last_lba && b.first_lba <= a.last_lba {
                    return Err(err(format!(
                        "GPT partitions {} and {} overlap",
                        a.number, b.number
                    )));
                }
            }
        }
        Ok(Gpt {
            sector_size,
            primary: header,
            entries_raw: entries_raw.to_vec(),
            entries,
        })
    }

    pub fn entry(&self, number: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.number == number)
    }
}

/// What growing a GPT partition would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPlan {
    pub partition: u32,
    pub first_lba: u64,
    pub old_last_lba: u64,
    /// Equal to `old_last_lba` when the partition cannot grow.
    pub new_last_lba: u64,
    /// The backup header moves (or is rewritten) to this LBA.
    pub new_alternate_lba: u64,
    /// The writes, in order; empty when there is nothing to do.
    pub steps: Vec<Step>,
}

/// Rounds the exclusive end `end` down to a multiple of `align` sectors.
fn align_down(end: u64, align: u64) -> Option<u64> {
    end.checked_div(align)?.checked_mul(align)
}

/// Plans growing partition `number` of `gpt` on a disk of `disk_sectors` sectors.
///
/// The partition's new end is the sector before the next partition that starts after it, or
/// the new last usable LBA, with its exclusive end aligned down to `align_bytes`. When the disk
/// grew (or `backup_ok` is false) the backup header and entries are rewritten at the disk's
/// end. `pmbr` is sector 0 as read; its protective entry's size is updated when it is stale.
///
/// Write order: the backup copy (entries and header as one write when adjacent, as they are
/// at the disk's end), sync; the primary copy (header and entries as one write when adjacent,
/// the usual LBA 1..33), sync; the protective MBR, sync. Interrupted after the first write,
/// the old primary is intact and valid; after the second, both copies are new and valid.
pub fn plan(
    gpt: &Gpt,
    number: u32,
    disk_sectors: u64,
    align_bytes: u64,
    backup_ok: bool,
    pmbr: &[u8],
) -> Result<GptPlan, TableError> {
    let ss = gpt.sector_size;
    let h = &gpt.primary;
    let target = gpt
        .entry(number)
        .ok_or_else(|| err(format!("GPT has no partition {number}")))?;
    let overflow = || err("GPT arithmetic overflow");
    let entries_sectors = h.entries_sectors(ss).ok_or_else(overflow)?;
    let new_alt = disk_sectors.checked_sub(1).ok_or_else(overflow)?;
    let new_backup_entries = new_alt.checked_sub(entries_sectors).ok_or_else(overflow)?;
    let new_last_usable = new_backup_entries.checked_sub(1).ok_or_else(overflow)?;
    let highest = gpt.entries.iter().map(|e| e.last_lba).max().unwrap_or(0);
    if new_last_usable < highest || new_last_usable < h.last_usable {
        return Err(err(format!(
            "the disk ({disk_sectors} sectors) is smaller than its GPT says"
        )));
    }
    let next = gpt
        .entries
        .iter()
        .filter(|e| e.first_lba > target.last_lba)
        .map(|e| e.first_lba)
        .min();
    let limit_excl = match next {
        Some(n) => n.min(new_last_usable.checked_add(1).ok_or_else(overflow)?),
        None => new_last_usable.checked_add(1).ok_or_else(overflow)?,
    };
    let align = align_bytes.checked_div(u64::from(ss)).unwrap_or(1).max(1);
    let aligned_excl = align_down(limit_excl, align).ok_or_else(overflow)?;
    let old_excl = target.last_lba.checked_add(1).ok_or_else(overflow)?;
    let new_last = if aligned_excl > old_excl {
        aligned_excl.checked_sub(1).ok_or_else(overflow)?
    } else {
        target.last_lba
    };
    let grows = new_last != target.last_lba;
    let moves = h.alternate_lba != new_alt || h.last_usable != new_last_usable || !backup_ok;
    let mut p = GptPlan {
        partition: number,
        first_lba: target.first_lba,
        old_last_lba: target.last_lba,
        new_last_lba: new_last,
        new_alternate_lba: new_alt,
        steps: Vec::new(),
    };
    // A stale protective MBR alone (an earlier run stopped before its last write) is fixed.
    let pmbr_update = protective_mbr(pmbr, disk_sectors);
    if !grows && !moves {
        push_pmbr(&mut p.steps, pmbr_update);
        return Ok(p);
    }

    let mut entries = gpt.entries_raw.clone();
    let slot = usize::try_from(number.checked_sub(1).ok_or_else(overflow)?)
        .ok()
        .and_then(|i| i.checked_mul(usize::try_from(h.entry_size).ok()?))
        .ok_or_else(overflow)?;
    let at = slot.checked_add(field::LAST_LBA).ok_or_else(overflow)?;
    put(&mut entries, at, &new_last.to_le_bytes()).ok_or_else(overflow)?;
    let entries_crc = crc32(&entries);
    let padded_len = usize::try_from(
        entries_sectors
            .checked_mul(u64::from(ss))
            .ok_or_else(overflow)?,
    )
    .map_err(|_| overflow())?;
    let mut entries_padded = entries;
    entries_padded.resize(padded_len, 0);

    let backup = h
        .rewrite(
            new_alt,
            1,
            new_last_usable,
            new_backup_entries,
            entries_crc,
            ss,
        )
        .ok_or_else(overflow)?;
    let primary = h
        .rewrite(1, new_alt, new_last_usable, h.entries_lba, entries_crc, ss)
        .ok_or_else(overflow)?;
    let byte = |lba: u64| lba.checked_mul(u64::from(ss)).ok_or_else(overflow);

    // Backup: entries immediately before the header at the disk's end: one write.
    let mut backup_all = entries_padded.clone();
    backup_all.extend_from_slice(&backup);
    p.steps.push(Step::Write {
        what: "backup GPT entries and header".into(),
        offset: byte(new_backup_entries)?,
        data: backup_all,
    });
    p.steps.push(Step::Sync);
    if h.entries_lba == 2 {
        let mut primary_all = primary;
        primary_all.extend_from_slice(&entries_padded);
        p.steps.push(Step::Write {
            what: "primary GPT header and entries".into(),
            offset: byte(1)?,
            data: primary_all,
        });
    } else {
        p.steps.push(Step::Write {
            what: "primary GPT entries".into(),
            offset: byte(h.entries_lba)?,
            data: entries_padded,
        });
        p.steps.push(Step::Write {
            what: "primary GPT header".into(),
            offset: byte(1)?,
            data: primary,
        });
    }
    p.steps.push(Step::Sync);
    push_pmbr(&mut p.steps, pmbr_update);
    Ok(p)
}

fn push_pmbr(steps: &mut Vec<Step>, mbr: Option<Vec<u8>>) {
    if let Some(data) = mbr {
        steps.push(Step::Write {
            what: "protective MBR".into(),
            offset: 0,
            data,
        });
        steps.push(Step::Sync);
    }
}

/// Sector 0 with its protective (0xEE) entry sized to the disk, or `None` when there is no
/// such entry or it is already right. A hybrid MBR (other entries besides 0xEE) is left
/// alone: its 0xEE entry covers only part of the disk on purpose. Only the first 512 bytes
/// are returned and written.
fn protective_mbr(sector0: &[u8], disk_sectors: u64) -> Option<Vec<u8>> {
    let mut mbr = sector0.get(..512)?.to_vec();
    if mbr.get(510..512)? != [0x55, 0xAA] {
        return None;
    }
    let want = u32::try_from(disk_sectors.checked_sub(1)?).unwrap_or(u32::MAX);
    let mut protective = None;
    for i in 0..4usize {
        let base = i.checked_mul(16)?.checked_add(446)?;
        match *mbr.get(base.checked_add(4)?)? {
            0 => {}
            0xEE if protective.is_none() => protective = Some(base),
            _ => return None,
        }
    }
    let base = protective?;
    let size_at = base.checked_add(12)?;
    if le_u32(&mbr, base.checked_add(8)?)? != 1 || le_u32(&mbr, size_at)? == want {
        return None;
    }
    put(&mut mbr, size_at, &want.to_le_bytes())?;
    Some(mbr)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::type_complexity)]
pub mod tests {
    use super::*;

    /// A GPT disk image of `sectors` sectors with partitions `(slot, first, last)`, made in
    /// memory (as `sgdisk` would: 128 entries at LBA 2, usable from LBA 2048/ss*... ).
    pub fn image(ss: u32, sectors: u64, parts: &[(u32, u64, u64)]) -> Vec<u8> {
        let ssz = ss as usize;
        let mut img = vec![0u8; (sectors as usize) * ssz];
        let entries_sectors = (128 * 128usize).div_ceil(ssz) as u64;
        let first_usable = 2 + entries_sectors;
        let last_usable = sectors - 2 - entries_sectors;
        let mut entries = vec![0u8; 128 * 128];
        for &(slot, first, last) in parts {
            let e = &mut entries[(slot as usize - 1) * 128..][..128];
            e[0] = 0xAF; // any non-zero type
            e[16] = slot as u8; // unique
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
        }
        let crc = crc32(&entries);
        let header = |my: u64, alt: u64, elba: u64| {
            let mut h = vec![0u8; 92];
            h[..8].copy_from_slice(SIGNATURE);
            h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&my.to_le_bytes());
            h[32..40].copy_from_slice(&alt.to_le_bytes());
            h[40..48].copy_from_slice(&first_usable.to_le_bytes());
            h[48..56].copy_from_slice(&last_usable.to_le_bytes());
            h[72..80].copy_from_slice(&elba.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&crc.to_le_bytes());
            let c = crc32(&h);
            h[16..20].copy_from_slice(&c.to_le_bytes());
            h
        };
        let last = sectors - 1;
        img[ssz..ssz + 92].copy_from_slice(&header(1, last, 2));
        img[2 * ssz..2 * ssz + entries.len()].copy_from_slice(&entries);
        let be = last - entries_sectors;
        img[last as usize * ssz..][..92].copy_from_slice(&header(last, 1, be));
        img[be as usize * ssz..][..entries.len()].copy_from_slice(&entries);
        // Protective MBR.
        img[446 + 4] = 0xEE;
        img[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        img[446 + 12..446 + 16].copy_from_slice(&((sectors - 1) as u32).to_le_bytes());
        img[510] = 0x55;
        img[511] = 0xAA;
        img
    }

    pub fn read(img: &[u8], ss: u32) -> Result<Gpt, TableError> {
        let s = ss as usize;
        let h = Header::parse(&img[s..2 * s], 1)?;
        let off = h.entries_lba as usize * s;
        let len = (h.entries_bytes() as usize).min(img.len().saturating_sub(off));
        Gpt::parse(h, &img[off..off + len], ss, (img.len() / s) as u64)
    }

    pub fn apply(img: &mut [u8], steps: &[Step]) {
        for s in steps {
            if let Step::Write { offset, data, .. } = s {
                img[*offset as usize..][..data.len()].copy_from_slice(data);
            }
        }
    }

    fn grow(img: &mut Vec<u8>, by: usize) {
        img.resize(img.len() + by, 0);
    }

    #[test]
    fn grows_to_the_end_aligned_both_sector_sizes() {
        for ss in [512u32, 4096] {
            let mib = 1 << 20;
            let s = u64::from(ss);
            let mut img = image(ss, 64 * mib / s, &[(1, mib / s, 32 * mib / s - 1)]);
            grow(&mut img, 64 * mib as usize);
            let sectors = img.len() as u64 / s;
            let g = read(&img, ss).unwrap();
            let p = plan(&g, 1, sectors, mib, true, &img[..512]).unwrap();
            // The last usable LBA is 34 (512) or 6 (4096) sectors before the end: the aligned
            // end is the last full MiB before it.
            assert_eq!(p.new_last_lba, 127 * mib / s - 1, "ss {ss}");
            assert_eq!(p.new_alternate_lba, sectors - 1, "ss {ss}");
            apply(&mut img, &p.steps);
            let g2 = read(&img, ss).unwrap();
            assert_eq!(g2.entry(1).unwrap().last_lba, p.new_last_lba);
            assert_eq!(g2.primary.alternate_lba, sectors - 1);
            // The backup copy is valid and says the same.
            let b = Header::parse(
                &img[(sectors - 1) as usize * ss as usize..][..ss as usize],
                sectors - 1,
            )
            .unwrap();
            assert_eq!(b.alternate_lba, 1);
            assert_eq!(b.entries_crc, g2.primary.entries_crc);
            assert_eq!(
                u32::from_le_bytes(img[458..462].try_into().unwrap()) as u64,
                sectors - 1
            );
            // Idempotent.
            let again = plan(&g2, 1, sectors, mib, true, &img[..512]).unwrap();
            assert!(again.steps.is_empty(), "ss {ss}: second plan {again:?}");
        }
    }

    #[test]
    fn keeps_numbers_with_gaps_and_stops_at_the_next_partition() {
        let mib = 2048u64;
        // 1, 14, 15 as Ubuntu: 14 and 15 before 1 on disk.
        let mut img = image(
            512,
            100 * mib,
            &[(14, 2048, 4095), (15, 4096, 8191), (1, 8192, 40 * mib - 1)],
        );
        grow(&mut img, 100 << 20);
        let g = read(&img, 512).unwrap();
        let p = plan(&g, 1, img.len() as u64 / 512, 1 << 20, true, &img[..512]).unwrap();
        apply(&mut img, &p.steps);
        let g2 = read(&img, 512).unwrap();
        let nums: Vec<u32> = g2.entries.iter().map(|e| e.number).collect();
        assert_eq!(nums, [1, 14, 15]);
        assert_eq!(g2.entry(14), g.entry(14));
        assert_eq!(g2.entry(15), g.entry(15));
        // Stops before a partition at the end (config-2).
        let img = image(
            512,
            100 * mib,
            &[(1, 2048, 10 * mib - 1), (2, 99 * mib, 99 * mib + 100)],
        );
        let g = read(&img, 512).unwrap();
        let p = plan(&g, 1, 100 * mib, 1 << 20, true, &img[..512]).unwrap();
        assert_eq!(p.new_last_lba, 99 * mib - 1);
        let w: Vec<&str> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Write { what, .. } => Some(what.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            w,
            [
                "backup GPT entries and header",
                "primary GPT header and entries"
            ],
            "pMBR unchanged"
        );
    }

    #[test]
    fn hybrid_mbr_is_left_alone() {
        let mut img = image(512, 20480, &[(1, 2048, 4095)]);
        img[446 + 12..446 + 16].copy_from_slice(&2047u32.to_le_bytes());
        img[446 + 16 + 4] = 0x83; // a hybrid entry beside the 0xEE one
        img.resize(40960 * 512, 0);
        let g = read(&img, 512).unwrap();
        let p = plan(&g, 1, 40960, 1 << 20, true, &img[..512]).unwrap();
        assert!(p
            .steps
            .iter()
            .all(|s| !matches!(s, Step::Write { offset: 0, .. })));
    }

    #[test]
    fn full_disk_is_a_no_op() {
        let img = image(512, 20480, &[(1, 2048, 18431)]);
        let g = read(&img, 512).unwrap();
        let p = plan(&g, 1, 20480, 1 << 20, true, &img[..512]).unwrap();
        assert!(p.steps.is_empty());
        assert_eq!(p.new_last_lba, p.old_last_lba);
        // A corrupt backup alone is repaired.
        let p = plan(&g, 1, 20480, 1 << 20, false, &img[..512]).unwrap();
        assert!(!p.steps.is_empty());
    }

    #[test]
    fn hostile_tables_are_refused() {
        let base = image(512, 20480, &[(1, 2048, 4095), (2, 4096, 8191)]);
        let rehash = |img: &mut Vec<u8>| {
            let crc = crc32(&img[1024..1024 + 128 * 128]);
            img[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
            img[512 + 16..512 + 20].fill(0);
            let c = crc32(&img[512..512 + 92]);
            img[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
        };
        let cases: Vec<(&str, Box<dyn Fn(&mut Vec<u8>)>)> = vec![
            (
                "huge entry count",
                Box::new(|i: &mut Vec<u8>| {
                    i[512 + 80..512 + 84].copy_from_slice(&u32::MAX.to_le_bytes())
                }),
            ),
            (
                "overlap",
                Box::new(|i: &mut Vec<u8>| {
                    i[1024 + 128 + 32..1024 + 128 + 40].copy_from_slice(&4000u64.to_le_bytes())
                }),
            ),
            (
                "first after last",
                Box::new(|i: &mut Vec<u8>| {
                    i[1024 + 40..1024 + 48].copy_from_slice(&100u64.to_le_bytes())
                }),
            ),
            (
                "past the usable end",
                Box::new(|i: &mut Vec<u8>| {
                    i[1024 + 128 + 40..1024 + 128 + 48].copy_from_slice(&u64::MAX.to_le_bytes())
                }),
            ),
            (
                "entry size 0",
                Box::new(|i: &mut Vec<u8>| i[512 + 84..512 + 88].fill(0)),
            ),
            (
                "header size huge",
                Box::new(|i: &mut Vec<u8>| {
                    i[512 + 12..512 + 16].copy_from_slice(&u32::MAX.to_le_bytes())
                }),
            ),
            (
                "entries at LBA 0",
                Box::new(|i: &mut Vec<u8>| i[512 + 72..512 + 80].fill(0)),
            ),
            (
                "alternate past the disk",
                Box::new(|i: &mut Vec<u8>| {
                    i[512 + 32..512 + 40].copy_from_slice(&u64::MAX.to_le_bytes())
                }),
            ),
        ];
        for (case, damage) in cases {
            let mut img = base.clone();
            damage(&mut img);
            rehash(&mut img);
            assert!(read(&img, 512).is_err(), "case {case}");
        }
        // Bad CRCs.
        let mut img = base.clone();
        img[512 + 50] ^= 1;
        assert!(read(&img, 512).is_err(), "header crc");
        let mut img = base.clone();
        img[1024 + 60] ^= 1;
        assert!(read(&img, 512).is_err(), "entries crc");
        // A shrunken disk.
        let g = read(&base, 512).unwrap();
        assert!(plan(&g, 1, 10000, 1 << 20, true, &base[..512]).is_err());
        assert!(
            plan(&g, 3, 20480, 1 << 20, true, &base[..512]).is_err(),
            "no partition 3"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let base = image(512, 4096, &[(1, 2048, 3000)]);
        let mut x: u32 = 1;
        for _ in 0..1000 {
            let mut img = base.clone();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let at = 512 + (x as usize % (512 + 128 * 4));
                img[at] = (x >> 8) as u8;
            }
            if let Ok(g) = read(&img, 512) {
                let _ = plan(&g, 1, 8192, 1 << 20, true, &img[..512]);
                let _ = plan(&g, 1, 0, 0, true, &[]);
            }
        }
    }
}
