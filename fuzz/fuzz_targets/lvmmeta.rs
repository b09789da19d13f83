#![no_main]
//! `disk::lvmmeta` as the grow stage reads a PV: the label in the first 2 KiB, the metadata
//! area header where the label says, the text in the circular buffer, then the VG's
//! numbers. Input: a PV's first bytes (label, metadata area), or with a first byte of `#`,
//! metadata text for `parse_vg` directly. Checks: a text that parses gives a VG whose free
//! extents never exceed its PVs' extents, and `extents_fitting` never panics.
use libfuzzer_sys::fuzz_target;
use preroot::disk::lvmmeta;

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'#') {
        check(data);
        return;
    }
    let Ok(label) = lvmmeta::label(data) else {
        return;
    };
    let (start, size) = label.mda;
    let (Ok(s), Ok(z)) = (usize::try_from(start), usize::try_from(size)) else {
        return;
    };
    let Some(area) = data.get(s..s.saturating_add(z)) else {
        return;
    };
    if let Ok(h) = lvmmeta::mda_header(area, start) {
        if let Ok(text) = lvmmeta::metadata_text(area, &h) {
            check(&text);
        }
    }
});

fn check(text: &[u8]) {
    if let Ok(vg) = lvmmeta::parse_vg(text) {
        let total: u64 = vg.pvs.iter().fold(0, |a, p| a.saturating_add(p.pe_count));
        assert!(vg.free() <= total);
        for pv in &vg.pvs {
            let _ = lvmmeta::extents_fitting(pv, vg.extent_bytes(), u64::MAX);
        }
    }
}
