//! Configuration is checked at init with errors that name the setting; PII is scrubbed
//! by default and kept only when asked.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use backstop_core::protocol::Request;
use backstop_core::{InitError, Options, RequestScope, User, test::TestSink};

fn env(vars: &[(&str, &str)]) -> Options {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    Options::from_env_with(move |name| vars.get(name).cloned())
}

fn setting_of(options: Options) -> &'static str {
    match backstop_core::test::start(options) {
        Err(e @ InitError::InvalidSetting { .. }) => {
            let setting = e.setting().unwrap();
            assert!(
                e.to_string().contains(setting),
                "the message names the setting: {e}"
            );
            setting
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("accepted a bad value"),
    }
}

#[test]
fn bad_values_are_typed_errors_naming_the_setting() {
    assert_eq!(setting_of(Options::new().dsn("not a url")), "dsn");
    assert_eq!(
        setting_of(Options::new().dsn("https://sentry.example.com/1")),
        "dsn"
    );
    assert_eq!(
        setting_of(Options::new().dsn("ftp://key@sentry.example.com/1")),
        "dsn"
    );
    assert_eq!(
        setting_of(Options::new().dsn("https://key@sentry.example.com/")),
        "dsn"
    );
    assert_eq!(
        setting_of(Options::new().dsn("https://key@sentry.example.com/abc")),
        "dsn"
    );
    assert_eq!(
        setting_of(Options::new().trace_propagation_targets(["api.example", "(unclosed"])),
        "trace_propagation_targets"
    );
    assert_eq!(setting_of(Options::new().sample_rate(1.5)), "sample_rate");
    assert_eq!(
        setting_of(Options::new().sample_rate(f64::NAN)),
        "sample_rate"
    );
    assert_eq!(
        setting_of(Options::new().traces_sample_rate(-0.1)),
        "traces_sample_rate"
    );
    assert_eq!(
        setting_of(Options::new().queue_capacity(0)),
        "queue_capacity"
    );
    assert_eq!(setting_of(Options::new().environment("  ")), "environment");
    assert_eq!(
        setting_of(Options::new().ignore_status(42)),
        "ignore_status"
    );
    assert_eq!(
        setting_of(env(&[("BACKSTOP_TRACES_SAMPLE_RATE", "lots")])),
        "traces_sample_rate"
    );
    assert_eq!(
        setting_of(env(&[("BACKSTOP_SEND_DEFAULT_PII", "maybe")])),
        "send_default_pii"
    );
    assert_eq!(setting_of(env(&[("SENTRY_DSN", "nope")])), "dsn");
}

#[test]
fn environment_variables_and_their_fallbacks() {
    let backstop = backstop_core::test::start(env(&[
        ("SENTRY_DSN", "https://public@sentry.example.com/42"),
        ("SENTRY_ENVIRONMENT", "staging"),
        ("BACKSTOP_RELEASE", "shop@3"),
        ("SENTRY_RELEASE", "ignored@1"),
        ("BACKSTOP_TRACES_SAMPLE_RATE", "0.25"),
    ]))
    .unwrap();
    assert_eq!(backstop.environment(), "staging");
    assert_eq!(
        backstop.release(),
        Some("shop@3"),
        "BACKSTOP_ wins over SENTRY_"
    );
    let dsn = backstop.dsn().unwrap();
    assert_eq!(dsn.public_key(), "public");
    assert_eq!(dsn.project_id(), "42");
    assert_eq!(
        dsn.envelope_url(),
        "https://sentry.example.com/api/42/envelope/"
    );
    assert!(
        !format!("{dsn:?}").contains("public"),
        "Debug hides the key"
    );

    let backstop = backstop_core::test::start(env(&[
        ("BACKSTOP_DSN", "http://k@localhost:9000/sub/path/7"),
        ("SENTRY_DSN", "x"),
    ]))
    .unwrap();
    assert_eq!(
        backstop.dsn().unwrap().envelope_url(),
        "http://localhost:9000/sub/path/api/7/envelope/"
    );

    // Empty variables count as unset; the environment defaults by build profile.
    let backstop =
        backstop_core::test::start(env(&[("BACKSTOP_DSN", ""), ("BACKSTOP_ENVIRONMENT", "")]))
            .unwrap();
    assert!(backstop.dsn().is_none());
    let expected = if cfg!(debug_assertions) {
        "development"
    } else {
        "production"
    };
    assert_eq!(backstop.environment(), expected);
    assert!(!backstop.send_default_pii(), "PII is off by default");
}

fn request() -> Request {
    let mut headers = BTreeMap::new();
    for (k, v) in [
        ("authorization", "Bearer abc"),
        ("proxy-authorization", "Basic xyz"),
        ("cookie", "session=s3cr3t"),
        ("set-cookie", "id=1"),
        ("x-api-key", "k"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
        ("x-auth-token", "t"),
        ("user-agent", "curl/8"),
    ] {
        headers.insert(k.to_owned(), v.to_owned());
    }
    let mut env = BTreeMap::new();
    env.insert("REMOTE_ADDR".to_owned(), "203.0.113.9".to_owned());
    Request {
        url: Some("https://shop.test/login?next=/cart&token=abc".into()),
        method: Some("POST".into()),
        query_string: Some("next=/cart&token=abc&page=2".into()),
        data: Some(
            r#"{"user":"ann","password":"hunter2","nested":{"csrf_token":"c","keep":1}}"#.into(),
        ),
        cookies: Some("session=s3cr3t".into()),
        headers,
        env,
    }
}

fn capture_with_pii(send_default_pii: bool) -> (backstop_core::Event, backstop_core::Transaction) {
    let sink = TestSink::new();
    let backstop = backstop_core::test::start(
        Options::new()
            .send_default_pii(send_default_pii)
            .traces_sample_rate(1.0)
            .scrub_key("pin")
            .sink(sink.clone()),
    )
    .unwrap();
    let scope = RequestScope::builder(&backstop, "POST /login")
        .request(request())
        .start();
    scope.run(|| {
        backstop_core::set_user(Some(User::with_id("7").email("ann@example.com")));
        backstop_core::configure_scope(|s| {
            if let Some(user) = s.user().cloned() {
                let mut user = user;
                user.ip_address = Some("203.0.113.9".into());
                s.set_user(Some(user));
            }
        });
        backstop_core::set_extra("card_pin", "1234");
        backstop_core::set_context("payment", serde_json::json!({"api_key": "k", "amount": 5}));
        backstop_core::add_breadcrumb(
            backstop_core::Breadcrumb::new("auth", "login").data("password", "x"),
        );
        backstop_core::capture_message("login failed", backstop_core::Level::Warning);
    });
    scope.finish_http(401);
    assert!(backstop.flush(Duration::from_secs(5)));
    (
        sink.events().pop().unwrap(),
        sink.transactions().pop().unwrap(),
    )
}

#[test]
fn pii_is_scrubbed_by_default_everywhere_it_can_appear() {
    let (event, transaction) = capture_with_pii(false);
    let req = event.request.as_ref().unwrap();
    for name in [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-forwarded-for",
        "x-real-ip",
        "x-auth-token",
    ] {
        assert_eq!(req.headers[name], "[Filtered]", "{name}");
    }
    assert_eq!(req.headers["user-agent"], "curl/8");
    assert_eq!(
        req.query_string.as_deref(),
        Some("next=/cart&token=[Filtered]&page=2")
    );
    assert_eq!(
        req.url.as_deref(),
        Some("https://shop.test/login?next=/cart&token=[Filtered]")
    );
    let body: serde_json::Value = serde_json::from_str(req.data.as_deref().unwrap()).unwrap();
    assert_eq!(body["user"], "ann");
    assert_eq!(body["password"], "[Filtered]");
    assert_eq!(body["nested"]["csrf_token"], "[Filtered]");
    assert_eq!(body["nested"]["keep"], 1);
    assert_eq!(req.cookies, None);
    assert!(!req.env.contains_key("REMOTE_ADDR"));
    let user = event.user.as_ref().unwrap();
    assert_eq!(user.id.as_deref(), Some("7"));
    assert_eq!(user.email, None);
    assert_eq!(user.ip_address, None);
    assert_eq!(event.extra["card_pin"], "[Filtered]", "extended key list");
    assert_eq!(event.contexts["payment"]["api_key"], "[Filtered]");
    assert_eq!(event.contexts["payment"]["amount"], 5);
    assert_eq!(event.breadcrumbs.values[0].data["password"], "[Filtered]");
    // Transactions are scrubbed the same way.
    let treq = transaction.request.as_ref().unwrap();
    assert_eq!(treq.headers["authorization"], "[Filtered]");
    assert_eq!(transaction.user.as_ref().unwrap().email, None);
    // Nothing secret survives anywhere in the serialized records.
    let json =
        serde_json::to_string(&event).unwrap() + &serde_json::to_string(&transaction).unwrap();
    for secret in [
        "hunter2",
        "s3cr3t",
        "Bearer abc",
        "203.0.113.9",
        "ann@example.com",
        "1234",
    ] {
        assert!(!json.contains(secret), "{secret} leaked");
    }
}

#[test]
fn send_default_pii_keeps_it() {
    let (event, _) = capture_with_pii(true);
    let req = event.request.as_ref().unwrap();
    assert_eq!(req.headers["authorization"], "Bearer abc");
    assert!(req.data.as_deref().unwrap().contains("hunter2"));
    assert_eq!(
        event.user.as_ref().unwrap().email.as_deref(),
        Some("ann@example.com")
    );
    assert_eq!(
        event.user.as_ref().unwrap().ip_address.as_deref(),
        Some("203.0.113.9")
    );
}

#[test]
fn traces_sampling_honours_rate_sampler_and_caller() {
    let never = backstop_core::test::start(Options::new().traces_sample_rate(0.0)).unwrap();
    let always = backstop_core::test::start(Options::new().traces_sample_rate(1.0)).unwrap();
    let by_route = backstop_core::test::start(Options::new().traces_sampler(|ctx| {
        if ctx.route == Some("/health") {
            0.0
        } else {
            1.0
        }
    }))
    .unwrap();
    assert!(!RequestScope::builder(&never, "GET /").start().is_sampled());
    assert!(RequestScope::builder(&always, "GET /").start().is_sampled());
    assert!(
        !RequestScope::builder(&by_route, "GET /health")
            .sampling_input(Some("GET"), Some("/health"), None)
            .start()
            .is_sampled()
    );
    assert!(
        RequestScope::builder(&by_route, "GET /users")
            .sampling_input(Some("GET"), Some("/users"), None)
            .start()
            .is_sampled()
    );
    // The caller's decision wins, and its trace is continued.
    let parent = backstop_core::TraceParent::parse_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let scope = RequestScope::builder(&never, "GET /")
        .continue_trace(parent)
        .start();
    assert!(scope.is_sampled());
    assert_eq!(
        scope.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(
        scope
            .traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
    let parent = backstop_core::TraceParent::parse_sentry_trace(
        "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
    );
    assert!(
        !RequestScope::builder(&always, "GET /")
            .continue_trace(parent)
            .start()
            .is_sampled()
    );
    // A rate between 0 and 1 keeps about that share.
    let half = backstop_core::test::start(Options::new().traces_sample_rate(0.5)).unwrap();
    let kept = (0..4000)
        .filter(|_| RequestScope::builder(&half, "GET /").start().is_sampled())
        .count();
    assert!((1600..2400).contains(&kept), "{kept}");
}

#[test]
fn ignored_statuses_are_reported_to_adapters() {
    let backstop = backstop_core::test::start(Options::new().ignore_status(503)).unwrap();
    assert!(backstop.is_status_ignored(503));
    assert!(!backstop.is_status_ignored(500));
}

#[test]
fn an_empty_scrub_key_is_refused_rather_than_filtering_everything() {
    assert_eq!(setting_of(Options::new().scrub_key("")), "scrub_key");
}
