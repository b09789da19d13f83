#![no_main]
//! The file_contexts matcher (`selinux::regex`) against the `regex` crate: a pattern and a
//! path, split at the first newline. Where both accept the pattern and their syntaxes mean the
//! same (see `comparable`), `^pattern$` must match the path in both or in neither: preroot's
//! matcher runs without backtracking, the `regex` crate is the reference. Also checks that a
//! match never needs more fuel than a bound linear in path × program.
use libfuzzer_sys::fuzz_target;
use preroot::selinux::regex::{Program, Threads};

/// Does a `[` appear inside a class? PCRE2: a member; regex: a nested class.
fn bracket_in_class(pattern: &[u8]) -> bool {
    let mut it = pattern.iter().peekable();
    while let Some(c) = it.next() {
        match c {
            b'\\' => {
                it.next();
            }
            b'[' => {
                it.next_if_eq(&&b'^');
                it.next_if_eq(&&b']');
                loop {
                    match it.next() {
                        None => return false,
                        Some(b']') => break,
                        Some(b'\\') => {
                            it.next();
                        }
                        Some(b'[') => return true,
                        Some(_) => {}
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// Patterns whose meaning differs between PCRE2 (which preroot follows) and the `regex`
/// crate, or that either side refuses: skipped.
fn comparable(pattern: &str) -> bool {
    !(!pattern.is_ascii()                  // PCRE2 without UTF: a quantifier takes one byte
        || bracket_in_class(pattern.as_bytes())
        || pattern.contains("{,")          // PCRE2 10.42: literal; regex: {0,n}
        || pattern.contains("\\<")    // regex: word boundaries
        || pattern.contains("\\>")
        || pattern.contains("\\b")
        || pattern.contains("\\B")
        || pattern.contains("[[")     // regex: nested classes
        || pattern.contains("&&")     // regex: class intersection
        || pattern.contains("--")     // regex: class difference
        || pattern.contains("~~")     // regex: class symmetric difference
        || pattern.contains("(?")     // flags, lookaround: preroot refuses
        || pattern.contains('#')) // comments under x mode; keep the syntax plain
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (pattern, key) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(program) = Program::new(pattern) else {
        return;
    };
    let mut threads = Threads::new(program.len());
    let bound = (key.len() as u64 + 1) * (program.len() as u64 + 1) * 4;
    let mut fuel = bound;
    let ours = program
        .is_match(key, &mut threads, &mut fuel)
        .expect("a match stays within 4 x (path + 1) x (program + 1) steps");
    if key.contains(&b'\n') {
        return; // PCRE2's $ also matches before a final newline; the regex crate's does not
    }
    let Ok(text) = std::str::from_utf8(pattern) else {
        return;
    };
    if !comparable(text) {
        return;
    }
    let Ok(reference) = regex::bytes::RegexBuilder::new(&format!("(?s-u)^{text}$"))
        .size_limit(1 << 20)
        .build()
    else {
        return;
    };
    assert_eq!(
        ours,
        reference.is_match(key),
        "pattern {text:?} on {:?}",
        String::from_utf8_lossy(key)
    );
});
