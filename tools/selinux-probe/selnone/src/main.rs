//! Baseline: the harness with no matcher (the first candidate wins; wrong labels, on purpose).
#[path = "../../common/harness.rs"]
mod harness;

fn main() {
    harness::run("selnone", |l, path, kind| {
        let key = l.contexts().normalize(path.as_bytes()).ok()?;
        let spec = l.contexts().candidates(&key, kind).next()?;
        spec.context.clone()
    });
}
