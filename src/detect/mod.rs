//! Platform detection. STUB.
pub mod label;
