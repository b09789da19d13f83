#![no_main]
//! User data: cloud-config documents and MIME multipart.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = preroot::cloudconfig::directives(data);
});
