//! `backstop tail`: new events and performance problems, one line each, as the store
//! gets them.
//!
//! It polls the file (a reader cannot be told of a commit in another process), and
//! stops cleanly on Ctrl-C, SIGTERM or SIGHUP, and when stdout is closed
//! (`backstop tail | head -3`) at the next line it writes.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::ErrorCode;

use super::note;
use crate::error::CliError;
use crate::json::TailJson;
use crate::output::{DIM, Out, clock, duration, kind_style, level_style, problem_label, truncate};
use crate::store::{Store, Stored, Tail};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// How often to look for new rows.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_interval)]
    interval: Duration,

    /// Print one JSON object per line (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match super::parse_duration(s)? {
        Duration::ZERO => Err("the interval must be more than zero".into()),
        d => Ok(d),
    }
}

pub(crate) fn run(db: &Path, args: &Args) -> Result<(), CliError> {
    let store = Store::open(db)?;
    let (stop_tx, stop) = mpsc::channel();
    // The handler only wakes the loop, which returns and lets stdout flush.
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })?;
    let mut tail = store.tail()?;
    note(&format!("following {}; Ctrl-C stops", db.display()));
    let mut out = Out::new();
    loop {
        let items = match tail.poll() {
            Ok(items) => items,
            // The writer's lock outlasted the busy timeout: try again next time.
            Err(CliError::Store(e))
                if matches!(
                    e.sqlite_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) =>
            {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        for item in &items {
            if args.json {
                out.json(&TailJson::from(item))?;
            } else {
                line(&mut out, item)?;
            }
        }
        out.flush()?;
        // A full batch means more is waiting: read on before sleeping.
        let wait = if items.len() >= Tail::BATCH {
            Duration::ZERO
        } else {
            args.interval
        };
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// Room for `HH:MM:SS  kind        #id  `.
const PREFIX: usize = 8 + 2 + 10 + 2 + 6 + 2;

fn line(out: &mut Out, item: &Stored) -> std::io::Result<()> {
    let (kind, style, issue, text) = match item {
        Stored::Event(e) => {
            let text = match &e.transaction {
                Some(t) => format!("{}  [{t}]", e.title),
                None => e.title.clone(),
            };
            (e.level.as_str(), level_style(e.level), e.issue_id, text)
        }
        Stored::Problem(p) => {
            let text = format!(
                "{} ({} queries, {})  [{}]",
                p.description,
                p.count,
                duration(p.duration),
                p.route
            );
            (problem_label(p.kind), kind_style(), p.issue_id, text)
        }
    };
    let room = out
        .width()
        .map_or(usize::MAX, |w| w.saturating_sub(PREFIX).max(20));
    out.styled(DIM, &clock(item.timestamp()))?;
    out.styled(style, &format!("  {kind:<10}"))?;
    out.line(&format!(
        "  {:>6}  {}",
        format!("#{issue}"),
        truncate(&text, room)
    ))
}
