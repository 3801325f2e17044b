//! Transactions travel to the worker in per-thread batches: none may be stranded in a
//! batch that never fills, whatever the threads do.

use std::time::{Duration, Instant};

use backstop_core::{Client, Options, RequestScope, test::TestSink};

fn start(queue_capacity: usize) -> (backstop_core::BackstopGuard, TestSink) {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .traces_sample_rate(1.0)
            .queue_capacity(queue_capacity)
            .install_panic_hook(false)
            .sink(sink.clone()),
    )
    .unwrap();
    (backstop, sink)
}

fn finish_one(client: &Client, name: &str) {
    RequestScope::builder(client, name).start().finish_http(200);
}

#[test]
fn every_transaction_from_threads_that_ended_arrives_by_the_flush() {
    let (backstop, sink) = start(4096);
    // 37 per thread: never a whole number of batches.
    std::thread::scope(|threads| {
        for t in 0..8 {
            let client = backstop.client().clone();
            threads.spawn(move || {
                for i in 0..37 {
                    finish_one(&client, &format!("GET /t{t}/{i}"));
                }
            });
        }
    });
    assert!(backstop.flush(Duration::from_secs(10)));
    let mut names: Vec<String> = sink.transactions().into_iter().map(|t| t.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8 * 37);
    let stats = backstop.stats().transactions;
    assert_eq!((stats.captured, stats.sent, stats.dropped()), (296, 296, 0));
}

#[test]
fn a_lone_transaction_arrives_without_a_flush() {
    let (backstop, sink) = start(4096);
    // The thread stays alive and sends nothing more: its batch never fills.
    finish_one(backstop.client(), "GET /alone");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.transactions().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let transactions = sink.transactions();
    assert_eq!(transactions.len(), 1, "collected at a tick, with no flush");
    assert_eq!(transactions[0].name, "GET /alone");
}

#[test]
fn small_queues_send_each_transaction_alone_and_count_what_does_not_fit() {
    // A queue of 4 messages: no batching, and a full queue drops and counts one by one.
    let (backstop, sink) = start(4);
    for i in 0..10_000 {
        finish_one(backstop.client(), &format!("GET /{i}"));
    }
    assert!(backstop.flush(Duration::from_secs(10)));
    let stats = backstop.stats().transactions;
    assert_eq!(stats.captured, 10_000);
    assert_eq!(stats.sent + stats.dropped(), 10_000);
    assert_eq!(stats.sent as usize, sink.transactions().len());
}

#[test]
fn transactions_of_two_clients_on_one_thread_go_to_their_own_client() {
    let (first, first_sink) = start(4096);
    let (second, second_sink) = start(4096);
    for i in 0..20 {
        finish_one(first.client(), &format!("GET /first/{i}"));
        finish_one(second.client(), &format!("GET /second/{i}"));
    }
    // A client that is gone leaves nothing behind on the thread.
    assert!(first.shutdown(Duration::from_secs(10)));
    assert!(second.flush(Duration::from_secs(10)));
    let first: Vec<_> = first_sink.transactions();
    let second: Vec<_> = second_sink.transactions();
    assert_eq!(first.len(), 20);
    assert_eq!(second.len(), 20);
    assert!(first.iter().all(|t| t.name.starts_with("GET /first/")));
    assert!(second.iter().all(|t| t.name.starts_with("GET /second/")));
    let (third, third_sink) = start(4096);
    finish_one(third.client(), "GET /third");
    assert!(third.flush(Duration::from_secs(10)));
    assert_eq!(third_sink.transactions().len(), 1);
}

#[test]
fn what_the_worker_is_done_with_is_freed_by_the_next_request() {
    // The request's copy goes back to a request thread once processed: it lives until
    // the next request there frees it.
    let (backstop, sink) = start(4096);
    let source: backstop_core::RequestSource = std::sync::Arc::new(backstop_core::Request::default);
    let weak = std::sync::Arc::downgrade(&source);
    RequestScope::builder(backstop.client(), "GET /first")
        .request_source(source)
        .start()
        .finish_http(200);
    assert!(backstop.flush(Duration::from_secs(10)));
    assert_eq!(sink.transactions().len(), 1);
    assert!(weak.upgrade().is_some(), "waiting for a request thread");
    drop(RequestScope::builder(backstop.client(), "GET /next").start());
    assert!(weak.upgrade().is_none(), "freed by the next request");
}
