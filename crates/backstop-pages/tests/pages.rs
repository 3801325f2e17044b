//! Every status in every format, overrides, negotiation, the debug page and escaping.

use backstop_pages::maud::html;
use backstop_pages::{
    Accent, BacktraceFrame, DebugDetails, ErrorPages, Labels, Logo, PageContext, PageFormat,
    PageText, STATUSES, Theme, markup,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use serde_json::Value;

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

/// Every status with a page of its own, plus two that fall back to the 4xx/5xx pages.
fn all_statuses() -> Vec<StatusCode> {
    let mut all = STATUSES.to_vec();
    all.push(StatusCode::IM_A_TEAPOT);
    all.push(StatusCode::NOT_IMPLEMENTED);
    all
}

fn render(
    pages: &ErrorPages,
    status: StatusCode,
    ctx: &PageContext,
    accept: &str,
) -> Response<String> {
    let accept = HeaderValue::from_str(accept).unwrap();
    pages.render(status, ctx, Some(&accept), false)
}

fn ctx() -> PageContext {
    PageContext::new(Method::GET, "/some/path")
}

fn assert_common_headers(response: &Response<String>, content_type: &str) {
    let h = response.headers();
    assert_eq!(h[header::CONTENT_TYPE], content_type);
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert_eq!(h[header::VARY], "accept");
}

#[test]
fn every_status_renders_as_html() {
    let pages = ErrorPages::default();
    for status in all_statuses() {
        let response = render(&pages, status, &ctx(), HTML);
        assert_eq!(response.status(), status);
        assert_common_headers(&response, "text/html; charset=utf-8");
        let body = response.body();
        let title = pages.page_for(status, &ctx()).title().to_owned();
        assert!(
            body.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{status}"
        );
        assert_eq!(body.matches("<h1").count(), 1, "{status}: one h1");
        assert!(body.contains(&format!("<h1>{title}</h1>")), "{status}");
        assert!(
            body.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            )
        );
        assert!(body.contains("prefers-color-scheme:dark"));
        assert!(body.contains(&format!(r#"<p class="bs-code">{}</p>"#, status.as_u16())));
        // All CSS inline, no scripts, nothing fetched from outside.
        assert!(!body.contains("<script"), "{status}");
        assert!(!body.contains("<link"), "{status}");
        assert!(!body.contains("src=\"http"), "{status}");
        // Actions.
        assert!(body.contains(">Go home</a>"), "{status}");
        let retry = status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(body.contains(">Try again</a>"), retry, "{status}");
        assert_eq!(
            body.contains(">Sign in</a>"),
            status == StatusCode::UNAUTHORIZED,
            "{status}"
        );
    }
}

#[test]
fn every_status_renders_as_problem_json() {
    let pages = ErrorPages::default();
    for status in all_statuses() {
        let response = render(&pages, status, &ctx(), JSON);
        assert_eq!(response.status(), status);
        assert_common_headers(&response, "application/problem+json; charset=utf-8");
        let doc: Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(doc["type"], "about:blank");
        assert_eq!(doc["title"], status.canonical_reason().unwrap());
        assert_eq!(doc["status"], status.as_u16());
        assert_eq!(doc["detail"], pages.page_for(status, &ctx()).message());
        assert_eq!(doc["instance"], "/some/path");
        assert!(doc.get("event_id").is_none());
        assert!(doc.get("debug").is_none());
    }
}

#[test]
fn every_status_renders_as_plain_text() {
    let pages = ErrorPages::default();
    for status in all_statuses() {
        let ctx = ctx();
        let response = render(&pages, status, &ctx, TEXT);
        assert_eq!(response.status(), status);
        assert_common_headers(&response, "text/plain; charset=utf-8");
        let page = pages.page_for(status, &ctx);
        let first_line = format!("{} {}\n", status.as_u16(), page.title());
        assert!(response.body().starts_with(&first_line), "{status}");
        assert!(response.body().contains(page.message()), "{status}");
        assert!(!response.body().contains('<'), "{status}");
    }
}

#[test]
fn head_gets_headers_only_in_every_format() {
    let pages = ErrorPages::default();
    for status in all_statuses() {
        for (accept, content_type) in [
            (HTML, "text/html; charset=utf-8"),
            (JSON, "application/problem+json; charset=utf-8"),
            (TEXT, "text/plain; charset=utf-8"),
        ] {
            let accept = HeaderValue::from_static(accept);
            let response = pages.render(status, &ctx(), Some(&accept), true);
            assert_eq!(response.status(), status);
            assert!(response.body().is_empty());
            assert_common_headers(&response, content_type);
        }
    }
}

#[test]
fn negotiation_picks_the_format_by_q_value() {
    let pages = ErrorPages::default();
    let cases = [
        (Some(HTML), "text/html; charset=utf-8"),
        (
            Some("application/problem+json"),
            "application/problem+json; charset=utf-8",
        ),
        (
            Some("text/html;q=0.5, application/json;q=0.8"),
            "application/problem+json; charset=utf-8",
        ),
        (
            Some("application/json;q=0.5, text/html;q=0.8"),
            "text/html; charset=utf-8",
        ),
        (Some("text/html;q=0, */*"), "text/plain; charset=utf-8"),
        (Some("*/*"), "text/plain; charset=utf-8"),
        (Some("image/webp"), "text/plain; charset=utf-8"),
        (None, "text/plain; charset=utf-8"),
    ];
    for (accept, expected) in cases {
        let accept = accept.map(|a| HeaderValue::from_str(a).unwrap());
        let response = pages.render(StatusCode::NOT_FOUND, &ctx(), accept.as_ref(), false);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            expected,
            "{accept:?}"
        );
    }
    // render_as skips negotiation.
    let response = pages.render_as(
        StatusCode::NOT_FOUND,
        &ctx(),
        PageFormat::ProblemJson,
        false,
    );
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json; charset=utf-8"
    );
}

#[test]
fn the_four_brief_colours_are_kept() {
    let pages = ErrorPages::default();
    for (status, colour) in [
        (StatusCode::NOT_FOUND, "#6d28d9, #a21caf"),
        (StatusCode::INTERNAL_SERVER_ERROR, "#b91c1c, #dc2626"),
        (StatusCode::FORBIDDEN, "#c2410c, #9a3412"),
        (StatusCode::BAD_REQUEST, "#1d4ed8, #2563eb"),
    ] {
        let body = render(&pages, status, &ctx(), HTML).into_body();
        let accent = format!("--accent:linear-gradient(135deg, {colour});");
        assert!(body.contains(&accent), "{status}: {colour}");
    }
}

#[test]
fn a_500_says_the_team_was_notified_and_shows_the_reference() {
    let pages = ErrorPages::default();
    let with_event = ctx().with_event_id("0f8e2d4c6b1a4f3e9d7c5b3a1f2e4d6c");
    let body = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &with_event, HTML).into_body();
    assert!(body.contains("Our team has been notified"));
    assert!(body.contains("Reference: <code>0f8e2d4c6b1a4f3e9d7c5b3a1f2e4d6c</code>"));

    let body = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx(), HTML).into_body();
    assert!(body.contains("Our team has been notified"));
    assert!(!body.contains("Reference"));

    let text = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &with_event, TEXT).into_body();
    assert!(text.contains("Reference: 0f8e2d4c6b1a4f3e9d7c5b3a1f2e4d6c"));
    let json: Value = serde_json::from_str(
        render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &with_event, JSON).body(),
    )
    .unwrap();
    assert_eq!(json["event_id"], "0f8e2d4c6b1a4f3e9d7c5b3a1f2e4d6c");

    // Other 5xx only claim a notification when an event was recorded.
    let body = render(&pages, StatusCode::BAD_GATEWAY, &ctx(), HTML).into_body();
    assert!(!body.contains("notified"));
    let body = render(&pages, StatusCode::BAD_GATEWAY, &with_event, HTML).into_body();
    assert!(body.contains("notified"));
}

#[test]
fn the_404_page_echoes_the_path() {
    let pages = ErrorPages::default();
    let body = render(&pages, StatusCode::NOT_FOUND, &ctx(), HTML).into_body();
    assert!(body.contains("You asked for <code>/some/path</code>"));
    let long = PageContext::new(Method::GET, format!("/{}", "a".repeat(5000)));
    let body = render(&pages, StatusCode::NOT_FOUND, &long, HTML).into_body();
    assert!(body.contains(&format!("<code>/{}…</code>", "a".repeat(159))));
}

#[test]
fn status_headers_survive_and_others_do_not() {
    let pages = ErrorPages::default();
    let mut original = HeaderMap::new();
    original.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    original.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    original.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    original.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"api\""),
    );
    original.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("session=secret"),
    );
    original.insert(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
    original.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let ctx = ctx().with_headers(original);

    let r = render(&pages, StatusCode::METHOD_NOT_ALLOWED, &ctx, HTML);
    assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
    assert!(r.headers().get(header::RETRY_AFTER).is_none());
    assert!(
        r.body()
            .contains("This page accepts <code>GET, HEAD</code>")
    );
    let text = render(&pages, StatusCode::METHOD_NOT_ALLOWED, &ctx, TEXT).into_body();
    assert!(text.contains("This page accepts GET, HEAD"));
    // Only a 405 lists them.
    let html = render(&pages, StatusCode::NOT_FOUND, &ctx, HTML).into_body();
    assert!(!html.contains("This page accepts"));

    for status in [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        let r = render(&pages, status, &ctx, JSON);
        assert_eq!(r.headers()[header::RETRY_AFTER], "30");
        assert!(r.headers().get(header::ALLOW).is_none());
        let html = render(&pages, status, &ctx, HTML).into_body();
        assert!(html.contains("You can try again in 30 seconds."));
    }

    let r = render(&pages, StatusCode::UNAUTHORIZED, &ctx, TEXT);
    let challenges: Vec<_> = r
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .collect();
    assert_eq!(challenges, ["Bearer realm=\"api\"", "Basic realm=\"api\""]);

    // HEAD keeps them too.
    let head = pages.render(StatusCode::METHOD_NOT_ALLOWED, &ctx, None, true);
    assert_eq!(head.headers()[header::ALLOW], "GET, HEAD");

    for status in all_statuses() {
        let r = render(&pages, status, &ctx, HTML);
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        assert!(r.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(r.headers().get_all(header::CONTENT_TYPE).iter().count(), 1);
    }
}

const SECRET: &str = "password=hunter2-SECRET";

fn panicking_context() -> PageContext {
    PageContext::new(Method::POST, "/checkout")
        .with_event_id("abc123")
        .with_detail(format!("database said: {SECRET}"))
        .with_debug(
            DebugDetails::new(format!(
                "called `Result::unwrap()` on an `Err` value: {SECRET}"
            ))
            .with_cause(format!("connection refused ({SECRET}-chain)"))
            .with_cause("os error 111")
            .with_frame(
                BacktraceFrame::new("shop::checkout::charge_card")
                    .at("src/checkout.rs", 87)
                    .in_app(true),
            )
            .with_frame(
                BacktraceFrame::new("core::result::unwrap_failed")
                    .at("/rustc/library/core/src/result.rs", 1750),
            )
            .with_request_field("authorization", "Bearer SECRET-TOKEN"),
        )
}

#[test]
fn production_pages_never_show_debug_details() {
    let pages = ErrorPages::default();
    let ctx = panicking_context();
    for status in all_statuses() {
        for accept in [HTML, JSON, TEXT] {
            let body = render(&pages, status, &ctx, accept).into_body();
            assert!(!body.contains("unwrap"), "{status} {accept}: message");
            assert!(
                !body.contains("connection refused"),
                "{status} {accept}: chain"
            );
            assert!(!body.contains("os error 111"), "{status} {accept}: chain");
            assert!(
                !body.contains("charge_card"),
                "{status} {accept}: backtrace"
            );
            assert!(
                !body.contains("checkout.rs"),
                "{status} {accept}: backtrace"
            );
            assert!(!body.contains("SECRET-TOKEN"), "{status} {accept}: request");
            if status.is_server_error() {
                // The detail text is a 4xx thing; 5xx pages never show it in production.
                assert!(!body.contains(SECRET), "{status} {accept}: secret leaked");
            }
        }
    }
}

#[test]
fn the_detail_is_shown_on_4xx_pages() {
    let pages = ErrorPages::default();
    let ctx = ctx().with_detail("Failed to deserialize the JSON body: missing field `email`");
    let html = render(&pages, StatusCode::UNPROCESSABLE_ENTITY, &ctx, HTML).into_body();
    assert!(html.contains(
        r#"<p class="bs-detail">Failed to deserialize the JSON body: missing field `email`</p>"#
    ));
    let json: Value =
        serde_json::from_str(render(&pages, StatusCode::BAD_REQUEST, &ctx, JSON).body()).unwrap();
    assert_eq!(
        json["detail"],
        "Failed to deserialize the JSON body: missing field `email`"
    );
    let text = render(&pages, StatusCode::BAD_REQUEST, &ctx, TEXT).into_body();
    assert!(text.contains("missing field `email`"));
    let html = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx, HTML).into_body();
    assert!(!html.contains("missing field"));
}

#[test]
fn the_debug_page_shows_everything_when_on() {
    let pages = ErrorPages::default().debug(true);
    let ctx = panicking_context();
    let html = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx, HTML).into_body();
    assert!(html.contains("<body class=\"bs-debug\">"));
    assert!(html.contains("Debug page"));
    assert!(html.contains(&format!(
        "called `Result::unwrap()` on an `Err` value: {SECRET}"
    )));
    assert!(html.contains("connection refused"));
    assert!(html.contains("os error 111"));
    assert!(html.contains(
        r#"<li class="bs-frame bs-frame-app">shop::checkout::charge_card<span class="bs-frame-file">src/checkout.rs:87</span></li>"#
    ));
    assert!(html.contains(r#"<li class="bs-frame">core::result::unwrap_failed"#));
    assert!(html.contains("<td class=\"bs-mono\">POST</td>"));
    assert!(html.contains("<td class=\"bs-mono\">/checkout</td>"));
    assert!(html.contains("Bearer SECRET-TOKEN"));
    assert_eq!(html.matches("<h1").count(), 1);

    let json: Value =
        serde_json::from_str(render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx, JSON).body())
            .unwrap();
    assert_eq!(json["debug"]["chain"][1], "os error 111");
    assert_eq!(json["debug"]["frames"][0]["in_app"], true);
    let text = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx, TEXT).into_body();
    assert!(text.contains(" * shop::checkout::charge_card at src/checkout.rs:87"));
    assert!(text.contains("Caused by: os error 111"));

    // Without details, debug mode shows the normal page.
    let html = render(
        &pages,
        StatusCode::INTERNAL_SERVER_ERROR,
        &PageContext::default(),
        HTML,
    )
    .into_body();
    assert!(!html.contains("<body class=\"bs-debug\">"));
}

#[test]
fn a_status_page_can_be_replaced() {
    let pages = ErrorPages::default().page(StatusCode::NOT_FOUND, |page| {
        markup::layout(
            page,
            html! {
                h1 { "Lost in space: " (page.context().path) }
                (markup::actions(page))
            },
        )
    });
    let body = render(&pages, StatusCode::NOT_FOUND, &ctx(), HTML).into_body();
    assert!(body.contains("<h1>Lost in space: /some/path</h1>"));
    assert!(body.contains(">Go home</a>"));
    assert!(!body.contains("<h1>Page not found"));
    // Other statuses keep the default.
    let body = render(&pages, StatusCode::FORBIDDEN, &ctx(), HTML).into_body();
    assert!(body.contains("<h1>Access denied</h1>"));
    // The JSON and text formats keep the default wording.
    let text = render(&pages, StatusCode::NOT_FOUND, &ctx(), TEXT).into_body();
    assert!(text.starts_with("404 Page not found"));
    // A status without a default page can be given one.
    let pages = pages.page(StatusCode::IM_A_TEAPOT, |_| html! { "short and stout" });
    let body = render(&pages, StatusCode::IM_A_TEAPOT, &ctx(), HTML).into_body();
    assert_eq!(body, "short and stout");
    // The debug page still wins, so developers keep the details.
    let pages = ErrorPages::default()
        .page(StatusCode::INTERNAL_SERVER_ERROR, |_| html! { "custom" })
        .debug(true);
    let body = render(
        &pages,
        StatusCode::INTERNAL_SERVER_ERROR,
        &panicking_context(),
        HTML,
    )
    .into_body();
    assert!(body.contains("charge_card"));
    let body = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx(), HTML).into_body();
    assert_eq!(body, "custom");
}

#[test]
fn the_default_content_can_be_wrapped_in_a_site_layout() {
    let pages = ErrorPages::default().layout(|page, content| {
        html! {
            html lang=(page.labels().lang) {
                head { (markup::head(page)) }
                body { nav.acme { "Acme nav" } (content) footer { "Acme footer" } }
            }
        }
    });
    for status in all_statuses() {
        let body = render(&pages, status, &ctx(), HTML).into_body();
        assert!(
            body.contains(r#"<nav class="acme">Acme nav</nav><div class="bs-card">"#),
            "{status}"
        );
        assert!(body.contains("Acme footer"));
        assert!(body.contains("<style>"));
        assert_eq!(body.matches("<h1").count(), 1);
    }
}

#[test]
fn texts_and_labels_can_be_translated() {
    let mut labels = Labels::default();
    labels.lang = "de".into();
    labels.go_home = "Zur Startseite".into();
    labels.try_again = "Erneut versuchen".into();
    labels.reference = "Referenz".into();
    let pages = ErrorPages::default()
        .text(
            StatusCode::NOT_FOUND,
            PageText::new("Seite nicht gefunden", "Diese Seite gibt es nicht."),
        )
        .text(
            StatusCode::INTERNAL_SERVER_ERROR,
            PageText::new("Etwas ist schiefgelaufen", "Ein Fehler ist aufgetreten."),
        )
        .labels(labels);
    let body = render(&pages, StatusCode::NOT_FOUND, &ctx(), HTML).into_body();
    assert!(body.contains("<html lang=\"de\">"));
    assert!(body.contains("<h1>Seite nicht gefunden</h1>"));
    assert!(body.contains("Diese Seite gibt es nicht."));
    assert!(body.contains(">Zur Startseite</a>"));
    let body = render(
        &pages,
        StatusCode::INTERNAL_SERVER_ERROR,
        &ctx().with_event_id("e1"),
        HTML,
    )
    .into_body();
    assert!(body.contains(">Erneut versuchen</a>"));
    assert!(body.contains("Referenz: <code>e1</code>"));
    let text = render(&pages, StatusCode::NOT_FOUND, &ctx(), TEXT).into_body();
    assert!(text.starts_with("404 Seite nicht gefunden\n"));
    let json: Value =
        serde_json::from_str(render(&pages, StatusCode::NOT_FOUND, &ctx(), JSON).body()).unwrap();
    // `type` is about:blank, so `title` stays the reason phrase; the wording is in `detail`.
    assert_eq!(json["title"], "Not Found");
    assert_eq!(json["detail"], "Diese Seite gibt es nicht.");
}

#[test]
fn the_theme_shows_up_on_the_page() {
    let theme = Theme::new("Acme Corp")
        .logo(Logo::url("/static/logo.svg"))
        .home_url("https://acme.example/")
        .sign_in_url("/auth/login")
        .support_email("help@acme.example")
        .footer_link("Status", "https://status.acme.example/")
        .footer_link("Privacy", "/privacy")
        .accent(StatusCode::NOT_FOUND, Accent::solid("#0f766e"))
        .accent(StatusCode::IM_A_TEAPOT, Accent::solid("#fde047"))
        .font_stack("\"Inter\", sans-serif")
        .extra_css(".bs-card{border-radius:0}");
    let pages = ErrorPages::new(theme);
    let body = render(&pages, StatusCode::UNAUTHORIZED, &ctx(), HTML).into_body();
    assert!(body.contains("<title>401 · Please sign in · Acme Corp</title>"));
    assert!(body.contains(r#"<a class="bs-brand" href="https://acme.example/"><img class="bs-logo" src="/static/logo.svg" alt=""><span>Acme Corp</span></a>"#));
    assert!(body.contains(r#"href="/auth/login">Sign in</a>"#));
    assert!(body.contains(r#"href="https://acme.example/">Go home</a>"#));
    assert!(body.contains(r#"<a href="mailto:help@acme.example">Contact support</a>"#));
    assert!(body.contains(r#"<a href="/privacy">Privacy</a>"#));
    assert!(body.contains("--font:\"Inter\", sans-serif"));
    // The theme's CSS comes after the defaults, so it wins.
    assert!(
        body.find(".bs-card{border-radius:0}").unwrap() > body.find(".bs-card{background").unwrap()
    );
    let body = render(&pages, StatusCode::NOT_FOUND, &ctx(), HTML).into_body();
    assert!(body.contains("--accent:#0f766e;"));
    let body = render(&pages, StatusCode::IM_A_TEAPOT, &ctx(), HTML).into_body();
    assert!(body.contains("--accent:#fde047;--accent-solid:#fde047;--on-accent:#111827"));
    assert!(body.contains("<h1>I&#39;m a teapot</h1>") || body.contains("<h1>I'm a teapot</h1>"));

    let svg = ErrorPages::new(Theme::default().logo(Logo::svg(
        "<svg xmlns='http://www.w3.org/2000/svg'><circle r='4' fill='#f00'/></svg>",
    )));
    let body = render(&svg, StatusCode::NOT_FOUND, &ctx(), HTML).into_body();
    assert!(body.contains(r#"<img class="bs-logo" src="data:image/svg+xml,%3Csvg"#));
    assert!(body.contains(r#"alt="Go home""#));
    assert!(!body.contains("<svg"));
}

#[test]
fn error_pages_are_cheap_shared_values() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<ErrorPages>();
    assert_traits::<PageContext>();
    let pages = ErrorPages::default().debug(true);
    let copy = pages.clone();
    assert!(copy.is_debug());
    // Changing a clone leaves the original alone.
    let changed = copy.debug(false);
    assert!(!changed.is_debug());
    assert!(pages.is_debug());
    assert!(format!("{pages:?}").contains("debug: true"));
}

// Escaping --------------------------------------------------------------------------

const PAYLOADS: [&str; 6] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "</style><script>alert(1)</script>",
    "&lt;script&gt;",
];

/// Markup that must never appear unescaped on a page. The stylesheet is raw text, so
/// it is checked on its own: it must hold no `<` at all, so it cannot end early.
fn assert_inert(body: &str, what: &str) {
    let mut outside = body.to_owned();
    if let Some(start) = body.find("<style>") {
        let end = body.find("</style>").expect("closed style");
        let css = &body[start + "<style>".len()..end];
        assert!(!css.contains('<'), "{what}: `<` in the stylesheet");
        outside = format!("{}{}", &body[..start], &body[end..]);
    }
    for bad in [
        "<script",
        "<img src=x",
        "<svg onload",
        "onerror=alert(1)>",
        "onload=alert(1)>",
    ] {
        if let Some(at) = outside.find(bad) {
            let context: String = outside[at..].chars().take(60).collect();
            panic!("{what}: found {bad:?} in {context}");
        }
    }
}

#[test]
fn everything_dynamic_is_escaped() {
    let debug_pages = ErrorPages::default().debug(true);
    for payload in PAYLOADS {
        let ctx = PageContext::new(Method::GET, format!("/{payload}?q={payload}"))
            .with_event_id(payload)
            .with_detail(payload)
            .with_header(header::RETRY_AFTER, HeaderValue::from_str(payload).unwrap())
            .with_header(header::ALLOW, HeaderValue::from_str(payload).unwrap())
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(payload).unwrap(),
            )
            .with_debug(
                DebugDetails::new(payload)
                    .with_cause(payload)
                    .with_frame(BacktraceFrame::new(payload).at(payload, 1).in_app(true))
                    .with_request_field(payload, payload)
                    .with_request_field("user-agent", payload),
            );
        let theme = Theme::new(payload)
            .logo(Logo::url(payload))
            .home_url(payload)
            .sign_in_url(payload)
            .support_email(payload)
            .footer_link(payload, payload)
            .font_stack(payload)
            .extra_css(payload)
            .accent(StatusCode::NOT_FOUND, Accent::gradient(payload, payload));
        let mut labels = Labels::default();
        labels.go_home = payload.into();
        labels.reference = payload.into();
        let pages = ErrorPages::new(theme.clone())
            .labels(labels.clone())
            .text(StatusCode::BAD_REQUEST, PageText::new(payload, payload));
        let debug = debug_pages.clone().theme(theme).labels(labels);
        for status in all_statuses() {
            for (name, pages) in [("production", &pages), ("debug", &debug)] {
                let html = render(pages, status, &ctx, HTML).into_body();
                assert_inert(&html, &format!("{name} {status} {payload}"));
                let json = render(pages, status, &ctx, JSON).into_body();
                let doc: Value = serde_json::from_str(&json).unwrap();
                assert_eq!(doc["instance"], format!("/{payload}?q={payload}"));
                assert_eq!(doc["event_id"], payload);
            }
        }
        // The echoed path is escaped, not dropped.
        let html = render(&pages, StatusCode::NOT_FOUND, &ctx, HTML).into_body();
        assert!(html.contains("<code>/"), "{payload}");
        if payload.contains('<') {
            assert!(html.contains("&lt;"), "{payload}");
        }
    }
}

#[test]
fn a_hostile_path_cannot_make_try_again_leave_the_site() {
    let pages = ErrorPages::default();
    for path in [
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "https://evil.example/",
    ] {
        let ctx = PageContext::new(Method::GET, path);
        let body = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx, HTML).into_body();
        assert!(
            body.contains(r#"<a class="bs-button bs-button-primary" href="">Try again</a>"#),
            "{path}"
        );
    }
    let ctx = PageContext::new(Method::GET, "/cart?step=2&x=\"y\"");
    let body = render(&pages, StatusCode::SERVICE_UNAVAILABLE, &ctx, HTML).into_body();
    assert!(body.contains(r#"href="/cart?step=2&amp;x=&quot;y&quot;">Try again</a>"#));
}

#[test]
fn theme_css_cannot_end_the_style_element() {
    let pages = ErrorPages::new(
        Theme::default()
            .extra_css("body{color:red}</style><script>alert(1)</script>")
            .font_stack("x}</style><script>alert(2)</script>"),
    );
    let body = render(&pages, StatusCode::NOT_FOUND, &ctx(), HTML).into_body();
    assert_eq!(body.matches("</style>").count(), 1);
    assert!(!body.contains("<script"));
    assert!(body.contains("body{color:red}"));
}

#[test]
fn pages_stay_small() {
    let pages = ErrorPages::new(
        Theme::new("Acme")
            .support_email("help@acme.example")
            .footer_link("Status", "/status")
            .footer_link("Privacy", "/privacy"),
    );
    for status in all_statuses() {
        let body = render(&pages, status, &ctx().with_event_id("0f8e2d4c"), HTML).into_body();
        let css = body.find("</style>").unwrap() - body.find("<style>").unwrap();
        eprintln!("{status}: {} bytes, {css} of them CSS", body.len());
        assert!(body.len() < 10_000, "{status}: {} bytes", body.len());
    }
}

#[test]
fn a_panicking_override_or_layout_falls_back_to_the_default_page() {
    let pages = ErrorPages::default()
        .page(StatusCode::NOT_FOUND, |_| {
            panic!("the team's 404 page has a bug")
        })
        .layout(|page, _content| {
            if page.status() == StatusCode::FORBIDDEN {
                panic!("the team's layout has a bug");
            }
            html! { main { "wrapped" } }
        });
    for status in [StatusCode::NOT_FOUND, StatusCode::FORBIDDEN] {
        let response = render(&pages, status, &ctx(), HTML);
        assert_eq!(response.status(), status);
        assert_common_headers(&response, "text/html; charset=utf-8");
        assert!(
            response.body().contains("<h1"),
            "the default page: {}",
            response.body()
        );
    }
    // Pages that don't panic still use the team's layout.
    let response = render(&pages, StatusCode::INTERNAL_SERVER_ERROR, &ctx(), HTML);
    assert!(response.body().contains("wrapped"));
}
