//! `pages_render`: the cost of rendering each error page, as the adapters call it.
//!
//! Run with `cargo bench -p backstop-pages --bench pages_render`; results are in
//! `docs/performance.md`.

use std::hint::black_box;

use backstop_pages::{BacktraceFrame, DebugDetails, ErrorPages, PageContext, STATUSES, Theme};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Method, StatusCode, header};

fn pages() -> ErrorPages {
    ErrorPages::new(
        Theme::new("Acme")
            .home_url("https://acme.example/")
            .support_email("help@acme.example")
            .footer_link("Status", "https://status.acme.example/")
            .footer_link("Privacy", "/privacy"),
    )
}

fn context() -> PageContext {
    PageContext::new(Method::GET, "/orders/42?page=2")
        .with_event_id("0f8e2d4c6b1a4f3e9d7c5b3a1f2e4d6c")
        .with_detail("Failed to deserialize the JSON body: missing field `email`")
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("30"))
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
}

fn html_pages(c: &mut Criterion) {
    let pages = pages();
    let ctx = context();
    let accept = HeaderValue::from_static(
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    );
    let mut group = c.benchmark_group("html");
    for status in STATUSES {
        group.bench_function(status.as_str(), |b| {
            b.iter(|| pages.render(black_box(status), black_box(&ctx), Some(&accept), false));
        });
    }
    group.finish();
}

fn other_formats(c: &mut Criterion) {
    let pages = pages();
    let ctx = context();
    let json = HeaderValue::from_static("application/json");
    let text = HeaderValue::from_static("*/*");
    let html = HeaderValue::from_static("text/html");
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    let mut group = c.benchmark_group("format");
    group.bench_function("problem_json_500", |b| {
        b.iter(|| pages.render(black_box(status), black_box(&ctx), Some(&json), false));
    });
    group.bench_function("plain_text_500", |b| {
        b.iter(|| pages.render(black_box(status), black_box(&ctx), Some(&text), false));
    });
    group.bench_function("head_500", |b| {
        b.iter(|| pages.render(black_box(status), black_box(&ctx), Some(&html), true));
    });

    let debug = pages.clone().debug(true);
    let mut details = DebugDetails::new("called `Option::unwrap()` on a `None` value")
        .with_cause("database is locked")
        .with_request_field("user-agent", "Mozilla/5.0")
        .with_request_field("accept", "text/html");
    for i in 0..30 {
        details = details.with_frame(
            BacktraceFrame::new(format!("shop::module{i}::function{i}"))
                .at(format!("src/module{i}.rs"), 10 + i)
                .in_app(i % 3 == 0),
        );
    }
    let debug_ctx = context().with_debug(details);
    group.bench_function("debug_page_500_30_frames", |b| {
        b.iter(|| debug.render(black_box(status), black_box(&debug_ctx), Some(&html), false));
    });
    group.finish();
}

criterion_group!(benches, html_pages, other_formats);
criterion_main!(benches);
