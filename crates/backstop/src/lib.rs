#![doc = include_str!("../../../README.md")]

pub use backstop_core::*;

#[cfg(feature = "sqlite")]
pub use backstop_store as store;
#[cfg(feature = "sqlite")]
pub use backstop_store::SqliteStore;
