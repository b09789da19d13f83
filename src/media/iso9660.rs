//! STUB: ISO9660 reader (Joliet, Rock Ridge), to be written.
use super::{MediaError, MediaErrorKind, Tree};
use std::path::Path;

pub struct IsoTree;

impl IsoTree {
    pub fn open(path: &Path) -> Result<IsoTree, MediaError> {
        Err(MediaError::new(
            path.display().to_string(),
            MediaErrorKind::Corrupt("ISO9660 not implemented".into()),
        ))
    }
}

impl Tree for IsoTree {
    fn read(&self, _path: &str, _cap: u64) -> Result<Option<Vec<u8>>, MediaError> {
        Ok(None)
    }
    fn list(&self, _dir: &str) -> Result<Option<Vec<String>>, MediaError> {
        Ok(None)
    }
    fn describe(&self) -> String {
        String::new()
    }
}
