//! Who gets in, against the real standalone server on 127.0.0.1.

mod common;

use backstop_dashboard::{Access, Dashboard, DashboardConfig};
use backstop_store::SqliteStore;
use common::seed::Size;
use common::*;

fn config() -> DashboardConfig {
    DashboardConfig::new().token(TOKEN)
}

#[test]
fn strangers_get_404_and_the_token_sets_a_cookie() {
    let server = start(Size::SMALL, "", config());
    let addr = server.addr;

    // No token: every path answers like any unknown path, and says nothing.
    for path in [
        "/_backstop",
        "/_backstop/",
        "/_backstop/issues",
        "/_backstop/health",
        "/_backstop/assets/dashboard.css",
    ] {
        let reply = send(addr, "GET", path, &[], "");
        assert_eq!(reply.status, 404, "{path}");
        assert!(
            !reply.body.to_lowercase().contains("backstop"),
            "{path}: {}",
            reply.body
        );
    }
    // A wrong token, and a forged cookie.
    assert_eq!(
        send(addr, "GET", "/_backstop/?token=wrong", &[], "").status,
        404
    );
    assert_eq!(
        send(
            addr,
            "GET",
            "/_backstop/",
            &[("Cookie", "backstop_dashboard=test-token-0123456789abcdef")],
            ""
        )
        .status,
        404,
        "the cookie holds a session key, not the token"
    );

    // The token: a cookie for the mount, HttpOnly and SameSite=Strict, and a redirect
    // to the same URL without the token.
    let reply = send(
        addr,
        "GET",
        &format!("/_backstop/issues?status=all&token={TOKEN}"),
        &[],
        "",
    );
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.header("location"),
        Some("/_backstop/issues/?status=all")
    );
    let cookie = reply.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/_backstop"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the token never sits in the cookie"
    );
    let cookie = cookie.split(';').next().unwrap();

    let page = get(addr, cookie, "/_backstop/issues?status=all");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>Issues</h1>"));
    // Headers on every page.
    for reply in [&page, &send(addr, "GET", "/_backstop/", &[], "")] {
        let csp = reply.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("form-action 'self'"), "{csp}");
        assert!(
            !csp.contains("script-src") || !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(
            csp.starts_with("default-src 'none'"),
            "no script may run: {csp}"
        );
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    assert!(!page.body.contains("<script"), "no script on the page");
}

#[test]
fn changes_need_a_post_with_the_csrf_token() {
    let server = start(Size::SMALL, "", config());
    let addr = server.addr;
    let cookie = login(addr);
    let list = get(addr, &cookie, "/_backstop/issues");
    let issue = first_link(&list.body, "/_backstop/issues/");
    let page = get(addr, &cookie, &issue).body;
    assert!(page.contains("unresolved"));
    let csrf = csrf_of(&page);

    // Without the token, or with a wrong one: 403, and nothing changes.
    let no_csrf = send(
        addr,
        "POST",
        &issue,
        &[("Cookie", &cookie)],
        "action=resolve",
    );
    assert_eq!(no_csrf.status, 403);
    let wrong = send(
        addr,
        "POST",
        &issue,
        &[("Cookie", &cookie)],
        "action=resolve&csrf=0000",
    );
    assert_eq!(wrong.status, 403);
    assert!(!get(addr, &cookie, &issue).body.contains("badge resolved"));
    // Without the cookie, a POST is a 404 like everything else.
    let body = format!("action=resolve&csrf={csrf}");
    assert_eq!(send(addr, "POST", &issue, &[], &body).status, 404);

    // With it: resolved, and back to the issue.
    let ok = send(addr, "POST", &issue, &[("Cookie", &cookie)], &body);
    assert_eq!(ok.status, 303, "{ok:?}");
    assert!(get(addr, &cookie, &issue).body.contains("badge resolved"));
    // A GET changes nothing.
    assert_eq!(
        get(addr, &cookie, &format!("{issue}?action=ignore")).status,
        200
    );
    assert!(!get(addr, &cookie, &issue).body.contains("badge ignored"));

    // Bulk: ignore two issues from the list.
    let ids: Vec<String> = list
        .body
        .match_indices("name=\"id\" value=\"")
        .take(2)
        .map(|(at, m)| {
            let rest = &list.body[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect();
    let body = format!(
        "csrf={csrf}&action=ignore&id={}&id={}&back=/_backstop/issues?status=ignored",
        ids[0], ids[1]
    );
    let bulk = send(
        addr,
        "POST",
        "/_backstop/issues",
        &[("Cookie", &cookie)],
        &body,
    );
    assert_eq!(bulk.status, 303);
    assert_eq!(
        bulk.header("location"),
        Some("/_backstop/issues?status=ignored")
    );
    let ignored = get(addr, &cookie, "/_backstop/issues?status=ignored").body;
    for id in &ids {
        assert!(
            ignored.contains(&format!("href=\"/_backstop/issues/{id}\"")),
            "{id}"
        );
    }
    // A `back` outside the dashboard is not followed.
    let body = format!(
        "csrf={csrf}&action=unresolve&id={}&back=//evil.example/",
        ids[0]
    );
    let bulk = send(
        addr,
        "POST",
        "/_backstop/issues",
        &[("Cookie", &cookie)],
        &body,
    );
    assert_eq!(bulk.header("location"), Some("/_backstop/issues"));
}

#[test]
fn the_standalone_server_refuses_a_foreign_host() {
    let server = start(Size::SMALL, "", config().allowed_host("ops.internal"));
    let addr = server.addr;
    let cookie = login(addr);
    // DNS rebinding: the attacker's name resolving to 127.0.0.1.
    let evil = send(
        addr,
        "GET",
        "/_backstop/",
        &[("Host", "evil.example"), ("Cookie", &cookie)],
        "",
    );
    assert_eq!(evil.status, 421);
    let evil = send(
        addr,
        "GET",
        &format!("/_backstop/?token={TOKEN}"),
        &[("Host", "evil.example:80")],
        "",
    );
    assert_eq!(evil.status, 421, "not even the login");
    for host in ["localhost", "127.0.0.1:7070", "ops.internal"] {
        let ok = send(
            addr,
            "GET",
            "/_backstop/",
            &[("Host", host), ("Cookie", &cookie)],
            "",
        );
        assert_eq!(ok.status, 200, "{host}");
    }
}

#[test]
fn failed_attempts_are_limited_per_client() {
    let server = start(Size::SMALL, "", config());
    let addr = server.addr;
    for _ in 0..10 {
        assert_eq!(
            send(addr, "GET", "/_backstop/?token=guess", &[], "").status,
            404
        );
    }
    // Now even the right token waits.
    assert_eq!(
        send(addr, "GET", &format!("/_backstop/?token={TOKEN}"), &[], "").status,
        429
    );
}

#[test]
fn production_without_a_token_has_no_dashboard() {
    let store = SqliteStore::open(":memory:").unwrap();
    let off = Dashboard::new(
        store.reader(),
        DashboardConfig::new().environment("production"),
    );
    assert_eq!(off.access(), &Access::Off);
    assert!(!off.is_enabled());
    assert_eq!(off.login_url(), None);
    for path in ["/_backstop/", "/_backstop/?token=", "/_backstop/issues"] {
        let request = http::Request::get(path).body(bytes::Bytes::new()).unwrap();
        assert_eq!(off.handle(request).status(), 404);
    }

    // In development, a random token is made and the login URL carries it.
    let dev = Dashboard::new(
        store.reader(),
        DashboardConfig::new().environment("development"),
    );
    assert_eq!(dev.access(), &Access::Generated);
    let url = dev.login_url().unwrap();
    let token = url.split("token=").nth(1).unwrap();
    assert!(token.len() >= 32, "{url}");
    let request = http::Request::get(url.as_str())
        .body(bytes::Bytes::new())
        .unwrap();
    assert_eq!(dev.handle(request).status(), 303);
    let again = Dashboard::new(
        store.reader(),
        DashboardConfig::new().environment("development"),
    );
    assert_ne!(again.login_url(), dev.login_url(), "a new token each start");

    // The mount is a prefix test the adapters ask before recording.
    assert!(dev.is_dashboard_path("/_backstop"));
    assert!(dev.is_dashboard_path("/_backstop/issues/3"));
    assert!(!dev.is_dashboard_path("/_backstopper"));
    assert!(!dev.is_dashboard_path("/users"));
}
