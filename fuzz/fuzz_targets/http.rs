#![no_main]
//! HTTP/1.1 responses as the metadata client reads them: the whole input with and without
//! end of stream, and a prefix of it (split at the first byte's position) as a partial
//! read: a response complete on a prefix must be the one the whole input gives. Also the
//! input's first line as a URL.
use libfuzzer_sys::fuzz_target;
use preroot::http::{parse_response, Parse, Url};

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let cap = 4096;
    let whole = parse_response(body, true, cap);
    let _ = parse_response(body, false, cap);
    let at = (usize::from(split) * body.len()) / 255;
    if let Ok(Parse::Done(partial)) = parse_response(&body[..at], false, cap) {
        match &whole {
            Ok(Parse::Done(r)) => assert_eq!(r, &partial, "a prefix parsed differently"),
            other => panic!("complete on a prefix, {other:?} on the whole"),
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        if let Some(line) = text.lines().next() {
            if let Ok(url) = Url::parse(line) {
                let _ = url.join(line);
                let _ = url.to_string();
            }
        }
    }
});
