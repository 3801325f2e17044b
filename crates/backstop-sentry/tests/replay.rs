//! `backstop export`'s library side: a store's events and transactions replayed to a
//! server, with their ids.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use backstop_core::{Event, Level, Options, RequestScope};
use backstop_sentry::{ReplayError, replay};
use backstop_store::SqliteStore;
use support::{Action, Receiver};

#[test]
fn a_stored_history_is_replayed_with_its_event_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(SqliteStore::open(&db).unwrap())
            .console(false)
            .install_panic_hook(false),
    )
    .unwrap();
    let mut ids = BTreeSet::new();
    for i in 0..3 {
        let mut event = Event::new(Level::Error);
        event.message = Some(format!("stored {i}"));
        ids.insert(backstop.capture_event(event).to_string());
    }
    for _ in 0..2 {
        let scope = RequestScope::builder(&backstop, "GET /users")
            .sampled(true)
            .start();
        ids.insert(scope.finish_http(200).unwrap().to_string());
    }
    assert!(backstop.shutdown(Duration::from_secs(10)));

    // The first attempt fails: a replay retries.
    let receiver = Receiver::start(|n| match n {
        0 => Action::Answer(503, Vec::new()),
        _ => Action::Answer(200, Vec::new()),
    });
    let report = replay(&db, &receiver.dsn(), Some(Duration::from_secs(3600))).unwrap();
    assert_eq!((report.events_sent, report.transactions_sent), (3, 2));
    assert_eq!((report.failed, report.rate_limited), (0, 0));
    let sent: BTreeSet<String> = receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.event_id())
        .collect();
    assert_eq!(sent, ids);

    // Nothing is newer than a moment from now.
    std::thread::sleep(Duration::from_millis(50));
    let none = replay(&db, &receiver.dsn(), Some(Duration::from_millis(10))).unwrap();
    assert_eq!((none.events_sent, none.transactions_sent), (0, 0));
}

#[test]
fn a_replay_reports_a_bad_dsn_and_a_dead_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let err = replay(&db, "https://sentry.example.com/1", None).unwrap_err();
    assert!(matches!(err, ReplayError::Dsn(_)), "{err}");
    assert!(err.to_string().contains("--dsn"), "{err}");

    let missing = replay(&dir.path().join("nope.db"), "http://k@127.0.0.1:9/1", None).unwrap_err();
    assert!(matches!(missing, ReplayError::Store { .. }), "{missing}");
}
