//! The store's typed errors.

use std::path::PathBuf;

/// Why the store could not be opened, written or read. Every variant names the
/// database's path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be opened or created (missing directory, permissions, a file
    /// that is not SQLite at all).
    #[error("cannot open the Backstop store at {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is an SQLite database, but not one Backstop created.
    #[error("{path} is not a Backstop database: {reason}")]
    NotBackstop {
        /// The database path.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The database was written by a newer Backstop, with a schema this build does not
    /// know.
    #[error(
        "the Backstop store at {path} has schema version {found}, newer than this build supports ({supported}); upgrade Backstop or use another file"
    )]
    TooNew {
        /// The database path.
        path: PathBuf,
        /// The schema version in the file (`PRAGMA user_version`).
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A reader was opened on a database with an older schema, which only a writer
    /// ([`SqliteStore`](crate::SqliteStore)) upgrades.
    #[error(
        "the Backstop store at {path} has schema version {found}, older than this build reads ({supported}); open it once with SqliteStore to upgrade it"
    )]
    TooOld {
        /// The database path.
        path: PathBuf,
        /// The schema version in the file (`PRAGMA user_version`).
        found: i64,
        /// The version this build reads.
        supported: i64,
    },
    /// A query or write failed.
    #[error("Backstop store at {path}: {source}")]
    Sqlite {
        /// The database path.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// The database path the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            StoreError::Open { path, .. }
            | StoreError::NotBackstop { path, .. }
            | StoreError::TooNew { path, .. }
            | StoreError::TooOld { path, .. }
            | StoreError::Sqlite { path, .. } => path,
        }
    }

    /// The SQLite error code underneath, if there is one.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            StoreError::Open { source, .. } | StoreError::Sqlite { source, .. } => {
                source.sqlite_error_code()
            }
            _ => None,
        }
    }
}
