//! The non-HTML formats: RFC 9457 problem+json and plain text.

use std::fmt::Write;

use serde::Serialize;

use crate::context::DebugDetails;
use crate::pages::ErrorPage;

/// An RFC 9457 problem details document.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    instance: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<&'a DebugDetails>,
}

/// The problem+json body. `type` is `about:blank`, so `title` is the status's reason
/// phrase, as RFC 9457 asks; the page's own wording goes in `detail`.
pub(crate) fn json(page: &ErrorPage<'_>) -> String {
    let ctx = page.context();
    let problem = Problem {
        kind: "about:blank",
        title: page.status().canonical_reason().unwrap_or(page.title()),
        status: page.status().as_u16(),
        detail: page.detail().unwrap_or(page.message()),
        instance: &ctx.path,
        event_id: ctx.event_id.as_deref(),
        debug: page.debug_details(),
    };
    // Serialising borrowed strings and numbers into a String cannot fail.
    serde_json::to_string(&problem).unwrap_or_default()
}

/// The plain-text body.
pub(crate) fn text(page: &ErrorPage<'_>) -> String {
    let ctx = page.context();
    let labels = page.labels();
    let status = page.status();
    let mut out = String::with_capacity(256);
    // Writing into a String cannot fail.
    let _ = write!(out, "{} {}\n\n", status.as_u16(), page.title());
    let _ = writeln!(out, "{}", page.message());
    if let Some(detail) = page.detail() {
        let _ = writeln!(out, "\n{detail}");
    }
    if let Some(methods) = page.allowed_methods() {
        let _ = writeln!(out, "\n{} {methods}", labels.allowed_methods);
    }
    if let Some(seconds) = page.retry_after_seconds() {
        let _ = writeln!(
            out,
            "\n{}",
            labels
                .retry_after
                .replace("{seconds}", &seconds.to_string())
        );
    }
    if status == http::StatusCode::INTERNAL_SERVER_ERROR
        || (status.is_server_error() && ctx.event_id.is_some())
    {
        let _ = writeln!(out, "\n{}", labels.notified);
    }
    if let Some(id) = &ctx.event_id {
        let _ = writeln!(out, "{}: {id}", labels.reference);
    }
    if let Some(debug) = page.debug_details() {
        let _ = writeln!(out, "\n{}\n\nError: {}", labels.debug_banner, debug.message);
        for cause in &debug.chain {
            let _ = writeln!(out, "Caused by: {cause}");
        }
        if !debug.frames.is_empty() {
            let _ = writeln!(out, "\nBacktrace:");
        }
        for frame in &debug.frames {
            let marker = if frame.in_app { '*' } else { ' ' };
            let _ = write!(out, " {marker} {}", frame.function);
            if let Some(file) = &frame.file {
                let _ = write!(out, " at {file}");
                if let Some(line) = frame.line {
                    let _ = write!(out, ":{line}");
                }
            }
            out.push('\n');
        }
        let _ = writeln!(out, "\nRequest: {} {}", ctx.method, ctx.path);
        for (name, value) in &debug.request {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
    out
}
