//! The subcommands. Each is one variant of [`Command`] and one function.

mod alert;
mod dashboard;
mod export;
mod issues;
mod routes;
mod status;
mod tail;

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;

use crate::error::CliError;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// List issues (errors and performance problems), most recently seen first.
    Issues(issues::ListArgs),
    /// Show one issue: counts, releases, the latest event or occurrences.
    Issue(issues::ShowArgs),
    /// Requests per route: count, error rate, p50/p95/p99 and queries per request.
    Routes(routes::Args),
    /// Mark an issue resolved. A new event reopens it as regressed.
    Resolve(status::Args),
    /// Mute an issue. New events are counted but do not reopen it.
    Ignore(status::Args),
    /// Follow new events and performance problems as they are stored, one line each.
    Tail(tail::Args),
    /// Alert channels (BACKSTOP_ALERT_*): `alert test` sends a test notification.
    #[command(subcommand)]
    Alert(alert::Command),
    /// Serve the dashboard over the store, with no app running. Prints the login URL.
    Dashboard(dashboard::Args),
    /// Send the stored events and transactions to Sentry, keeping their ids.
    Export(export::Args),
}

pub(crate) fn run(db: &Path, command: Command) -> Result<(), CliError> {
    match command {
        Command::Issues(args) => issues::list(db, &args),
        Command::Issue(args) => issues::show(db, &args),
        Command::Routes(args) => routes::run(db, &args),
        Command::Resolve(args) => status::resolve(db, &args),
        Command::Ignore(args) => status::ignore(db, &args),
        Command::Tail(args) => tail::run(db, &args),
        Command::Alert(command) => alert::run(db, &command),
        Command::Dashboard(args) => dashboard::run(db, &args),
        Command::Export(args) => export::run(db, &args),
    }
}

/// A remark for the reader, on stderr so that stdout stays data.
fn note(message: &str) {
    eprintln!("{message}");
}

/// An issue id as lists print it: `7` or `#7`.
fn parse_issue_id(s: &str) -> Result<i64, String> {
    s.strip_prefix('#')
        .unwrap_or(s)
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| format!("{s:?} is not an issue id (a number like 7 or #7)"))
}

/// A duration like `30m`, `1h`, `7d` or `1h 30m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("{s:?} is not a duration; write it like 30m, 1h or 7d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_take_an_optional_hash() {
        assert_eq!(parse_issue_id("7"), Ok(7));
        assert_eq!(parse_issue_id("#12"), Ok(12));
        assert!(parse_issue_id("0").is_err());
        assert!(parse_issue_id("-3").is_err());
        assert!(parse_issue_id("seven").is_err());
        assert!(parse_issue_id("99999999999999999999").is_err());
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        let err = parse_duration("soon").unwrap_err();
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
    }
}
