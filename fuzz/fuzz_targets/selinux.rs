#![no_main]
//! SELinux file contexts: `file_contexts` specs, a substitution file and paths, through
//! `selinux::contexts::FileContexts` (parse, order, substitute, lazily compile, match).
//! Checks that a winning spec's regex matches the looked-up key when compiled afresh, and
//! that a second lookup (regexes now compiled) gives the same answer.
use libfuzzer_sys::fuzz_target;
use preroot::selinux::contexts::{FileContexts, FileKind, Sources};
use preroot::selinux::regex;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let docs = common::documents(data, 3);
    let (specs, subs, paths) = (docs[0], docs.get(1).copied(), docs.get(2).copied());
    let Ok(fc) = FileContexts::new(Sources {
        base: specs,
        subs,
        ..Sources::default()
    }) else {
        return;
    };
    let mut keys: Vec<&[u8]> = paths
        .unwrap_or_default()
        .split(|b| *b == b'\n')
        .take(32)
        .collect();
    // The specs' own texts as paths: strings the regexes were written for.
    keys.extend(fc.specs().iter().take(16).map(|s| s.regex.as_bytes()));
    for key in keys {
        for kind in [None, Some(FileKind::Regular), Some(FileKind::Directory)] {
            let first = fc.lookup(key, kind).map(|s| s.map(|s| (s.input, s.line)));
            let again = fc.lookup(key, kind).map(|s| s.map(|s| (s.input, s.line)));
            assert_eq!(first, again, "a lookup is repeatable");
            if let Ok(Some(spec)) = fc.lookup(key, kind) {
                let normalized = fc.normalize(key).expect("looked up, so it normalizes");
                assert_eq!(
                    regex::matches(spec.regex.as_bytes(), &normalized),
                    Ok(true),
                    "the winning spec matches"
                );
            }
        }
    }
});
