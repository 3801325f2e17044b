//! Metric alerts end to end: route metrics written to a real store file, judged on the
//! alerts' thread, delivered to real receivers on 127.0.0.1.

mod common;

use std::time::{Duration, SystemTime};

use backstop_alerts::{Alerts, Channel, Rule};
use backstop_core::RouteMinute;
use backstop_store::{AlertHistory, AlertStatus, SqliteStore};
use common::{Received, Receiver, SECRET, poll};

const FIVE_MINUTES: Duration = Duration::from_secs(300);

struct Running {
    store: SqliteStore,
    history: AlertHistory,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn start(alerts: Alerts) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("backstop.db");
    let store = SqliteStore::open(&db).unwrap();
    let history = store.alert_history();
    let store = alerts
        .evaluate_every(Duration::from_millis(200))
        .watch(store);
    Running {
        store,
        history,
        db,
        _dir: dir,
    }
}

/// Requests of `route` in `environment`: `n` a minute taking `duration`, the first
/// `errors` of them failed. Written to every minute from ten before now to two after,
/// so any window a round reads while the test runs holds the same figures.
fn traffic(
    run: &mut Running,
    route: &str,
    environment: &str,
    n: u64,
    duration: Duration,
    errors: u64,
) {
    let now = SystemTime::now();
    let rows: Vec<RouteMinute> = (0..13u64)
        .map(|i| {
            let minute = now - Duration::from_secs(600) + Duration::from_secs(60 * i);
            let mut row = RouteMinute::new(route, minute).environment(environment);
            for k in 0..n {
                row.record(duration, k < errors, 0);
            }
            row
        })
        .collect();
    run.store.write_metrics(&rows).unwrap();
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn bodies(receiver: &Receiver, path: &str, n: usize) -> Vec<serde_json::Value> {
    receiver
        .wait_for(path, n)
        .iter()
        .map(Received::json)
        .collect()
}

#[test]
fn a_slow_route_fires_a_latency_alert_and_resolves_when_back_to_normal() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(
            Channel::pagerduty("R0123456789abcdef")
                .unwrap()
                .pagerduty_endpoint(&receiver.url("/pd"))
                .unwrap(),
        )
        .notify(Channel::slack(&receiver.url("/slack")).unwrap())
        .notify(Channel::discord(&receiver.url("/discord")).unwrap())
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .dashboard_url("https://app.example.com/_backstop")
        .rule(Rule::latency(ms(500), FIVE_MINUTES));
    let mut run = start(alerts);
    traffic(&mut run, "GET /fast", "production", 20, ms(20), 0);
    traffic(&mut run, "GET /slow", "production", 20, ms(800), 0);

    let trigger = bodies(&receiver, "/pd", 1).remove(0);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "backstop-rule-latency:GET /slow");
    assert_eq!(trigger["payload"]["component"], "GET /slow");
    assert_eq!(trigger["payload"]["severity"], "warning");
    assert_eq!(trigger["payload"]["custom_details"]["Threshold"], "500 ms");

    // The value against its threshold, in a chat message and in the webhook's JSON.
    let slack = bodies(&receiver, "/slack", 1).remove(0);
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("p95 "), "{text}");
    assert!(
        text.ends_with(" ms, over 500 ms for 5m: GET /slow"),
        "{text}"
    );
    let fields = slack["blocks"][1]["fields"].to_string();
    assert!(
        fields.contains("*Threshold*\\n500 ms") && fields.contains("*Requests*\\n100"),
        "{fields}"
    );
    let discord = bodies(&receiver, "/discord", 1).remove(0);
    assert_eq!(discord["embeds"][0]["title"], "GET /slow");
    let hook = bodies(&receiver, "/hook", 1).remove(0);
    assert_eq!(hook["type"], "alert.trigger");
    let data = &hook["data"];
    assert_eq!(data["rule"], "latency");
    assert_eq!(data["trigger"], "latency");
    assert_eq!(data["issue"], serde_json::Value::Null);
    assert_eq!(
        data["url"],
        "https://app.example.com/_backstop/performance/route?name=GET+%2Fslow"
    );
    let metric = &data["metric"];
    assert_eq!(metric["metric"], "p95");
    assert_eq!(metric["route"], "GET /slow");
    assert_eq!(metric["unit"], "ms");
    assert_eq!(metric["threshold"], 500.0);
    let value = metric["value"].as_f64().unwrap();
    assert!((784.0..=816.0).contains(&value), "{value}");
    assert_eq!(metric["window_secs"], 300);
    assert_eq!(metric["requests"], 100);

    // Back to normal: so many fast requests that the p95 is theirs.
    traffic(&mut run, "GET /slow", "production", 2000, ms(20), 0);
    let events = bodies(&receiver, "/pd", 2);
    assert_eq!(
        events.len(),
        2,
        "one trigger, then its resolve: {events:#?}"
    );
    assert_eq!(events[1]["event_action"], "resolve");
    assert_eq!(events[1]["dedup_key"], events[0]["dedup_key"]);
    let hooks = bodies(&receiver, "/hook", 2);
    assert_eq!(hooks[1]["type"], "alert.resolve");
    assert_eq!(hooks[1]["data"]["action"], "resolve");
    assert_eq!(
        hooks[1]["data"]["what"],
        "Resolved: p95 20 ms, back under 500 ms"
    );

    // Every one recorded: four channels, a trigger and a resolve each.
    let sent = poll(Duration::from_secs(60), || {
        let rows = run.history.history(100, None).unwrap();
        (rows.len() >= 8).then_some(rows)
    })
    .expect("eight alerts in the history");
    assert!(sent.iter().all(|r| r.alert.status == AlertStatus::Sent
        && r.alert.rule == "latency"
        && r.alert.issue.is_none()));
    assert!(
        sent.iter()
            .any(|r| r.alert.title.starts_with("Resolved: p95 20 ms")),
        "{sent:#?}"
    );
}

#[test]
fn error_rate_fires_for_a_route_and_for_the_whole_service() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .rule(Rule::error_rate(0.10, FIVE_MINUTES))
        .rule(Rule::service_error_rate(0.05, FIVE_MINUTES).named("service"));
    let mut run = start(alerts);
    // 8% on two routes (under the route's 10%), 20% on a third: 10.4% in all.
    traffic(&mut run, "GET /a", "production", 100, ms(10), 8);
    traffic(&mut run, "GET /b", "production", 100, ms(10), 8);
    traffic(&mut run, "GET /c", "production", 50, ms(10), 10);
    let got = bodies(&receiver, "/hook", 2);
    let mut fired: Vec<(String, serde_json::Value)> = got
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "alert.trigger");
            (
                b["data"]["rule"].as_str().unwrap().to_owned(),
                b["data"]["metric"]["route"].clone(),
            )
        })
        .collect();
    fired.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        fired,
        [
            ("error-rate".to_owned(), serde_json::json!("GET /c")),
            ("service".to_owned(), serde_json::Value::Null),
        ]
    );
    let service = got.iter().find(|b| b["data"]["rule"] == "service").unwrap();
    let metric = &service["data"]["metric"];
    assert_eq!(metric["unit"], "fraction");
    assert_eq!(metric["requests"], 250 * 5);
    assert_eq!(metric["errors"], 26 * 5);
    assert!((metric["value"].as_f64().unwrap() - 0.104).abs() < 1e-9);
    assert_eq!(metric["threshold"], 0.05);
    assert_eq!(
        service["data"]["what"],
        "Error rate 10.4%, over 5.0% for 5m"
    );

    // Healthy traffic on /c brings both under their thresholds: 26 in 750.
    traffic(&mut run, "GET /c", "production", 500, ms(10), 0);
    let got = bodies(&receiver, "/hook", 4);
    assert_eq!(got.len(), 4, "{got:#?}");
    let mut resolved: Vec<&str> = got[2..]
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "alert.resolve");
            b["data"]["rule"].as_str().unwrap()
        })
        .collect();
    resolved.sort();
    assert_eq!(resolved, ["error-rate", "service"]);
}

#[test]
fn metric_rules_take_their_environment_and_routes_and_need_enough_requests() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .rule(
            Rule::latency(ms(500), FIVE_MINUTES)
                .named("staging")
                .environment("staging"),
        )
        .rule(
            Rule::latency(ms(500), FIVE_MINUTES)
                .named("api")
                .route("/api/*"),
        )
        .rule(
            Rule::latency(ms(500), FIVE_MINUTES)
                .named("busy")
                .min_requests(1000),
        )
        .rule(
            Rule::latency(ms(500), FIVE_MINUTES)
                .named("rare")
                .route("GET /rare"),
        );
    let mut run = start(alerts);
    traffic(&mut run, "GET /slow", "production", 20, ms(800), 0);
    traffic(&mut run, "/api/rates", "production", 20, ms(800), 0);
    traffic(&mut run, "GET /slow", "staging", 20, ms(800), 0);
    // One request a minute: 5 in the window, under the 10 a rule needs by default.
    traffic(&mut run, "GET /rare", "production", 1, ms(800), 0);
    let got = bodies(&receiver, "/hook", 2);
    let mut fired: Vec<(&str, &str, serde_json::Value)> = got
        .iter()
        .map(|b| {
            let m = &b["data"]["metric"];
            (
                b["data"]["rule"].as_str().unwrap(),
                m["route"].as_str().unwrap(),
                m["environment"].clone(),
            )
        })
        .collect();
    fired.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        fired,
        [
            ("api", "/api/rates", serde_json::Value::Null),
            ("staging", "GET /slow", serde_json::json!("staging")),
        ]
    );

    // Two more a minute: 15 in the window, enough to judge.
    traffic(&mut run, "GET /rare", "production", 2, ms(800), 0);
    let got = bodies(&receiver, "/hook", 3);
    assert_eq!(got.len(), 3, "nothing else fired: {got:#?}");
    assert_eq!(got[2]["data"]["rule"], "rare");
    assert_eq!(got[2]["data"]["metric"]["requests"], 15);
}

#[test]
fn odd_thresholds_and_windows_neither_panic_nor_fire_wrongly() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .rule(Rule::latency(ms(500), Duration::MAX).named("forever"))
        .rule(Rule::error_rate(f64::NAN, FIVE_MINUTES).named("nan"))
        .rule(Rule::service_error_rate(1.0, Duration::ZERO).named("all-failed"));
    let mut run = start(alerts);
    traffic(&mut run, "GET /slow", "production", 20, ms(800), 20);
    let got = bodies(&receiver, "/hook", 1);
    assert_eq!(got[0]["data"]["rule"], "forever");
    // A window of all time is read whole; a zero window is one minute.
    assert!(got[0]["data"]["metric"]["requests"].as_u64().unwrap() >= 20 * 10);
    traffic(&mut run, "GET /slow", "production", 2000, ms(20), 0);
    let got = bodies(&receiver, "/hook", 2);
    assert_eq!(
        got.len(),
        2,
        "only `forever` fired, then resolved: {got:#?}"
    );
    assert_eq!(got[1]["type"], "alert.resolve");
    assert_eq!(got[1]["data"]["rule"], "forever");
}

#[test]
fn a_route_that_stops_getting_requests_resolves() {
    let receiver = Receiver::start();
    let alerts = Alerts::new()
        .notify(
            Channel::pagerduty("R0123")
                .unwrap()
                .pagerduty_endpoint(&receiver.url("/pd"))
                .unwrap(),
        )
        .notify(Channel::webhook(&receiver.url("/hook"), SECRET).unwrap())
        .rule(Rule::error_rate(0.5, FIVE_MINUTES).environment("production"));
    let mut run = start(alerts);
    traffic(&mut run, "GET /flaky", "production", 10, ms(5), 9);
    let trigger = bodies(&receiver, "/pd", 1).remove(0);
    assert_eq!(
        trigger["dedup_key"],
        "backstop-rule-error-rate@production:GET /flaky"
    );
    assert_eq!(trigger["payload"]["severity"], "error");
    assert_eq!(trigger["payload"]["source"], "production");
    // The route is gone from the window: nothing is left over the threshold.
    rusqlite::Connection::open(&run.db)
        .unwrap()
        .execute("DELETE FROM route_metrics WHERE name = 'GET /flaky'", [])
        .unwrap();
    let events = bodies(&receiver, "/pd", 2);
    assert_eq!(events[1]["event_action"], "resolve");
    assert_eq!(events[1]["dedup_key"], trigger["dedup_key"]);
    let hooks = bodies(&receiver, "/hook", 2);
    assert_eq!(
        hooks[1]["data"]["what"],
        "Resolved: 0 requests in 5m, too few to judge"
    );
    assert_eq!(hooks[1]["data"]["metric"]["route"], "GET /flaky");
}
