//! A process that captures events with the store and Sentry export on, for the restart
//! test: `outbox_child <db> <dsn> <count>` captures `count` events, prints their ids,
//! flushes them into the store (and its outbox), prints `ready`, and runs until killed.

use std::io::Write;
use std::time::Duration;

use backstop_core::{Event, Level, Options};
use backstop_store::SqliteStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(dsn), Some(count)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: outbox_child <db> <dsn> <count>".into());
    };
    let options = Options::new()
        .dsn(dsn)
        .sink(SqliteStore::open(&db)?)
        .console(false);
    let (options, _export) = backstop_sentry::install(options)?;
    let backstop = backstop_core::init(options)?;
    let mut out = std::io::stdout().lock();
    for i in 0..count.parse::<usize>()? {
        let mut event = Event::new(Level::Error);
        event.message = Some(format!("before the kill {i}"));
        writeln!(out, "{}", backstop.capture_event(event))?;
    }
    backstop.flush(Duration::from_secs(30));
    writeln!(out, "ready")?;
    out.flush()?;
    drop(out);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
