//! Shared by the fuzz targets: a scratch state directory and splitting one input into
//! several documents.
#![allow(dead_code)]

use preroot::context::{Access, Platform, Source, SourceKind};
use preroot::media::MemTree;
use preroot::providers::{self, Input};
use preroot::state::StateDir;

/// Splits `data` at the separator line into at most `n` documents (missing ones are absent).
pub fn documents(data: &[u8], n: usize) -> Vec<&[u8]> {
    const SEP: &[u8] = b"\n--8<--\n";
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < n {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// A state directory on tmpfs for secrets the datasource stores.
pub fn state() -> StateDir {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    StateDir::new(format!("{base}/preroot-fuzz-{}", std::process::id()))
}

/// A metadata service's tree from documents whose first line is a path below `dir/` and the
/// rest its body (a directory is listed from the paths below it).
pub fn path_tree(docs: &[&[u8]], dir: &str) -> MemTree {
    let mut tree = MemTree::new();
    for doc in docs {
        let (path, body) = match doc.iter().position(|b| *b == b'\n') {
            Some(at) => (&doc[..at], &doc[at + 1..]),
            None => (*doc, &[][..]),
        };
        if let Ok(path) = std::str::from_utf8(path) {
            tree.insert(&format!("{dir}/{path}"), body.to_vec());
        }
    }
    tree
}

/// The source of a context read from a metadata service, reached as `medium`.
pub fn service_source(medium: Access) -> Source {
    Source {
        kind: SourceKind::MetadataService,
        medium,
        location: "fuzz".into(),
        partition_of: None,
    }
}

/// Reads `platform`'s medium from files given as (path, bytes).
pub fn read(platform: Platform, files: &[(&str, &[u8])]) {
    let mut tree = MemTree::new();
    for (path, data) in files {
        tree.insert(path, data.to_vec());
    }
    let state = state();
    let input = Input {
        tree: &tree,
        source: Source {
            kind: platform.medium().expect("a platform with a medium").kind,
            medium: Access::Directory,
            location: "fuzz".into(),
            partition_of: None,
        },
        state: &state,
        host_nics: Vec::new(),
    };
    let _ = providers::read_medium(platform, &input);
}

/// Writes `data` to a scratch image file and returns its path.
pub fn image(data: &[u8]) -> std::path::PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let path = std::path::PathBuf::from(format!("{base}/preroot-fuzz-{}.img", std::process::id()));
    std::fs::write(&path, data).expect("scratch image");
    path
}

/// Like [`image`], sparsely: a file of `size` bytes, zero but for `(offset, bytes)` written
/// in order (later ones over earlier ones).
pub fn sparse_image(size: u64, records: &[(usize, &[u8])]) -> std::path::PathBuf {
    use std::os::unix::fs::FileExt;
    let path = image(&[]);
    let f = std::fs::OpenOptions::new().write(true).open(&path).expect("scratch image");
    f.set_len(size).expect("scratch image size");
    for (at, bytes) in records {
        f.write_all_at(bytes, *at as u64).expect("scratch image write");
    }
    path
}

/// Lists a medium two levels down (the root and the config drive's directories) and reads
/// every file found: what detection and the datasource readers do with an image.
pub fn walk(tree: &dyn preroot::media::Tree) {
    for dir in ["", "openstack", "openstack/latest"] {
        if let Ok(Some(names)) = tree.list(dir) {
            for name in names.iter().take(64) {
                let file = if dir.is_empty() {
                    name.clone()
                } else {
                    format!("{dir}/{name}")
                };
                let _ = tree.read(&file, 1 << 20);
            }
        }
    }
}
