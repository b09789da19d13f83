//! The regex crate without default features (no Unicode tables, no literal optimisations):
//! each regex compiled as `(?s-u)^` + regex + `$` on bytes.
#[path = "../../common/harness.rs"]
mod harness;

fn main() {
    let mut cache = std::collections::HashMap::new();
    harness::run("selregex", |l, path, kind| {
        harness::crate_lookup(
            l.contexts(),
            &mut cache,
            path,
            kind,
            |re| regex::bytes::Regex::new(&format!("(?s-u)^{re}$")).ok(),
            |re, key| re.is_match(key.as_bytes()),
        )
    });
}
