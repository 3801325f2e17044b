//! `backstop alert test [--channel NAME]`: a test notification through the channels
//! the `BACKSTOP_ALERT_*` variables configure, recorded in the store's alert history.

use std::path::Path;

use backstop_alerts::Alerts;
use backstop_store::AlertHistory;

use crate::error::CliError;
use crate::output::Out;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Send a test notification to every configured channel, or to one.
    Test(TestArgs),
}

#[derive(clap::Args)]
pub(crate) struct TestArgs {
    /// Only this channel: slack, discord, webhook, pagerduty or email.
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
}

pub(crate) fn run(db: &Path, command: &Command) -> Result<(), CliError> {
    let Command::Test(args) = command;
    let alerts = Alerts::from_env()?;
    // The history is kept when the store exists; a test never creates one.
    let history = if db.is_file() {
        Some(AlertHistory::open(db)?)
    } else {
        super::note(&format!(
            "no store at {}: the test is not recorded in the alert history",
            db.display()
        ));
        None
    };
    let results = alerts.send_test(args.channel.as_deref(), history.as_ref())?;
    let mut out = Out::new();
    let mut failed = 0;
    for result in &results {
        let attempts = match result.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        match &result.error {
            None => out.line(&format!("{}: sent ({attempts})", result.channel))?,
            Some(error) => {
                failed += 1;
                out.line(&format!(
                    "{}: failed after {attempts}: {error}",
                    result.channel
                ))?;
            }
        }
    }
    out.flush()?;
    if failed > 0 {
        return Err(CliError::AlertsFailed {
            failed,
            tried: results.len(),
        });
    }
    Ok(())
}
