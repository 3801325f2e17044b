#![doc = include_str!("../../../docs/sentry.md")]

pub mod envelope;
mod exporter;
#[cfg(feature = "kent")]
pub mod kent;
mod queue;
mod ratelimit;
mod replay;
mod report;
mod sender;

use std::sync::{Mutex, PoisonError};

use backstop_core::{InitError, Options};
use backstop_store::SqliteStore;

pub use envelope::{Category, Kind, MAX_ITEM_BYTES};
pub use exporter::{ExportError, ExportHandle, ExporterBuilder, SentryExporter};
pub use queue::MEMORY_LIMITS;
pub use replay::{ReplayError, ReplayReport, replay};
pub use report::{ExportStats, Reason};

static INSTALLED: Mutex<Option<ExportHandle>> = Mutex::new(None);

/// Adds a [`SentryExporter`] to `options` when they configure a DSN (`dsn`, or
/// `BACKSTOP_DSN` / `SENTRY_DSN` through [`Options::from_env`]); `backstop::init` calls
/// it. When the options hold a [`SqliteStore`] on a file, undelivered items wait in
/// that file's outbox; otherwise in memory. Options that already hold an exporter are
/// left alone.
///
/// A malformed DSN is an [`InitError`] naming `dsn`. The returned handle (also
/// available from [`installed`]) gives the exporter's stats; attach the running client
/// to it to report the pipeline's drops as well.
pub fn install(options: Options) -> Result<(Options, Option<ExportHandle>), InitError> {
    let Some(dsn) = options.parsed_dsn()? else {
        return Ok((options, None));
    };
    if options.find_sink::<SentryExporter>().is_some() {
        return Ok((options, None));
    }
    let mut builder =
        SentryExporter::builder(dsn).shutdown_timeout(options.configured_shutdown_timeout());
    if let Some(store) = options.find_sink::<SqliteStore>()
        && store.path().as_os_str() != ":memory:"
    {
        builder = builder.outbox(store.path());
    }
    let exporter = builder.build().map_err(|error| InitError::InvalidSetting {
        setting: "dsn",
        reason: error.to_string(),
    })?;
    let handle = exporter.handle();
    *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle.clone());
    Ok((options.sink(exporter), Some(handle)))
}

/// The exporter [`install`] added last, if any.
pub fn installed() -> Option<ExportHandle> {
    INSTALLED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}
