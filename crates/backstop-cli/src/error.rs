//! What can go wrong, and the exit code each failure gets.
//!
//! The codes are part of the command's contract (`docs/cli.md`): scripts tell a missing
//! file from an unknown id without reading the message.

use std::io;
use std::path::PathBuf;

use backstop_store::StoreError;

/// Exit codes. 2 is also what clap uses for bad arguments.
pub(crate) mod code {
    /// The store could not be read or written, or the output could not be written.
    pub(crate) const FAILURE: u8 = 1;
    /// Bad arguments: an unknown command or option, a bad status, duration or id, a bad
    /// `BACKSTOP_ALERT_*` setting or an unknown alert channel.
    pub(crate) const USAGE: u8 = 2;
    /// The store file does not exist.
    pub(crate) const MISSING: u8 = 3;
    /// The file is not a Backstop database.
    pub(crate) const NOT_BACKSTOP: u8 = 4;
    /// No issue has the given id.
    pub(crate) const UNKNOWN_ID: u8 = 5;
    /// The store's schema version is one this build cannot read.
    pub(crate) const VERSION: u8 = 6;
}

/// A failure that ends the command with a one-line message and a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Reading never creates a store, so a wrong path is reported, not filled in.
    #[error("no Backstop store at {} (give --db FILE or set BACKSTOP_DB)", .0.display())]
    Missing(PathBuf),
    /// A directory where the store file was expected.
    #[error("{} is a directory, not a Backstop database", .0.display())]
    Directory(PathBuf),
    /// No issue has this id.
    #[error("no issue with id {0}")]
    UnknownIssue(i64),
    /// What the store said.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stdout could not be written (other than a closed pipe, which is a clean exit).
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
    /// The dashboard's address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, #[source] io::Error),
    /// The dashboard's server stopped.
    #[error("the dashboard server stopped: {0}")]
    Serve(#[source] io::Error),
    /// `backstop export` stopped: a bad DSN, or a server that could not be reached.
    #[error(transparent)]
    Export(#[from] backstop_sentry::ReplayError),
    /// The signal handler could not be installed.
    #[error("cannot watch for Ctrl-C: {0}")]
    Signal(#[from] ctrlc::Error),
    /// A `BACKSTOP_ALERT_*` variable is bad.
    #[error("{0}")]
    AlertConfig(#[from] backstop_alerts::ConfigError),
    /// `--channel` names no configured channel, or none is configured.
    #[error("{0}")]
    UnknownChannel(#[from] backstop_alerts::UnknownChannel),
    /// Test notifications that were not delivered (each is printed).
    #[error("{failed} of {tried} test notification(s) failed")]
    AlertsFailed {
        /// How many failed.
        failed: usize,
        /// How many were sent.
        tried: usize,
    },
}

impl CliError {
    /// The process exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Missing(_) => code::MISSING,
            CliError::Directory(_) => code::NOT_BACKSTOP,
            CliError::UnknownIssue(_) => code::UNKNOWN_ID,
            CliError::Store(StoreError::NotBackstop { .. }) => code::NOT_BACKSTOP,
            CliError::Store(StoreError::TooNew { .. } | StoreError::TooOld { .. }) => code::VERSION,
            CliError::AlertConfig(_) | CliError::UnknownChannel(_) => code::USAGE,
            CliError::Export(backstop_sentry::ReplayError::Dsn(_)) => code::USAGE,
            CliError::Store(_)
            | CliError::Output(_)
            | CliError::Signal(_)
            | CliError::AlertsFailed { .. }
            | CliError::Bind(..)
            | CliError::Serve(_)
            | CliError::Export(_) => code::FAILURE,
        }
    }

    /// A reader that went away (`backstop issues | head`) is not a failure.
    pub(crate) fn is_closed_output(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}
