//! Request context reaches handler code without being passed around, follows bound
//! work onto other threads, and never leaks between concurrent requests.

use std::time::Duration;

use backstop_core::{Client, Level, Options, RequestScope, User, test::TestSink};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn context_never_leaks_between_hundreds_of_concurrent_requests() {
    let sink = TestSink::new();
    let backstop =
        backstop_core::test::start(Options::new().sink(sink.clone()).queue_capacity(10_000))
            .unwrap();
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let scope = RequestScope::builder(&backstop, format!("GET /r/{i}")).start();
        tasks.push(tokio::spawn(scope.bind(async move {
            backstop_core::set_user(Some(User::with_id(i.to_string())));
            backstop_core::set_tag("request", i.to_string());
            // Yield and sleep so that requests interleave on the worker threads.
            for step in 0..3 {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_micros(u64::from(i % 7) * 50)).await;
                backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new(
                    "step",
                    format!("{i}/{step}"),
                ));
            }
            // Work spawned with `bind` keeps the request's context on another task.
            let child = tokio::spawn(backstop_core::bind(async move {
                tokio::task::yield_now().await;
                backstop_core::set_tag("child", i.to_string());
            }));
            child.await.unwrap();
            // Work spawned without it does not see the request at all.
            let unbound = tokio::spawn(async { RequestScope::current().is_none() });
            assert!(unbound.await.unwrap(), "unbound tasks have no scope");
            backstop_core::capture_message(format!("request {i}"), Level::Info)
        })));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    assert!(backstop.flush(Duration::from_secs(10)));
    let events = sink.events();
    assert_eq!(events.len(), 500);
    for event in &events {
        let i: u32 = event
            .message
            .as_deref()
            .unwrap()
            .strip_prefix("request ")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            event.user.as_ref().unwrap().id.as_deref(),
            Some(i.to_string().as_str())
        );
        assert_eq!(event.tags["request"], i.to_string());
        assert_eq!(event.tags["child"], i.to_string());
        assert_eq!(
            event.transaction.as_deref(),
            Some(format!("GET /r/{i}").as_str())
        );
        let crumbs: Vec<_> = event
            .breadcrumbs
            .values
            .iter()
            .map(|b| b.message.clone().unwrap())
            .collect();
        assert_eq!(
            crumbs,
            [format!("{i}/0"), format!("{i}/1"), format!("{i}/2")]
        );
        assert!(
            ids.contains(&event.event_id),
            "capture returned the id it recorded"
        );
    }
    // No scope is left behind on the runtime's threads.
    assert!(
        tokio::spawn(async { RequestScope::current().is_none() })
            .await
            .unwrap()
    );
}

#[test]
fn outside_a_request_captures_go_to_the_global_client_without_context() {
    // The only test in this binary that touches the global client.
    let sink = TestSink::new();
    let backstop = backstop_core::init(Options::new().sink(sink.clone())).unwrap();
    backstop_core::set_tag("ignored", "outside any request");
    assert!(backstop_core::configure_scope(|_| ()).is_none());
    let id = backstop_core::capture_message("from main", Level::Warning);
    // A panic on a background thread, outside any scope, is recorded by the hook.
    let handle = std::thread::Builder::new()
        .name("reporter".into())
        .spawn(|| panic!("background job died"))
        .unwrap();
    assert!(handle.join().is_err());
    assert!(backstop.flush(Duration::from_secs(5)));
    let events = sink.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0].event_id, id);
    assert!(events[0].tags.is_empty());
    assert_eq!(
        events[1].exception.values[0].value.as_deref(),
        Some("background job died")
    );
    assert_eq!(events[1].extra["thread"], "reporter");
    assert_eq!(
        events[1].exception.values[0]
            .mechanism
            .as_ref()
            .unwrap()
            .handled,
        Some(false)
    );
    drop(backstop);
    assert!(
        Client::global().is_none(),
        "the guard unregisters its client"
    );
}

#[test]
fn nested_scopes_restore_the_outer_one() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(Options::new().sink(sink.clone())).unwrap();
    let outer = RequestScope::builder(&backstop, "outer").start();
    let inner = RequestScope::builder(&backstop, "inner").start();
    outer.run(|| {
        backstop_core::set_tag("who", "outer");
        inner.run(|| backstop_core::set_tag("who", "inner"));
        backstop_core::capture_message("m", Level::Info);
    });
    assert!(RequestScope::current().is_none());
    assert!(backstop.flush(Duration::from_secs(5)));
    assert_eq!(sink.events()[0].tags["who"], "outer");
    assert_eq!(inner.configure(|s| s.tags()["who"].clone()), "inner");
}

#[test]
fn configuring_from_inside_configure_neither_deadlocks_nor_panics() {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(Options::new().sink(sink.clone())).unwrap();
    let scope = RequestScope::builder(&backstop, "x").start();
    scope.run(|| {
        backstop_core::configure_scope(|s| {
            s.set_tag("outer", "yes");
            backstop_core::set_tag("nested", "discarded");
            backstop_core::capture_message("from inside", Level::Info);
        });
    });
    assert!(backstop.flush(Duration::from_secs(5)));
    assert_eq!(scope.configure(|s| s.tags().get("nested").cloned()), None);
    assert_eq!(scope.configure(|s| s.tags()["outer"].clone()), "yes");
    assert_eq!(sink.events().len(), 1);
}
