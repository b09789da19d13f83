//! preroot's own matcher (src/selinux/regex.rs) through `Labeler::label_for`.
#[path = "../../common/harness.rs"]
mod harness;

fn main() {
    harness::run("selown", |l, path, kind| match kind {
        Some(k) => l.label_for(path, k).ok().flatten().map(str::to_string),
        None => {
            let spec = l.contexts().lookup(path.as_bytes(), None).ok()??;
            spec.context.clone()
        }
    });
}
