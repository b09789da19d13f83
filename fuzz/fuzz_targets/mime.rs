#![no_main]
//! User data as `preroot apply` reads it: gzip, MIME multipart (nested, base64 and
//! quoted-printable parts), payload type detection, and the plan of what it asks for.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = preroot::mime::split(data) {
        for p in &parts {
            let _ = p.effective_type();
        }
    }
    let _ = preroot::mime::type_of_payload(data);
    let _ = preroot::mime::decode_quoted_printable(data);
    let _ = preroot::mime::gunzip(data, 1 << 20);
    let _ = preroot::userdata::plan(data, "fuzz");
});
