//! `backstop export`: the store's events and transactions, replayed to a Sentry-protocol
//! server (Kent) with their ids.

mod common;

use std::collections::BTreeSet;

use backstop_sentry::kent::Kent;
use common::{PATIENCE, failure, fixture, stderr};

#[test]
fn the_stored_events_arrive_with_their_ids() {
    let fixture = fixture();
    let mut ids = BTreeSet::new();
    ids.insert(fixture.checkout_failure().to_string());
    ids.insert(fixture.message("disk almost full").to_string());
    fixture.flush();

    let kent = Kent::start();
    let out = fixture.run(&["export", "--dsn", &kent.dsn(), "--since", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Two events and the checkout's transaction.
    assert!(
        stderr(&out).contains("Sent 2 events and 1 transactions"),
        "{}",
        stderr(&out)
    );
    let items = kent.wait_for(PATIENCE, |items| {
        let got: BTreeSet<&str> = items.iter().filter_map(|i| i.event_id()).collect();
        ids.iter().all(|id| got.contains(id.as_str()))
    });
    let got: BTreeSet<String> = items
        .iter()
        .filter(|i| i.item_type() == "event")
        .filter_map(|i| i.event_id().map(str::to_owned))
        .collect();
    assert_eq!(got, ids);
}

#[test]
fn a_bad_dsn_is_a_clear_error() {
    let fixture = fixture();
    fixture.message("kept");
    fixture.flush();
    for (dsn, says) in [
        ("ftp://key@127.0.0.1/1", "scheme"),
        ("http://127.0.0.1/1", "key"),
        ("http://key@127.0.0.1/", "project"),
    ] {
        let out = fixture.run(&["export", "--dsn", dsn]);
        let err = failure(&out, 2);
        assert!(err.contains("invalid `--dsn`"), "{err}");
        assert!(err.contains(says), "{dsn}: {err}");
    }
}
