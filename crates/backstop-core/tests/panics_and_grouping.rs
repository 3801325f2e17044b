//! The panic hook and grouping: what a caught panic records, and which events are one
//! issue.

use std::sync::Arc;

use backstop_core::protocol::{Exception, Frame, Stacktrace, Values};
use backstop_core::{Event, Level, RequestScope, User, test};

#[inline(never)]
fn charge_card(step: u32) {
    if step == 1 {
        panic!("charge failed at step {step}");
    }
    let items: Vec<u32> = Vec::new();
    // A different line of the same function: the same bug, as far as grouping goes.
    let _ = items[step as usize];
}

#[inline(never)]
fn ship_order() {
    panic!("shipping failed");
}

/// What an adapter does: catch the panic inside the bound scope, then record it.
fn caught(scope: &Arc<RequestScope>, f: impl FnOnce() + std::panic::UnwindSafe) {
    let payload = scope.run(|| std::panic::catch_unwind(f)).unwrap_err();
    scope.capture_panic(&*payload);
}

fn panic_event(f: impl FnOnce() + std::panic::UnwindSafe) -> Event {
    let captured = test::capture(|| {
        let scope = RequestScope::current().unwrap();
        backstop_core::set_user(Some(User::with_id("u1")));
        backstop_core::set_tag("cart", "big");
        backstop_core::add_breadcrumb(backstop_core::Breadcrumb::new("ui", "clicked pay"));
        caught(&scope, f);
    });
    assert_eq!(captured.events.len(), 1);
    captured.events.into_iter().next().unwrap()
}

fn frames(event: &Event) -> &[Frame] {
    &event.exception.values[0]
        .stacktrace
        .as_ref()
        .unwrap()
        .frames
}

#[test]
fn a_caught_panic_carries_message_location_backtrace_and_context() {
    let event = panic_event(|| charge_card(1));
    assert_eq!(event.level, Level::Fatal);
    let exc = &event.exception.values[0];
    assert_eq!(exc.ty, "panic");
    assert_eq!(exc.value.as_deref(), Some("charge failed at step 1"));
    let mechanism = exc.mechanism.as_ref().unwrap();
    assert_eq!(mechanism.ty, "panic");
    assert_eq!(mechanism.handled, Some(false));
    let location = mechanism.data["location"].as_str().unwrap();
    assert!(location.contains("panics_and_grouping.rs:"), "{location}");

    // Context gathered before the panic.
    assert_eq!(event.user.as_ref().unwrap().id.as_deref(), Some("u1"));
    assert_eq!(event.tags["cart"], "big");
    assert_eq!(
        event.breadcrumbs.values[0].message.as_deref(),
        Some("clicked pay")
    );

    // The innermost frame is the panicking function: the hook's and std's panic
    // machinery are trimmed away.
    let frames = frames(&event);
    let last = frames.last().unwrap();
    assert_eq!(last.function.as_deref(), Some("charge_card"), "{frames:#?}");
    assert_eq!(last.module.as_deref(), Some("panics_and_grouping"));
    assert_eq!(last.in_app, Some(true));
    assert!(
        last.filename
            .as_deref()
            .unwrap()
            .ends_with("panics_and_grouping.rs")
    );
    assert!(last.lineno.unwrap() > 0);
    for frame in frames {
        let module = frame.module.as_deref().unwrap_or("");
        assert!(!module.starts_with("backstop_core::panic"), "{frame:?}");
        assert!(!module.starts_with("core::panicking"), "{frame:?}");
        if module.starts_with("std") || module.starts_with("core") {
            assert_eq!(frame.in_app, Some(false), "{frame:?}");
        }
    }
    // The culprit names the top in-app frame.
    assert!(
        event
            .culprit
            .as_deref()
            .unwrap()
            .starts_with("panics_and_grouping::charge_card")
    );
}

#[test]
fn the_same_bug_on_different_lines_groups_together() {
    let first = panic_event(|| charge_card(1));
    let second = panic_event(|| charge_card(5));
    assert_ne!(
        frames(&first).last().unwrap().lineno,
        frames(&second).last().unwrap().lineno,
        "the two panics are on different lines"
    );
    assert_eq!(first.group_hash(), second.group_hash());
}

#[test]
fn different_call_sites_group_apart() {
    let charge = panic_event(|| charge_card(1));
    let ship = panic_event(ship_order);
    assert_ne!(charge.group_hash(), ship.group_hash());
}

#[test]
fn a_panic_escaping_a_bound_region_is_still_recorded_once() {
    let captured = test::capture(|| {
        let scope = RequestScope::current().unwrap();
        let inner = RequestScope::builder(&scope.client(), "job").start();
        let result = std::panic::catch_unwind(|| inner.run(ship_order));
        assert!(result.is_err());
    });
    assert_eq!(captured.events.len(), 1);
    assert_eq!(
        captured.events[0].exception.values[0].value.as_deref(),
        Some("shipping failed")
    );
    assert_eq!(captured.events[0].transaction.as_deref(), Some("job"));
}

fn synthetic(ty: &str, message: &str, frames: &[(&str, &str, u64)]) -> Event {
    let mut event = Event::new(Level::Error);
    event.exception = Values {
        values: vec![Exception {
            ty: ty.into(),
            value: Some(message.into()),
            stacktrace: (!frames.is_empty()).then(|| Stacktrace {
                frames: frames
                    .iter()
                    .map(|(module, function, line)| Frame {
                        module: Some((*module).into()),
                        function: Some((*function).into()),
                        lineno: Some(*line),
                        in_app: Some(!module.starts_with("std")),
                        ..Frame::default()
                    })
                    .collect(),
            }),
            ..Exception::default()
        }],
    };
    event
}

fn grouped(events: Vec<Event>) -> Vec<Event> {
    test::capture(|| {
        for event in events {
            backstop_core::capture_event(event);
        }
    })
    .events
}

#[test]
fn grouping_ignores_lines_and_library_frames_but_not_functions() {
    let out = grouped(vec![
        synthetic(
            "DbError",
            "row 17 missing",
            &[("std::rt", "lang_start", 1), ("shop::orders", "load", 10)],
        ),
        synthetic(
            "DbError",
            "row 99 missing",
            &[("std::rt", "lang_start", 2), ("shop::orders", "load", 55)],
        ),
        synthetic("DbError", "row 17 missing", &[("shop::orders", "save", 10)]),
        synthetic("IoError", "row 17 missing", &[("shop::orders", "load", 10)]),
        synthetic(
            "DbError",
            "closure",
            &[("shop::orders", "load::{{closure}}", 10)],
        ),
        synthetic(
            "DbError",
            "closure",
            &[("shop::orders", "load::{{closure}}", 12)],
        ),
    ]);
    let h: Vec<String> = out.iter().map(Event::group_hash).collect();
    assert_eq!(h[0], h[1], "same functions, other lines and values");
    assert_ne!(h[0], h[2], "another function");
    assert_ne!(h[0], h[3], "another type");
    assert_eq!(h[4], h[5]);
}

#[test]
fn without_a_stacktrace_the_normalised_message_groups() {
    let msg = |m: &str| {
        let mut e = Event::new(Level::Error);
        e.message = Some(m.into());
        e
    };
    let out = grouped(vec![
        msg(
            "payment 1234 for ann@example.com from 10.1.2.3 failed (id 550e8400-e29b-41d4-a716-446655440000)",
        ),
        msg(
            "payment 98 for bob@example.org from 192.168.0.1 failed (id 6ba7b810-9dad-11d1-80b4-00c04fd430c8)",
        ),
        msg(
            "refund 98 for bob@example.org from 192.168.0.1 failed (id 6ba7b810-9dad-11d1-80b4-00c04fd430c8)",
        ),
        synthetic("Timeout", "after 30s on 0xdeadbeef", &[]),
        synthetic("Timeout", "after 45s on 0xcafe01", &[]),
    ]);
    assert_eq!(
        out[0].group_hash(),
        out[1].group_hash(),
        "{:?}",
        out.iter()
            .map(|e| backstop_core::fingerprint::normalize_message(
                e.message.as_deref().unwrap_or("")
            ))
            .collect::<Vec<_>>()
    );
    assert_ne!(out[1].group_hash(), out[2].group_hash());
    assert_eq!(out[3].group_hash(), out[4].group_hash());
}

#[test]
fn custom_fingerprints_can_extend_the_default() {
    let captured = test::capture(|| {
        let scope = RequestScope::current().unwrap();
        for tenant in ["acme", "acme", "globex"] {
            scope.configure(|s| {
                s.set_fingerprint(Some(vec!["{{ default }}".into(), tenant.into()]));
            });
            backstop_core::capture_message("quota exceeded", Level::Warning);
        }
        scope.configure(|s| s.set_fingerprint(Some(vec!["quota".into()])));
        backstop_core::capture_message("quota exceeded", Level::Warning);
        scope.configure(|s| s.set_fingerprint(None));
        backstop_core::capture_message("quota exceeded", Level::Warning);
    });
    let e = &captured.events;
    assert_eq!(e[0].group_hash(), e[1].group_hash());
    assert_ne!(e[0].group_hash(), e[2].group_hash(), "split per tenant");
    assert_eq!(e[0].fingerprint[1], "acme");
    assert_eq!(
        e[0].fingerprint[0], e[4].fingerprint[0],
        "{{{{ default }}}} is the default hash"
    );
    assert_eq!(e[3].fingerprint, vec!["quota".to_owned()]);
}
