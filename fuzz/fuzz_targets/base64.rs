#![no_main]
//! Both base64 decoders. Whatever the strict decoder accepts, the lenient one (MIME bodies)
//! decodes to the same bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lenient = preroot::base64::lenient(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(strict) = preroot::base64::strict(text) {
            assert_eq!(strict, lenient, "strict and lenient disagree");
        }
    }
});
