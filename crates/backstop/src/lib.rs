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

#[cfg(feature = "sentry")]
pub use backstop_sentry as sentry;

/// Starts Backstop, as [`backstop_core::init`] does; with the `sentry` feature, a
/// configured DSN (`BACKSTOP_DSN`, else `SENTRY_DSN`) also adds the Sentry exporter,
/// whose outbox is the store's file when a `SqliteStore` is among the sinks (see
/// `backstop_sentry::install` and `docs/sentry.md`).
pub fn init(options: Options) -> Result<Backstop, InitError> {
    #[cfg(feature = "sentry")]
    let (options, export) = backstop_sentry::install(options)?;
    let backstop = backstop_core::init(options)?;
    #[cfg(feature = "sentry")]
    if let Some(export) = export {
        export.attach(&backstop);
    }
    Ok(backstop)
}
