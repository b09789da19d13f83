//! STUB until the nocloud branch is merged.
use super::{DatasourceError, Input};
use crate::context::Context;

pub fn read(input: &Input) -> Result<Context, DatasourceError> {
    Err(DatasourceError::new(
        input.tree.describe(),
        "nocloud: not built yet",
    ))
}
