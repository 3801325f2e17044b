//! `backstop tail` following a store while the real pipeline writes to it.

mod common;

use std::process::Command;

use common::*;

#[test]
fn tail_prints_events_and_problems_stored_after_it_started() {
    let fixture = fixture();
    // Stored before tail starts: not printed.
    fixture.message("old news");
    fixture.flush();

    let mut tailing = tail(&fixture, &[]);
    fixture.checkout_failure();
    fixture.users_request(6);
    fixture.flush();

    let lines = collect_until(&tailing.lines, |lines| {
        lines.iter().any(|l| l.contains("ParseIntError"))
            && lines.iter().any(|l| l.contains(N_PLUS_ONE))
    });
    tailing.child.kill().unwrap();
    tailing.child.wait().unwrap();

    assert!(!lines.iter().any(|l| l.contains("old news")), "{lines:#?}");
    let error = lines.iter().find(|l| l.contains("ParseIntError")).unwrap();
    assert!(!error.contains('\u{1b}'), "no colour when piped: {error:?}");
    // `HH:MM:SS  error  #N  title  [transaction]`
    assert_eq!(error.as_bytes()[2], b':');
    assert_eq!(error.as_bytes()[5], b':');
    assert!(error[8..].trim_start().starts_with("error"), "{error}");
    assert!(error.contains(" #"));
    assert!(error.ends_with("[GET /checkout]"), "{error}");
    let problem = lines.iter().find(|l| l.contains(N_PLUS_ONE)).unwrap();
    assert!(problem[8..].trim_start().starts_with("n+1"), "{problem}");
    assert!(problem.contains("(6 queries, "), "{problem}");
    assert!(problem.ends_with("[GET /users]"), "{problem}");
    assert_eq!(lines.len(), 2, "one line each: {lines:#?}");
}

#[test]
fn tail_json_prints_one_object_per_line() {
    let fixture = fixture();
    let mut tailing = tail(&fixture, &["--json"]);
    let event = fixture.checkout_failure();
    fixture.users_request(6);
    fixture.flush();

    let lines = collect_until(&tailing.lines, |lines| lines.len() >= 2);
    tailing.child.kill().unwrap();
    tailing.child.wait().unwrap();

    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let event_line = objects.iter().find(|o| o["type"] == "event").unwrap();
    assert_eq!(event_line["event_id"], event.to_string());
    assert_eq!(
        event_line["title"],
        "ParseIntError: invalid digit found in string"
    );
    assert_eq!(event_line["level"], "error");
    assert_eq!(event_line["transaction"], "GET /checkout");
    assert_eq!(event_line["release"], RELEASE);
    assert_eq!(event_line["user"], "id:9");
    assert!(event_line["issue_id"].as_i64().unwrap() > 0);

    let problem = objects.iter().find(|o| o["type"] == "problem").unwrap();
    assert_eq!(problem["kind"], "n_plus_one");
    assert_eq!(problem["route"], "GET /users");
    assert_eq!(problem["description"], N_PLUS_ONE);
    assert_eq!(problem["count"], 6);
    assert_eq!(problem["span_ids"].as_array().unwrap().len(), 6);

    // The problem's issue is the one `issue` shows.
    let issue = problem["issue_id"].to_string();
    let detail = json(&fixture.run(&["issue", &issue, "--json"]));
    assert_eq!(detail["issue"]["kind"], "n_plus_one");
    assert_eq!(
        detail["occurrences"][0]["transaction_event_id"],
        problem["transaction_event_id"]
    );
}

#[test]
fn tail_stops_cleanly_on_sigterm_and_sigint() {
    let fixture = fixture();
    for signal in ["-TERM", "-INT"] {
        let mut tailing = tail(&fixture, &[]);
        let killed = Command::new("kill")
            .args([signal, &tailing.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = wait_for_exit(&mut tailing.child);
        assert!(status.success(), "{signal}: {status:?}");
    }
}

#[test]
fn tail_stops_cleanly_when_its_reader_goes_away() {
    let fixture = fixture();
    let mut tailing = tail(&fixture, &[]);
    // Without a receiver, the reading thread stops at the next line and closes the
    // read end of tail's stdout, as `backstop tail | head -1` does once head has its
    // line.
    tailing.lines = std::sync::mpsc::channel().1;
    let deadline = std::time::Instant::now() + PATIENCE;
    // Tail finds out at its next write: keep giving it something to write.
    loop {
        fixture.message("anyone there?");
        fixture.flush();
        if let Some(status) = tailing.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "tail kept running");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn tail_follows_a_store_file_that_was_removed_and_created_again() {
    let fixture = fixture();
    fixture.message("before");
    fixture.flush();
    let mut tailing = tail(&fixture, &[]);

    // The store notices before its next write and starts a fresh file at the path,
    // whose rows reuse the old file's ids: all three are new all the same.
    for suffix in ["", "-wal", "-shm"] {
        let mut path = fixture.path.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    for i in 0..3 {
        fixture.message(&format!("after {i}"));
    }
    fixture.flush();

    let lines = collect_until(&tailing.lines, |lines| {
        (0..3).all(|i| lines.iter().any(|l| l.contains(&format!("after {i}"))))
    });
    tailing.child.kill().unwrap();
    tailing.child.wait().unwrap();
    assert!(!lines.iter().any(|l| l.contains("before")), "{lines:#?}");
    assert_eq!(lines.len(), 3, "{lines:#?}");
}
