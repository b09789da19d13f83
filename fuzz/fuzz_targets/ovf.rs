#![no_main]
//! Azure's ovf-env.xml: the bounded XML reader, then the provisioning document on top of it.
//! A parsed document's Debug must not depend on its secrets beyond their length: it equals
//! the Debug of the same document with other secrets of the same lengths. (Searching the
//! Debug text for the password was a false alarm: a password may equal text Debug shows
//! anyway, such as `_proxy_agent: fal` from a field name.)
use libfuzzer_sys::fuzz_target;
use preroot::providers::azure::{ovf, xml};

fuzz_target!(|data: &[u8]| {
    let _ = xml::parse(data);
    if let Ok(env) = ovf::parse(data) {
        let mut other = env.clone();
        for s in [&mut other.password, &mut other.custom_data].into_iter().flatten() {
            s.0 = s.0.iter().map(|b| b.wrapping_add(1)).collect();
        }
        assert_eq!(format!("{env:?}"), format!("{other:?}"));
    }
});
