//! `backstop export`: a store's events and transactions replayed to Sentry.

use std::path::Path;
use std::time::Duration;

use super::note;
use crate::error::CliError;
use crate::store::Store;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The Sentry DSN to send to (`https://KEY@HOST/PROJECT_ID`) [default: $SENTRY_DSN].
    #[arg(long, value_name = "DSN", env = "SENTRY_DSN", hide_env_values = true)]
    dsn: String,

    /// Only records from this long ago on (`30m`, `1h`, `7d`); by default all kept.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    since: Option<Duration>,
}

pub(crate) fn run(db: &Path, args: &Args) -> Result<(), CliError> {
    // Checked as every command checks it: a wrong path is reported, not created.
    drop(Store::open(db)?);
    let report = backstop_sentry::replay(db, &args.dsn, args.since)?;
    note(&format!(
        "Sent {} events and {} transactions; {} refused, {} rate-limited.",
        report.events_sent, report.transactions_sent, report.failed, report.rate_limited
    ));
    Ok(())
}
