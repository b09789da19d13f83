//! STUB: FAT reader (long names), to be written.
use super::{MediaError, MediaErrorKind, Tree};
use std::path::Path;

pub struct FatTree;

impl FatTree {
    pub fn open(path: &Path) -> Result<FatTree, MediaError> {
        Err(MediaError::new(
            path.display().to_string(),
            MediaErrorKind::Corrupt("FAT not implemented".into()),
        ))
    }
}

impl Tree for FatTree {
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
