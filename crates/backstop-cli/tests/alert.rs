//! `backstop alert test` against a real receiver on 127.0.0.1, with the channels from
//! the environment as a service would have them.

mod common;

#[path = "../../backstop-alerts/tests/common/mod.rs"]
mod receivers;

use common::*;
use receivers::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn alert_test_sends_to_the_configured_channel_and_records_it() {
    let fixture = fixture();
    fixture.message("something to make the store exist");
    fixture.flush();
    let receiver = Receiver::start();
    let out = command(fixture.dir.path())
        .args(["alert", "test", "--channel", "webhook", "--db"])
        .arg(&fixture.path)
        .env("BACKSTOP_ALERT_WEBHOOK_URL", receiver.url("/hook"))
        .env("BACKSTOP_ALERT_WEBHOOK_SECRET", SECRET)
        .env("BACKSTOP_ALERT_SLACK_URL", receiver.url("/slack"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "webhook: sent (1 attempt)\n");
    assert_eq!(receiver.received("/hook")[0].json()["type"], "alert.test");
    assert!(receiver.received("/slack").is_empty());
    let history = backstop_store::AlertHistory::open(&fixture.path).unwrap();
    let rows = history.history(10, None).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].alert.channel.as_deref(), Some("webhook"));
}

#[test]
fn alert_test_refuses_bad_settings_and_unknown_channels() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["alert", "test"])
        .env(
            "BACKSTOP_ALERT_SLACK_URL",
            "hooks.slack.com/services/T/B/SECRET",
        )
        .output()
        .unwrap();
    let err = failure(&out, 2);
    assert!(err.contains("BACKSTOP_ALERT_SLACK_URL"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");

    let out = command(dir.path())
        .args(["alert", "test", "--channel", "sms"])
        .env(
            "BACKSTOP_ALERT_SLACK_URL",
            "https://hooks.slack.com/services/T/B/X",
        )
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.ends_with("backstop: no alert channel named \"sms\" (configured: slack)\n"),
        "{err}"
    );
}

#[test]
fn a_failed_test_notification_exits_1_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.answer("/slack", receivers::Answer::status(404));
    let out = command(dir.path())
        .args(["alert", "test"])
        .env("BACKSTOP_ALERT_SLACK_URL", receiver.url("/slack"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "slack: failed after 1 attempt: HTTP 404\n");
    assert!(stderr(&out).contains("backstop: 1 of 1 test notification(s) failed"));
}
