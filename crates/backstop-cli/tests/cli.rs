//! The `backstop` binary on store files written by the real pipeline: what it lists,
//! the JSON it prints, the status changes it makes, and how it refuses bad input.

mod common;

use std::collections::BTreeSet;

use backstop_core::RequestScope;
use common::*;
use serde_json::Value;

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

/// The fields of an issue object, as `docs/cli.md` lists them.
const ISSUE_FIELDS: &[&str] = &[
    "id",
    "kind",
    "category",
    "title",
    "culprit",
    "level",
    "status",
    "regressed",
    "count",
    "users",
    "first_seen",
    "last_seen",
    "first_release",
    "last_release",
    "first_environment",
    "last_environment",
    "fingerprint",
];

fn issue_by_title<'a>(list: &'a Value, prefix: &str) -> &'a Value {
    list["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no issue titled {prefix:?} in {list:#}"))
}

fn is_rfc3339_utc(v: &Value) -> bool {
    v.as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .is_some()
}

#[test]
fn help_names_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for command in [
        "issues", "issue", "routes", "resolve", "ignore", "tail", "--db",
    ] {
        assert!(help.contains(command), "{command} in {help}");
    }
    assert!(run_in(dir.path(), &["tail", "--help"]).status.success());
}

#[test]
fn issues_json_lists_what_the_pipeline_stored() {
    let seeded = seeded();
    let list = json(&seeded.fixture.run(&["issues", "--json"]));
    assert_eq!(keys(&list), set(&["issues", "total"]));
    assert_eq!(list["total"], 3, "{list:#}");
    assert_eq!(list["issues"].as_array().unwrap().len(), 3);

    let checkout = issue_by_title(&list, "ParseIntError");
    assert_eq!(keys(checkout), set(ISSUE_FIELDS));
    assert!(checkout["id"].as_i64().unwrap() > 0);
    assert_eq!(checkout["kind"], "error");
    assert_eq!(checkout["category"], "error");
    assert_eq!(
        checkout["title"],
        "ParseIntError: invalid digit found in string"
    );
    assert_eq!(checkout["level"], "error");
    assert_eq!(checkout["status"], "unresolved");
    assert_eq!(checkout["regressed"], false);
    assert_eq!(checkout["count"], 1);
    assert_eq!(checkout["users"], 1);
    assert_eq!(checkout["first_release"], RELEASE);
    assert_eq!(checkout["last_release"], RELEASE);
    assert_eq!(checkout["first_environment"], ENVIRONMENT);
    assert_eq!(checkout["last_environment"], ENVIRONMENT);
    assert!(is_rfc3339_utc(&checkout["first_seen"]), "{checkout:#}");
    assert!(is_rfc3339_utc(&checkout["last_seen"]));
    assert_eq!(checkout["fingerprint"].as_str().unwrap().len(), 32);
    // The culprit is the request's transaction when no in-app frame is known.
    assert!(checkout["culprit"].is_string());

    let disk = issue_by_title(&list, "disk almost full");
    assert_eq!(disk["kind"], "error");
    assert_eq!(disk["level"], "warning");
    assert_eq!(disk["users"], 0);
    assert_eq!(disk["culprit"], Value::Null);

    let n_plus_one = issue_by_title(&list, N_PLUS_ONE);
    assert_eq!(n_plus_one["kind"], "n_plus_one");
    assert_eq!(n_plus_one["category"], "performance");
    assert_eq!(n_plus_one["culprit"], "GET /users");
    assert_eq!(n_plus_one["level"], "warning");
    assert_eq!(n_plus_one["count"], 3, "one occurrence per request");

    // --limit cuts the list; total still counts every match.
    let one = json(&seeded.fixture.run(&["issues", "--json", "--limit", "1"]));
    assert_eq!(one["issues"].as_array().unwrap().len(), 1);
    assert_eq!(one["total"], 3);
    // --sort events puts the N+1 (3 occurrences) first.
    let by_count = json(
        &seeded
            .fixture
            .run(&["issues", "--json", "--sort", "events"]),
    );
    assert_eq!(by_count["issues"][0]["kind"], "n_plus_one");
}

#[test]
fn issues_prints_aligned_plain_columns_when_piped() {
    let seeded = seeded();
    let out = seeded.fixture.run(&["issues"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\u{1b}'), "no colour when not a terminal");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three issues: {text}");
    let header = lines[0];
    assert!(header.trim_start().starts_with("ID  STATUS"), "{header}");
    let status_at = header.find("STATUS").unwrap();
    let title_at = header.find("TITLE").unwrap();
    for line in &lines[1..] {
        // Each row's status and title start under their headers.
        assert!(
            line[status_at..].starts_with("unresolved"),
            "{line:?} under {header:?}"
        );
        let title = &line[title_at..];
        assert!(
            ["ParseIntError", "disk almost full", "N+1 query: SELECT"]
                .iter()
                .any(|t| title.starts_with(t)),
            "{title:?}"
        );
    }
    // The fixed columns leave 30 of 80 columns for the title.
    assert!(title_at <= 50, "{header}");
}

#[test]
fn issue_json_shows_an_error_with_its_events_and_latest_event() {
    let seeded = seeded();
    let list = json(&seeded.fixture.run(&["issues", "--json"]));
    let id = issue_by_title(&list, "ParseIntError")["id"].to_string();

    let detail = json(&seeded.fixture.run(&["issue", &id, "--json"]));
    assert_eq!(
        keys(&detail),
        set(&[
            "issue",
            "releases",
            "environments",
            "events",
            "latest_event",
            "query_group",
            "occurrences"
        ])
    );
    assert_eq!(detail["issue"], *issue_by_title(&list, "ParseIntError"));
    assert_eq!(detail["releases"], serde_json::json!([RELEASE]));
    assert_eq!(detail["environments"], serde_json::json!([ENVIRONMENT]));
    assert_eq!(detail["occurrences"], serde_json::json!([]));
    assert_eq!(detail["query_group"], Value::Null);

    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        keys(event),
        set(&[
            "event_id",
            "issue_id",
            "timestamp",
            "level",
            "title",
            "culprit",
            "transaction",
            "release",
            "environment",
            "user"
        ])
    );
    assert_eq!(event["event_id"], seeded.checkout_event.to_string());
    assert_eq!(event["issue_id"].to_string(), id);
    assert!(is_rfc3339_utc(&event["timestamp"]));
    assert_eq!(event["level"], "error");
    assert_eq!(
        event["title"],
        "ParseIntError: invalid digit found in string"
    );
    assert_eq!(event["transaction"], "GET /checkout");
    assert_eq!(event["release"], RELEASE);
    assert_eq!(event["environment"], ENVIRONMENT);
    assert_eq!(event["user"], "id:9");

    // The latest event in Sentry's own JSON.
    let latest = &detail["latest_event"];
    assert_eq!(
        latest["event_id"].as_str().unwrap().replace('-', ""),
        seeded.checkout_event.to_string()
    );
    assert_eq!(latest["exception"]["values"][0]["type"], "ParseIntError");
    assert_eq!(latest["transaction"], "GET /checkout");
    assert_eq!(latest["user"]["id"], "9");

    // `#7` names the same issue as `7`.
    let hashed = json(&seeded.fixture.run(&["issue", &format!("#{id}"), "--json"]));
    assert_eq!(hashed["issue"]["id"].to_string(), id);
}

#[test]
fn issue_json_shows_a_performance_issue_with_its_occurrences() {
    let seeded = seeded();
    let list = json(&seeded.fixture.run(&["issues", "--json"]));
    let id = issue_by_title(&list, N_PLUS_ONE)["id"].to_string();

    let detail = json(&seeded.fixture.run(&["issue", &id, "--json"]));
    assert_eq!(detail["issue"]["kind"], "n_plus_one");
    assert_eq!(detail["events"], serde_json::json!([]));
    assert_eq!(detail["latest_event"], Value::Null);
    assert_eq!(detail["query_group"].as_str().unwrap().len(), 16);
    let occurrences = detail["occurrences"].as_array().unwrap();
    assert_eq!(occurrences.len(), 3);
    for o in occurrences {
        assert_eq!(
            keys(o),
            set(&[
                "issue_id",
                "kind",
                "transaction_event_id",
                "trace_id",
                "route",
                "timestamp",
                "description",
                "count",
                "duration_ms",
                "parent_span_id",
                "span_ids",
                "release",
                "environment"
            ])
        );
        assert_eq!(o["issue_id"].to_string(), id);
        assert_eq!(o["kind"], "n_plus_one");
        assert_eq!(o["route"], "GET /users");
        assert_eq!(o["description"], N_PLUS_ONE);
        assert_eq!(o["count"], 6);
        assert_eq!(o["span_ids"].as_array().unwrap().len(), 6);
        assert!(o["duration_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(o["transaction_event_id"].as_str().unwrap().len(), 32);
        assert_eq!(o["trace_id"].as_str().unwrap().len(), 32);
        assert_eq!(o["release"], RELEASE);
        assert_eq!(o["environment"], ENVIRONMENT);
        assert!(is_rfc3339_utc(&o["timestamp"]));
    }
}

#[test]
fn issue_prints_the_header_and_latest_event_for_people() {
    let seeded = seeded();
    let list = json(&seeded.fixture.run(&["issues", "--json"]));
    let id = issue_by_title(&list, "ParseIntError")["id"].to_string();
    let out = seeded.fixture.run(&["issue", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("#{id}")),
        "the id and title lead: {text}"
    );
    assert!(text.contains("ParseIntError: invalid digit found in string"));
    assert!(text.contains("unresolved"));
    assert!(text.contains(&format!("in {RELEASE}")), "{text}");
    assert!(text.contains("1 (1 user affected)"), "{text}");
    assert!(text.contains("Latest event"));
    assert!(text.contains(&seeded.checkout_event.to_string()));
    assert!(text.contains("transaction  GET /checkout"), "{text}");
    assert!(text.contains("user         id 9"), "{text}");

    let perf = issue_by_title(&list, N_PLUS_ONE)["id"].to_string();
    let text = stdout(&seeded.fixture.run(&["issue", &perf]));
    assert!(text.contains(&format!("N+1 query: {N_PLUS_ONE}")), "{text}");
    assert!(text.contains("route"), "{text}");
    assert!(text.contains("GET /users"));
    assert!(text.contains("Recent occurrences"));
}

#[test]
fn routes_json_summarises_requests_per_route() {
    let seeded = seeded();
    let routes = json(&seeded.fixture.run(&["routes", "--json"]));
    assert_eq!(keys(&routes), set(&["since", "routes"]));
    assert_eq!(routes["since"], Value::Null);
    let list = routes["routes"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{routes:#}");
    let route = |name: &str| {
        list.iter()
            .find(|r| r["route"] == name)
            .unwrap_or_else(|| panic!("{name} in {routes:#}"))
    };
    let users = route("GET /users");
    assert_eq!(
        keys(users),
        set(&[
            "route",
            "count",
            "errors",
            "error_rate",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "mean_queries"
        ])
    );
    assert_eq!(users["count"], 3);
    assert_eq!(users["errors"], 0);
    assert_eq!(users["error_rate"], 0.0);
    assert_eq!(users["mean_queries"], 7.0, "one users query and six posts");
    let (p50, p95, p99) = (
        users["p50_ms"].as_f64().unwrap(),
        users["p95_ms"].as_f64().unwrap(),
        users["p99_ms"].as_f64().unwrap(),
    );
    assert!(0.0 <= p50 && p50 <= p95 && p95 <= p99, "{users:#}");
    // Sorted by requests: the three user lists lead.
    assert_eq!(list[0]["route"], "GET /users");

    let checkout = route("GET /checkout");
    assert_eq!(checkout["count"], 1);
    assert_eq!(checkout["errors"], 1);
    assert_eq!(checkout["error_rate"], 1.0);
    assert_eq!(route("GET /")["count"], 2);

    // --since keeps recent requests: all of them in the last day, none in the last
    // millisecond (they were stored before this process started).
    let day = json(&seeded.fixture.run(&["routes", "--json", "--since", "1d"]));
    assert_eq!(day["routes"].as_array().unwrap().len(), 3);
    assert!(is_rfc3339_utc(&day["since"]));
    let none = json(&seeded.fixture.run(&["routes", "--json", "--since", "1ms"]));
    assert_eq!(none["routes"], serde_json::json!([]));

    // --sort errors puts the failing checkout first.
    let by_errors = json(
        &seeded
            .fixture
            .run(&["routes", "--json", "--sort", "errors"]),
    );
    assert_eq!(by_errors["routes"][0]["route"], "GET /checkout");
}

/// At 1% sampling, 2,000 requests to `GET /` show as 2,000: the route table counts
/// every request, not the sampled ones.
#[test]
fn routes_counts_every_request_at_one_percent_sampling() {
    let fixture = common::fixture_sampling(0.01);
    for _ in 0..2_000 {
        RequestScope::http_builder(&fixture.backstop, "GET", Some("/"))
            .op("http.server")
            .start()
            .finish_http(200);
    }
    fixture.flush();
    let routes = json(&fixture.run(&["routes", "--json"]));
    let list = routes["routes"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{routes:#}");
    assert_eq!(list[0]["route"], "GET /");
    assert_eq!(list[0]["count"], 2000);
    let out = fixture.run(&["routes"]);
    assert!(stdout(&out).contains("2000"), "{}", stdout(&out));
}

#[test]
fn routes_prints_a_table_for_people() {
    let seeded = seeded();
    let out = seeded.fixture.run(&["routes", "--since", "7d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].trim_start().starts_with("REQUESTS  ERRORS"),
        "{text}"
    );
    let route_at = lines[0].find("ROUTE").unwrap();
    assert_eq!(&lines[1][route_at..], "GET /users");
    assert!(lines[1].contains("0.0%"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("100.0%") && l.ends_with("GET /checkout"))
    );
    assert!(lines.iter().all(|l| l.len() <= 80), "{text}");

    // Nothing in the window: a note on stderr, nothing on stdout, success.
    let out = seeded.fixture.run(&["routes", "--since", "1ms"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("no requests recorded in the last 1ms"));
}

#[test]
fn resolve_and_ignore_change_what_issues_status_lists() {
    let seeded = seeded();
    let fixture = &seeded.fixture;
    let list = json(&fixture.run(&["issues", "--json"]));
    let checkout = issue_by_title(&list, "ParseIntError")["id"]
        .as_i64()
        .unwrap();
    let disk = issue_by_title(&list, "disk almost full")["id"]
        .as_i64()
        .unwrap();
    let ids = |status: &str| -> Vec<i64> {
        let list = json(&fixture.run(&["issues", "--json", "--status", status]));
        let mut ids: Vec<i64> = list["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                assert_eq!(i["status"], status);
                i["id"].as_i64().unwrap()
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("unresolved").len(), 3);
    assert_eq!(ids("resolved"), Vec::<i64>::new());

    let out = fixture.run(&["resolve", &checkout.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("#{checkout} is now resolved: ParseIntError: invalid digit found in string\n")
    );
    let out = fixture.run(&["ignore", &format!("#{disk}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("#{disk} is now ignored: disk almost full\n")
    );

    assert_eq!(ids("resolved"), vec![checkout]);
    assert_eq!(ids("ignored"), vec![disk]);
    let open = ids("unresolved");
    assert_eq!(open.len(), 1);
    assert!(!open.contains(&checkout) && !open.contains(&disk));

    // Asking again changes nothing and says so.
    let again = fixture.run(&["resolve", &checkout.to_string()]);
    assert!(again.status.success());
    assert!(stdout(&again).starts_with(&format!("#{checkout} was already resolved")));

    // A new event of the resolved issue reopens it as regressed; the ignored one stays
    // ignored.
    fixture.checkout_failure();
    fixture.message("disk almost full");
    fixture.flush();
    assert!(ids("unresolved").contains(&checkout));
    assert_eq!(ids("ignored"), vec![disk]);
    let reopened = json(&fixture.run(&["issue", &checkout.to_string(), "--json"]));
    assert_eq!(reopened["issue"]["regressed"], true);
    assert_eq!(reopened["issue"]["count"], 2);
    let table = stdout(&fixture.run(&["issues", "--status", "unresolved"]));
    assert!(table.contains("regressed"), "{table}");
}

#[test]
fn bad_input_gets_one_line_and_its_own_exit_code() {
    let seeded = seeded();
    let fixture = &seeded.fixture;
    let dir = fixture.dir.path();

    // A missing file is reported and not created, by reads and by writes.
    let missing = dir.join("nowhere.db");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["issues", "--db", m],
        vec!["routes", "--db", m],
        vec!["resolve", "1", "--db", m],
        vec!["tail", "--db", m],
    ] {
        let err = failure(&run_in(dir, &args), 3);
        assert!(
            err.contains("no Backstop store at") && err.contains(m),
            "{err}"
        );
    }
    assert!(!missing.exists(), "never created");
    // With no --db and no BACKSTOP_DB, it looks for ./backstop.db.
    let empty_dir = tempfile::tempdir().unwrap();
    let err = failure(&run_in(empty_dir.path(), &["issues"]), 3);
    assert!(err.contains("backstop.db"), "{err}");
    assert!(!empty_dir.path().join("backstop.db").exists());

    // Not a database at all.
    let text = dir.join("notes.txt");
    std::fs::write(
        &text,
        "these are not the rows you are looking for\n".repeat(200),
    )
    .unwrap();
    let err = failure(&run_in(dir, &["issues", "--db", text.to_str().unwrap()]), 4);
    assert!(err.contains("is not a Backstop database"), "{err}");

    // An SQLite database of another application.
    let other = dir.join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    for args in [vec!["issues"], vec!["resolve", "1"], vec!["tail"]] {
        let mut args = args.clone();
        args.extend(["--db", other.to_str().unwrap()]);
        let err = failure(&run_in(dir, &args), 4);
        assert!(err.contains("is not a Backstop database"), "{err}");
    }
    assert_eq!(std::fs::read(&other).unwrap(), before, "left as it was");

    // An empty file, and a directory.
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    failure(
        &run_in(dir, &["issues", "--db", empty.to_str().unwrap()]),
        4,
    );
    failure(&run_in(dir, &["issues", "--db", dir.to_str().unwrap()]), 4);

    // Unknown ids.
    for command in ["issue", "resolve", "ignore"] {
        let err = failure(&fixture.run(&[command, "999"]), 5);
        assert_eq!(err, "backstop: no issue with id 999\n");
    }

    // Bad values: one line each, saying what was wrong and what is expected.
    let err = failure(&fixture.run(&["issues", "--status", "open"]), 2);
    assert!(
        err.contains("'open'") && err.contains("unresolved, resolved, ignored"),
        "{err}"
    );
    let err = failure(&fixture.run(&["routes", "--since", "yesterday"]), 2);
    assert!(err.contains("\"yesterday\" is not a duration"), "{err}");
    assert!(err.contains("30m, 1h or 7d"), "{err}");
    let err = failure(&fixture.run(&["issue", "seven"]), 2);
    assert!(err.contains("\"seven\" is not an issue id"), "{err}");
    let err = failure(&fixture.run(&["isues"]), 2);
    assert!(err.contains("did you mean issues?"), "{err}");
    failure(&fixture.run(&["issues", "--limit", "0"]), 2);
    failure(&fixture.run(&["tail", "--interval", "0s"]), 2);
}

#[test]
fn backstop_db_names_the_store_and_db_overrides_it() {
    let seeded = seeded();
    let fixture = &seeded.fixture;
    let elsewhere = tempfile::tempdir().unwrap();
    let out = command(elsewhere.path())
        .env("BACKSTOP_DB", &fixture.path)
        .args(["issues", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&out)["total"], 3);

    let out = command(elsewhere.path())
        .env("BACKSTOP_DB", &fixture.path)
        .args(["issues", "--db", "missing.db"])
        .output()
        .unwrap();
    let err = failure(&out, 3);
    assert!(err.contains("missing.db"), "{err}");

    // An empty variable counts as unset.
    let out = command(elsewhere.path())
        .env("BACKSTOP_DB", "")
        .args(["issues"])
        .output()
        .unwrap();
    assert!(failure(&out, 3).contains("backstop.db"));
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn on_an_80_column_terminal_lines_fit_and_levels_are_coloured() {
    let seeded = seeded();
    let fixture = &seeded.fixture;
    fixture.message(&"a message that goes on and on ".repeat(10));
    // Text from a service that would scroll or clear a terminal if written as it is.
    fixture.message("line one\nline two \u{1b}[2J cleared");
    fixture.flush();
    let list = json(&fixture.run(&["issues", "--json"]));
    let checkout = issue_by_title(&list, "ParseIntError")["id"].to_string();

    // A real pseudo-terminal, 80 columns wide, through util-linux's `script`.
    let on_terminal = |args: &str| {
        let command = format!(
            "stty cols 80 rows 50; exec '{}' {args} --db '{}'",
            env!("CARGO_BIN_EXE_backstop"),
            fixture.path.display()
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm-256color")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args}: {}", stderr(&out));
        stdout(&out).replace('\r', "")
    };

    for args in ["issues", "routes", &format!("issue {checkout}")] {
        let raw = on_terminal(args);
        let text = strip_ansi(&raw);
        assert!(!text.trim().is_empty(), "{args}");
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{args}: {} columns: {line:?}",
                line.chars().count()
            );
        }
        assert!(raw.contains("\u{1b}["), "{args}: coloured on a terminal");
    }

    let raw = on_terminal("issues");
    assert!(raw.contains("\u{1b}[31merror"), "errors in red: {raw:?}");
    assert!(
        !raw.contains("\u{1b}[2J"),
        "recorded escapes are not written"
    );
    let text = strip_ansi(&raw);
    assert!(text.contains("line one line two  [2J cleared"), "{text}");
    assert!(text.contains("a message that goes on and on a…"), "{text}");
    assert_eq!(text.lines().count(), 6, "a header and five issues: {text}");
}

#[test]
fn a_reader_that_stops_early_is_not_a_failure() {
    use std::io::Read;
    let fixture = fixture();
    fixture.many_issues(400);
    // Far more output than a pipe holds: the command is still writing when its reader
    // goes away, as with `backstop issues | head -1`.
    for args in [
        &["issues", "--limit", "1000"][..],
        &["issues", "--json", "--limit", "1000"],
    ] {
        let mut child = command(fixture.dir.path())
            .args(args)
            .args(["--db", fixture.path.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn a_store_of_another_schema_version_gets_its_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    for (version, says) in [(99, "newer than this build supports"), (1, "older than")] {
        let path = dir.path().join(format!("v{version}.db"));
        drop(backstop_store::SqliteStore::open(&path).unwrap());
        rusqlite::Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", version)
            .unwrap();
        for command in [&["issues"][..], &["resolve", "1"], &["tail"]] {
            let mut args = command.to_vec();
            args.extend(["--db", path.to_str().unwrap()]);
            let err = failure(&run_in(dir.path(), &args), 6);
            assert!(err.contains(says), "{err}");
        }
    }
}
