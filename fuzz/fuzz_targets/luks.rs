#![no_main]
//! `disk::luks::read` over a device image (the input): the primary LUKS2 header at 0, the
//! secondary where the primary or the search says, as the grow stage reads a partition.
//! Checks: a header read is one `bin_header` accepts where it was found, the mapping size
//! never exceeds the device less the data offset, and the command-line key parser takes
//! the same bytes as text without panicking.
use libfuzzer_sys::fuzz_target;
use preroot::disk::luks;

fuzz_target!(|data: &[u8]| {
    let mut read = |off: u64, len: usize| -> Result<Vec<u8>, ()> {
        let off = usize::try_from(off).map_err(|_| ())?;
        data.get(off..off.checked_add(len).ok_or(())?)
            .map(<[u8]>::to_vec)
            .ok_or(())
    };
    if let Ok(l) = luks::read(&mut read) {
        let at = l.header.hdr_offset as usize;
        assert!(luks::bin_header(&data[at..], l.header.hdr_offset).is_ok());
        let len = data.len() as u64;
        if let Ok(t) = l.target_bytes(len) {
            let s = l.segment().unwrap();
            assert!(t <= len - s.offset && t % u64::from(s.sector_size) == 0);
        }
        let _ = l.unattended_tokens().count();
    }
    let text = String::from_utf8_lossy(data);
    let args = luks::key_args(&text);
    let _ = luks::key_for(&args, "9e59448b-e229-4593-baca-628a759a6b8f");
});
