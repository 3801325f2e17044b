//! Alerts end to end: the real store on a temp file, the real pipeline, and real
//! receivers on 127.0.0.1 (HTTP servers, aiosmtpd).

mod common;

use std::time::{Duration, Instant};

use backstop_alerts::{Alerts, Channel, Email, RetryPolicy, Rule};
use backstop_core::{BackstopGuard, Event, Level, Options, User};
use backstop_store::{AlertHistory, AlertRecord, AlertStatus, SqliteStore};
use common::{Answer, Receiver, SECRET, Smtp, dead_port, poll};

struct Running {
    backstop: BackstopGuard,
    history: AlertHistory,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn start(alerts: Alerts) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let store = SqliteStore::open(&db).unwrap();
    let history = store.alert_history();
    let store = alerts.watch(store);
    let backstop = backstop_core::test::start(
        Options::new()
            .environment("production")
            .sink(store)
            .console(false),
    )
    .unwrap();
    Running {
        backstop,
        history,
        db,
        _dir: dir,
    }
}

fn event(message: &str, level: Level) -> Event {
    let mut event = Event::new(level);
    event.message = Some(message.into());
    event
}

fn quick_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        backoff: Duration::from_millis(50),
        max_delay: Duration::from_secs(2),
    }
}

/// Waits until the history holds `n` rows matching `keep`.
fn wait_history(
    history: &AlertHistory,
    n: usize,
    keep: impl Fn(&AlertRecord) -> bool,
) -> Vec<AlertRecord> {
    poll(Duration::from_secs(60), || {
        let rows: Vec<_> = history
            .history(1000, None)
            .unwrap()
            .into_iter()
            .filter(|r| keep(r))
            .collect();
        (rows.len() >= n).then_some(rows)
    })
    .unwrap_or_else(|| panic!("history: {:#?}", history.history(1000, None).unwrap()))
}

#[test]
fn a_new_issue_reaches_slack_discord_pagerduty_and_a_signed_webhook() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(Channel::slack(&receiver.url("/slack")).unwrap())
        .notify(Channel::discord(&receiver.url("/discord")).unwrap())
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .notify(
            Channel::pagerduty("R0123456789abcdef")
                .unwrap()
                .pagerduty_endpoint(&receiver.url("/pd"))
                .unwrap(),
        )
        .dashboard_url("https://app.example.com/_backstop/")
        .rule(Rule::new_issue());
    let run = start(alerts);
    run.backstop
        .capture_event(event("payment <failed> for A&B @everyone", Level::Error));
    assert!(run.backstop.flush(Duration::from_secs(10)));

    let slack = receiver.wait_for("/slack", 1)[0].json();
    let text = slack["text"].as_str().unwrap();
    assert_eq!(
        text,
        "New issue: payment &lt;failed&gt; for A&amp;B @everyone"
    );
    let heading = slack["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(
        heading.starts_with("*<https://app.example.com/_backstop/issues/1|New issue"),
        "{heading}"
    );
    let fields = slack["blocks"][1]["fields"].to_string();
    assert!(
        fields.contains("*Rule*\\nnew-issue") && fields.contains("*Environment*\\nproduction"),
        "{fields}"
    );

    let discord = receiver.wait_for("/discord", 1)[0].json();
    assert_eq!(
        discord["content"],
        "New issue: payment <failed> for A&B @everyone"
    );
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    let embed = &discord["embeds"][0];
    assert_eq!(embed["title"], "payment <failed> for A&B @everyone");
    assert_eq!(embed["url"], "https://app.example.com/_backstop/issues/1");
    assert!(
        embed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Events" && f["value"] == "1")
    );

    let pd = receiver.wait_for("/pd", 1)[0].json();
    assert_eq!(pd["routing_key"], "R0123456789abcdef");
    assert_eq!(pd["event_action"], "trigger");
    assert!(pd["dedup_key"].as_str().unwrap().starts_with("backstop-"));
    assert_eq!(pd["payload"]["severity"], "error");
    assert_eq!(pd["payload"]["source"], "production");
    assert_eq!(
        pd["links"][0]["href"],
        "https://app.example.com/_backstop/issues/1"
    );

    let hook = receiver.wait_for("/hook", 1).remove(0);
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, hook.headers[name].parse().unwrap());
    }
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&hook.body, &headers)
        .expect("the signature verifies");
    let body = hook.json();
    assert_eq!(body["type"], "alert.trigger");
    assert_eq!(body["data"]["trigger"], "new_issue");
    assert_eq!(
        body["data"]["issue"]["title"],
        "payment <failed> for A&B @everyone"
    );
    assert_eq!(body["data"]["issue"]["count"], 1);
    assert_eq!(body["data"]["issue"]["environment"], "production");
    assert_eq!(
        body["data"]["url"],
        "https://app.example.com/_backstop/issues/1"
    );
    assert_eq!(body["data"]["id"], hook.headers["webhook-id"]);

    let sent = wait_history(&run.history, 4, |r| r.alert.status == AlertStatus::Sent);
    let mut channels: Vec<_> = sent
        .iter()
        .map(|r| r.alert.channel.clone().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, ["discord", "pagerduty", "slack", "webhook"]);
    assert!(
        sent.iter()
            .all(|r| r.alert.rule == "new-issue" && r.alert.attempts == 1)
    );
}

#[test]
fn an_email_with_text_and_html_parts_reaches_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let email = Email::new(
        "ops@example.com",
        "Backstop <alerts@example.com>",
        &smtp.url(),
    )
    .unwrap();
    let run = start(
        Alerts::new()
            .notify(Channel::email(email))
            .dashboard_url("https://app.example.com/_backstop"),
    );
    run.backstop
        .capture_event(event("checkout <crashed>", Level::Fatal));
    let mail = smtp.wait_for(1).remove(0);
    assert!(mail.contains("To: ops@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: [Backstop] New issue: checkout <crashed>"),
        "{mail}"
    );
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(mail.contains("Content-Type: text/plain"), "{mail}");
    assert!(mail.contains("Content-Type: text/html"), "{mail}");
    assert!(mail.contains("Rule: new-issue"), "{mail}");
    assert!(
        mail.contains("<h2>New issue: checkout &lt;crashed&gt;</h2>"),
        "{mail}"
    );
    assert!(
        mail.contains("https://app.example.com/_backstop/issues/1"),
        "{mail}"
    );
    wait_history(&run.history, 1, |r| {
        r.alert.status == AlertStatus::Sent && r.alert.channel.as_deref() == Some("email")
    });
}

#[test]
fn failing_receivers_get_their_retries_then_a_recorded_failure_without_slowing_the_worker() {
    let receiver = Receiver::start();
    receiver.answer("/500", Answer::status(500));
    receiver.answer("/429", Answer::status(429).header("retry-after", "1"));
    receiver.answer("/slow", Answer::status(200).delay(Duration::from_secs(3)));
    receiver.answer("/gone", Answer::status(410));
    let dead = format!("http://127.0.0.1:{}/hook", dead_port());
    let alerts = Alerts::new()
        .notify(
            Channel::slack(&receiver.url("/500"))
                .unwrap()
                .rename("five-hundred"),
        )
        .notify(
            Channel::slack(&receiver.url("/429"))
                .unwrap()
                .rename("too-many"),
        )
        .notify(
            Channel::discord(&receiver.url("/slow"))
                .unwrap()
                .rename("slow"),
        )
        .notify(Channel::webhook(&dead, SECRET).unwrap().rename("dead"))
        .notify(
            Channel::slack(&receiver.url("/gone"))
                .unwrap()
                .rename("gone"),
        )
        .retry(quick_retries(3))
        .timeout(Duration::from_secs(1))
        .rule(Rule::new_issue().interval(Duration::ZERO));
    let run = start(alerts);

    // Two issues: the second alert finds the 410 channel stopped.
    run.backstop.capture_event(event("first", Level::Error));
    assert!(run.backstop.flush(Duration::from_secs(10)));
    // The worker goes on at full speed while every channel is failing.
    let started = Instant::now();
    for i in 0..300 {
        run.backstop
            .capture_event(event(["alpha", "beta", "gamma"][i % 3], Level::Error));
    }
    assert!(run.backstop.flush(Duration::from_secs(30)));
    let busy = started.elapsed();
    assert!(busy < Duration::from_secs(20), "the worker took {busy:?}");

    let failed = wait_history(&run.history, 4 * 4 + 4, |r| {
        r.alert.status == AlertStatus::Failed
    });
    let of = |name: &str| -> Vec<&AlertRecord> {
        failed
            .iter()
            .filter(|r| r.alert.channel.as_deref() == Some(name))
            .collect()
    };
    for name in ["five-hundred", "too-many", "slow", "dead"] {
        let rows = of(name);
        assert!(rows.len() >= 4, "{name}: {rows:#?}");
        assert!(
            rows.iter().all(|r| r.alert.attempts == 3),
            "{name}: {rows:#?}"
        );
    }
    assert_eq!(
        of("five-hundred")[0].alert.error.as_deref(),
        Some("HTTP 500")
    );
    assert_eq!(of("too-many")[0].alert.error.as_deref(), Some("HTTP 429"));
    assert_eq!(of("slow")[0].alert.error.as_deref(), Some("timed out"));
    // 4 issues x 3 attempts; the 429 waited its Retry-After between attempts.
    assert_eq!(receiver.received("/500").len(), 12);
    let gone = of("gone");
    assert_eq!(
        receiver.received("/gone").len(),
        1,
        "a 410 stops the channel"
    );
    assert!(
        gone.iter()
            .any(|r| r.alert.attempts == 1 && r.alert.error.as_deref() == Some("HTTP 410 Gone"))
    );
    assert!(
        gone.iter().filter(|r| r.alert.attempts == 0).count() >= 3,
        "{gone:#?}"
    );
    // Nothing of the URLs (which hold secrets) is in an error.
    assert!(
        failed
            .iter()
            .all(|r| !r.alert.error.as_deref().unwrap_or("").contains("127.0.0.1"))
    );
}

#[test]
fn a_hundred_events_of_one_issue_send_one_new_issue_alert_and_one_frequency_alert() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(Channel::slack(&receiver.url("/slack")).unwrap())
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .rule(Rule::new_issue())
        .rule(Rule::frequency(10, Duration::from_secs(60)));
    let run = start(alerts);
    for _ in 0..100 {
        run.backstop
            .capture_event(event("worker panicked", Level::Fatal));
    }
    assert!(run.backstop.flush(Duration::from_secs(30)));
    wait_history(&run.history, 4, |r| r.alert.status == AlertStatus::Sent);
    let suppressed = wait_history(&run.history, 1, |r| {
        r.alert.status == AlertStatus::Suppressed
    });
    assert_eq!(
        suppressed.len(),
        1,
        "one suppressed row per interval: {suppressed:#?}"
    );
    assert_eq!(suppressed[0].alert.rule, "frequency");
    for path in ["/slack", "/hook"] {
        let got = receiver.received(path);
        assert_eq!(got.len(), 2, "{path}: {got:#?}");
    }
    let triggers: Vec<_> = receiver
        .received("/hook")
        .iter()
        .map(|r| r.json()["data"]["trigger"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(triggers, ["new_issue", "frequency"]);
}

#[test]
fn a_resolved_issue_seen_again_alerts_as_a_regression() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .rule(Rule::regression());
    let run = start(alerts);
    run.backstop
        .capture_event(event("flaky upstream", Level::Error));
    assert!(run.backstop.flush(Duration::from_secs(10)));
    let conn = rusqlite::Connection::open(&run.db).unwrap();
    conn.execute(
        "UPDATE issues SET status = 'resolved', status_changed = 0",
        [],
    )
    .unwrap();
    run.backstop
        .capture_event(event("flaky upstream", Level::Error));
    assert!(run.backstop.flush(Duration::from_secs(10)));
    let got = receiver.wait_for("/hook", 1);
    let body = got[0].json();
    assert_eq!(body["data"]["trigger"], "regression");
    assert_eq!(body["data"]["issue"]["count"], 2);
    run.backstop
        .capture_event(event("flaky upstream", Level::Error));
    assert!(run.backstop.flush(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        receiver.received("/hook").len(),
        1,
        "an unresolved issue does not regress"
    );
}

#[test]
fn users_rule_and_filters() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .rule(Rule::users(2, Duration::from_secs(60)).named("three-users"))
        .rule(Rule::new_issue().environment("staging"))
        .rule(
            Rule::new_issue()
                .named("fatal-only")
                .min_level(Level::Fatal),
        )
        .rule(Rule::new_issue().named("api-only").route("/api/*"));
    let run = start(alerts);
    let with_user = |id: &str| {
        let mut e = event("login failed", Level::Error);
        e.user = Some(User {
            id: Some(id.into()),
            ..Default::default()
        });
        e.transaction = Some("/login".into());
        e
    };
    for id in ["a", "b", "a", "b"] {
        run.backstop.capture_event(with_user(id));
    }
    assert!(run.backstop.flush(Duration::from_secs(10)));
    let mut api = event("rates down", Level::Error);
    api.transaction = Some("/api/rates".into());
    run.backstop.capture_event(api);
    run.backstop.capture_event(with_user("c"));
    assert!(run.backstop.flush(Duration::from_secs(10)));
    let got = receiver.wait_for("/hook", 2);
    std::thread::sleep(Duration::from_millis(300));
    let mut rules: Vec<String> = receiver
        .received("/hook")
        .iter()
        .map(|r| r.json()["data"]["rule"].as_str().unwrap().to_owned())
        .collect();
    rules.sort();
    assert_eq!(rules, ["api-only", "three-users"], "{got:#?}");
}

#[test]
fn a_test_notification_goes_to_the_channel_asked_for() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("backstop.db")).unwrap();
    let history = store.alert_history();
    let alerts = Alerts::new()
        .notify(Channel::slack(&receiver.url("/slack")).unwrap())
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap());
    let results = alerts.send_test(Some("webhook"), Some(&history)).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].channel, "webhook");
    assert_eq!(results[0].error, None);
    assert_eq!(receiver.received("/hook")[0].json()["type"], "alert.test");
    assert!(receiver.received("/slack").is_empty());
    let rows = history.history(10, None).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].alert.rule, "test");
    let err = alerts.send_test(Some("sms"), None).unwrap_err();
    // PagerDuty: a test triggers and resolves one incident, so nobody stays paged.
    let pd = Alerts::new().notify(
        Channel::pagerduty("R0123")
            .unwrap()
            .pagerduty_endpoint(&receiver.url("/pd"))
            .unwrap(),
    );
    assert_eq!(pd.send_test(None, None).unwrap()[0].error, None);
    let events: Vec<_> = receiver.received("/pd").iter().map(|r| r.json()).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_action"], "trigger");
    assert_eq!(events[1]["event_action"], "resolve");
    assert_eq!(events[0]["dedup_key"], events[1]["dedup_key"]);
    assert_eq!(events[1]["routing_key"], "R0123");
    assert_eq!(
        err.to_string(),
        "no alert channel named \"sms\" (configured: slack, webhook)"
    );
}

#[test]
fn a_redirect_to_another_host_is_not_followed() {
    let receiver = Receiver::start();
    let other = Receiver::start();
    receiver.answer(
        "/moved",
        Answer::status(307).header("location", &other.url("/x")),
    );
    receiver.answer("/here", Answer::status(308).header("location", "/slack"));
    let alerts = Alerts::new()
        .notify(
            Channel::slack(&receiver.url("/moved"))
                .unwrap()
                .rename("moved"),
        )
        .notify(
            Channel::slack(&receiver.url("/here"))
                .unwrap()
                .rename("here"),
        );
    let results = alerts.send_test(None, None).unwrap();
    assert_eq!(
        results[0].error.as_deref(),
        Some("HTTP 307: a redirect to another host, not followed")
    );
    assert_eq!(results[1].error, None);
    assert!(other.received("/x").is_empty());
    assert_eq!(receiver.received("/slack").len(), 1);
}
