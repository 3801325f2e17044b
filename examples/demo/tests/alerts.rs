//! The alerts bar, on the real demo binary: with the alert variables pointing at a
//! local SMTP server (aiosmtpd) and a local webhook receiver, a first panic produces an
//! e-mail and a signed webhook POST within 15 s, and thirty more of the same panic
//! send no second new-issue alert.

#[path = "../../../crates/backstop-alerts/tests/common/mod.rs"]
mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backstop::store::{IssueQuery, StoreReader};
use common::{Receiver, SECRET, Smtp, dead_port, poll};

/// The demo process, killed when the test ends, also when it fails.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_panic_emails_and_posts_a_signed_webhook_and_repeats_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let receiver = Receiver::start();
    let port = dead_port();
    let db = dir.path().join("backstop.db");
    let _demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_backstop-demo"))
            .env("BACKSTOP_DEMO_ADDR", format!("127.0.0.1:{port}"))
            .env("BACKSTOP_DB", &db)
            .env("BACKSTOP_DEMO_DATA", dir.path().join("data.db"))
            .env("BACKSTOP_ENVIRONMENT", "production")
            .env("BACKSTOP_ALERT_WEBHOOK_URL", receiver.url("/hook"))
            .env("BACKSTOP_ALERT_WEBHOOK_SECRET", SECRET)
            .env("BACKSTOP_ALERT_EMAIL_TO", "oncall@example.com")
            .env("BACKSTOP_ALERT_EMAIL_FROM", "Backstop <alerts@example.com>")
            .env("BACKSTOP_SMTP_URL", smtp.url())
            .env("BACKSTOP_DASHBOARD_URL", "http://localhost:3000/_backstop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = poll(Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "the demo did not start");

    let client = reqwest::Client::new();
    let panic_url = format!("http://127.0.0.1:{port}/panic");
    let first = Instant::now();
    let status = client.get(&panic_url).send().await.unwrap().status();
    assert_eq!(status, 500);

    // The waits poll with short sleeps; the demo serves on its own process.
    let (mail, hook) = tokio::task::block_in_place(|| {
        (
            smtp.wait_for(1).remove(0),
            receiver.wait_for("/hook", 1).remove(0),
        )
    });
    let took = first.elapsed();
    assert!(took < Duration::from_secs(15), "the alerts took {took:?}");

    // The e-mail says what happened.
    assert!(mail.contains("Subject: [Backstop] New issue:"), "{mail}");
    assert!(mail.contains("Rule: new-issue"), "{mail}");
    assert!(mail.contains("Environment: production"), "{mail}");
    assert!(
        mail.contains("http://localhost:3000/_backstop/issues/1"),
        "{mail}"
    );
    // The webhook's signature verifies.
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, hook.headers[name].parse().unwrap());
    }
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&hook.body, &headers)
        .expect("the signature verifies");
    assert_eq!(hook.json()["data"]["trigger"], "new_issue");

    // Thirty more of the same panic: stored, and no second new-issue alert.
    for _ in 0..30 {
        let status = client.get(&panic_url).send().await.unwrap().status();
        assert_eq!(status, 500);
    }
    let counted = tokio::task::block_in_place(|| {
        poll(Duration::from_secs(60), || {
            let reader = StoreReader::open(&db).ok()?;
            let issues = reader.issues(&IssueQuery::new()).ok()?;
            issues.iter().find(|i| i.count >= 31).map(|i| i.count)
        })
    });
    assert_eq!(counted, Some(31));
    // Delivery of a (wrong) second alert would take well under this.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received("/hook").len(), 1);
    assert_eq!(smtp.messages().len(), 1);
}

/// The dashboard's Alerts page, on the demo: it names the configured channel, its
/// button (a POST with the CSRF token) sends a signed test notification, and the
/// history shows the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_sends_a_test_notification_and_shows_the_history() {
    const TOKEN: &str = "alerts-page-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let port = dead_port();
    let _demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_backstop-demo"))
            .env("BACKSTOP_DEMO_ADDR", format!("127.0.0.1:{port}"))
            .env("BACKSTOP_DB", dir.path().join("backstop.db"))
            .env("BACKSTOP_DEMO_DATA", dir.path().join("data.db"))
            .env("BACKSTOP_ENVIRONMENT", "production")
            .env("BACKSTOP_DASHBOARD_TOKEN", TOKEN)
            .env("BACKSTOP_ALERT_WEBHOOK_URL", receiver.url("/hook"))
            .env("BACKSTOP_ALERT_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = poll(Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "the demo did not start");
    let base = format!("http://127.0.0.1:{port}/_backstop");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let login = client
        .get(format!("{base}/?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = |client: &reqwest::Client| {
        let request = client
            .get(format!("{base}/alerts"))
            .header("cookie", &cookie);
        async move {
            let reply = request.send().await.unwrap();
            assert_eq!(reply.status(), 200);
            reply.text().await.unwrap()
        }
    };

    let before = page(&client).await;
    assert!(before.contains("Configured: webhook"), "{before}");
    assert!(before.contains("No alert has fired yet."), "{before}");
    let csrf = before
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries a CSRF token")
        .to_owned();

    // Without the CSRF token, nothing is sent.
    let forged = client
        .post(format!("{base}/alerts/test"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let sent = client
        .post(format!("{base}/alerts/test"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 303);
    assert_eq!(sent.headers()["location"], "/_backstop/alerts");

    let hook = tokio::task::block_in_place(|| receiver.wait_for("/hook", 1).remove(0));
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, hook.headers[name].parse().unwrap());
    }
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&hook.body, &headers)
        .expect("the signature verifies");
    assert_eq!(hook.json()["type"], "alert.test");

    let after = page(&client).await;
    assert!(after.contains("Test notification from Backstop"), "{after}");
    assert!(after.contains("badge sent"), "{after}");
    assert_eq!(receiver.received("/hook").len(), 1);
}
