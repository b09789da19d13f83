#![no_main]
//! cloud-init network-config v1/v2 (YAML or JSON), and ENI text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = preroot::providers::netconfig::parse(text);
        let _ = preroot::providers::nocloud::parse_eni(text);
    }
});
