//! `backstop routes`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::note;
use crate::error::CliError;
use crate::json::{RouteJson, RouteList};
use crate::output::{Align, Cell, Out, Table, duration, rfc3339};
use crate::store::{RouteFilter, RouteOrder, Store};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Only requests from this long ago on (`30m`, `1h`, `7d`); by default all kept.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration)]
    since: Option<Duration>,

    /// The order (always descending).
    #[arg(long, value_enum, default_value_t = RouteOrder::Requests)]
    sort: RouteOrder,

    /// At most this many routes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,

    /// Print JSON for scripts (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(db: &Path, args: &Args) -> Result<(), CliError> {
    let store = Store::open(db)?;
    // A span longer than the clock goes back covers everything.
    let since = args
        .since
        .map(|d| SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH));
    let routes = store.routes(&RouteFilter {
        since,
        sort: args.sort,
        limit: args.limit as usize,
    })?;
    let mut out = Out::new();
    if args.json {
        out.json_pretty(&RouteList {
            since: since.map(rfc3339),
            routes: routes.iter().map(RouteJson::from).collect(),
        })?;
        return Ok(out.flush()?);
    }
    if routes.is_empty() {
        let when = args.since.map_or(String::new(), |d| {
            format!(" in the last {}", humantime::format_duration(d))
        });
        note(&format!("no requests recorded{when} in {}", db.display()));
        return Ok(());
    }
    let mut table = Table::new(&[
        ("REQUESTS", Align::Right),
        ("ERRORS", Align::Right),
        ("P50", Align::Right),
        ("P95", Align::Right),
        ("P99", Align::Right),
        ("QUERIES", Align::Right),
        ("ROUTE", Align::Left),
    ]);
    for r in &routes {
        table.row(vec![
            Cell::new(&r.count.to_string()),
            Cell::new(&format!("{:.1}%", r.error_rate * 100.0)),
            Cell::new(&duration(r.p50)),
            Cell::new(&duration(r.p95)),
            Cell::new(&duration(r.p99)),
            Cell::new(&format!("{:.1}", r.mean_queries)),
            Cell::new(&r.name),
        ]);
    }
    table.print(&mut out)?;
    Ok(out.flush()?)
}
