#![doc = include_str!("../../../README.md")]

pub use backstop_core::*;

#[cfg(feature = "pages")]
pub use backstop_pages as pages;

#[cfg(feature = "tower")]
pub use backstop_tower as tower;
#[cfg(feature = "tower")]
pub use backstop_tower::{BackstopLayer, ResponseErrorExt};

#[cfg(feature = "sqlite")]
pub use backstop_store as store;
#[cfg(feature = "sqlite")]
pub use backstop_store::SqliteStore;

#[cfg(feature = "actix")]
pub use backstop_actix as actix;

#[cfg(feature = "alerts")]
pub use backstop_alerts as alerts;
