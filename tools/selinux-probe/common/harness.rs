//! The probes' shared harness: open a root's policy with preroot's reader (parse, order,
//! stems, substitutions), then label every path of a `KIND<TAB>PATH` list with the probe's
//! matcher: once cold (compiling what is reached) and ROUNDS times warm. Prints the labels
//! (`KIND<TAB>PATH<TAB>LABEL`, as tests/data/selinux/selabel.py) on stdout, timings (CPU time) on stderr.
//! Usage: PROBE ROOT PATHS.tsv [ROUNDS]
#![allow(dead_code)] // each probe uses part of it
use preroot::selinux::contexts::{FileContexts, FileKind, Spec};
use preroot::selinux::Labeler;
use std::time::Duration;

/// CPU time of this process (the machine is shared: wall time measures the neighbours too).
struct Instant(Duration);

impl Instant {
    fn now() -> Instant {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec into the live struct.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        Instant(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    fn elapsed(&self) -> Duration {
        Instant::now().0.saturating_sub(self.0)
    }
}

pub fn kind(name: &str) -> Option<FileKind> {
    match name {
        "file" => Some(FileKind::Regular),
        "dir" => Some(FileKind::Directory),
        "fifo" => Some(FileKind::Fifo),
        "link" => Some(FileKind::Symlink),
        _ => None,
    }
}

/// `lookup(labeler, path, kind)` gives the deciding spec's context (`None`: no label).
pub fn run(name: &str, mut lookup: impl FnMut(&Labeler, &str, Option<FileKind>) -> Option<String>) {
    let args: Vec<String> = std::env::args().collect();
    let (Some(root), Some(list)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: {name} ROOT PATHS.tsv [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: u32 = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(100);
    let text = std::fs::read_to_string(list).expect("paths");
    let paths: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    let t = Instant::now();
    let labeler = Labeler::open(std::path::Path::new(root)).expect("policy").expect("SELinux on");
    let open = t.elapsed();
    let t = Instant::now();
    let mut out = String::new();
    for (k, p) in &paths {
        let label = lookup(&labeler, p, kind(k)).unwrap_or_else(|| "<<none>>".into());
        out.push_str(&format!("{k}\t{p}\t{label}\n"));
    }
    let cold = t.elapsed();
    let t = Instant::now();
    for _ in 0..rounds {
        for (k, p) in &paths {
            std::hint::black_box(lookup(&labeler, p, kind(k)));
        }
    }
    let warm = t.elapsed() / rounds.max(1);
    print!("{out}");
    eprintln!(
        "{name}: {} specs; open {:.1} ms; {} paths: first pass {:.2} ms, then {:.2} ms per pass ({:.1} us per lookup)",
        labeler.contexts().specs().len(),
        open.as_secs_f64() * 1e3,
        paths.len(),
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e6 / paths.len().max(1) as f64,
    );
}

/// A regex-crate lookup: the candidates preroot's index gives, matched by `is_match`, each
/// regex compiled once on first use (`cache`, keyed by the spec's address).
pub fn crate_lookup<R>(
    fc: &FileContexts,
    cache: &mut std::collections::HashMap<usize, Option<R>>,
    path: &str,
    kind: Option<FileKind>,
    compile: impl Fn(&str) -> Option<R>,
    is_match: impl Fn(&R, &str) -> bool,
) -> Option<String> {
    let key = fc.normalize(path.as_bytes()).ok()?;
    let key = String::from_utf8(key).ok()?;
    for spec in fc.candidates(key.as_bytes(), kind) {
        let at = spec as *const Spec as usize;
        let re = cache.entry(at).or_insert_with(|| compile(&spec.regex));
        match re {
            Some(re) if is_match(re, &key) => return spec.context.clone(),
            Some(_) => {}
            None => return None,
        }
    }
    None
}
