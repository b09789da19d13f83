//! The regex-lite crate: each regex compiled as `(?s)^` + regex + `$` (libselinux's anchors
//! and PCRE2_DOTALL; `$` is end of text only).
#[path = "../../common/harness.rs"]
mod harness;

fn main() {
    let mut cache = std::collections::HashMap::new();
    harness::run("selrelite", |l, path, kind| {
        harness::crate_lookup(
            l.contexts(),
            &mut cache,
            path,
            kind,
            |re| regex_lite::Regex::new(&format!("(?s)^{re}$")).ok(),
            |re, key| re.is_match(key),
        )
    });
}
