//! `backstop resolve ID` and `backstop ignore ID`.

use std::path::Path;

use backstop_store::IssueStatus;

use crate::error::CliError;
use crate::output::{Out, issue_title, one_line};
use crate::store::Store;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// The issue's id, as `backstop issues` lists it (`7` or `#7`).
    #[arg(value_parser = super::parse_issue_id)]
    id: i64,
}

pub(crate) fn resolve(db: &Path, args: &Args) -> Result<(), CliError> {
    set(db, args.id, IssueStatus::Resolved)
}

pub(crate) fn ignore(db: &Path, args: &Args) -> Result<(), CliError> {
    set(db, args.id, IssueStatus::Ignored)
}

fn set(db: &Path, id: i64, status: IssueStatus) -> Result<(), CliError> {
    let change = Store::open(db)?.set_status(id, status)?;
    let title = one_line(&issue_title(&change.issue));
    let mut out = Out::new();
    if change.unchanged {
        out.line(&format!("#{id} was already {status}: {title}"))?;
    } else {
        out.line(&format!("#{id} is now {status}: {title}"))?;
    }
    Ok(out.flush()?)
}
