//! One request: its span waterfall (queries, outgoing calls and cache operations) with
//! N+1 groups and duplicates marked, the errors of its trace, and "copy as curl"
//! without secrets.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use backstop_core::protocol::{EventId, ProblemKind, Request, SpanId};
use backstop_core::{FILTERED, SECRET_HEADERS, SECRET_KEYS};
use backstop_store::{StoreError, StoreReader};
use maud::html;

use super::{Ctx, Page, Section, empty, layout, level_badge};
use crate::format::{ago, dur, stamp};

/// Spans drawn at most; the rest are counted, so a request with a thousand spans stays
/// a page of reasonable size.
const MAX_ROWS: usize = 250;

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>, id: &str) -> Result<Page, StoreError> {
    let Ok(id) = id.parse::<EventId>() else {
        return Ok(Page::NotFound("There is no such request.".into()));
    };
    let Some(detail) = reader.request(id)? else {
        return Ok(Page::NotFound(
            "This request is no longer kept: retention pruned it.".into(),
        ));
    };
    let t = &detail.transaction;
    let s = &detail.summary;
    let problems = reader.transaction_problems(id)?;
    let errors = match s.trace_id {
        Some(trace) => reader.trace_events(trace)?,
        None => Vec::new(),
    };

    let mut marks: HashMap<SpanId, ProblemKind> = HashMap::new();
    for p in &problems {
        for span in &p.span_ids {
            marks.entry(*span).or_insert(p.kind);
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for span in &t.spans {
        if is_query(span.op.as_deref())
            && let Some(d) = &span.description
        {
            *seen.entry(d.as_str()).or_default() += 1;
        }
    }
    let duplicates: HashSet<&str> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(d, _)| d)
        .collect();

    let start = t.start_timestamp;
    let total = t
        .timestamp
        .duration_since(start)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-6);
    let offset = |at: SystemTime| at.duration_since(start).unwrap_or_default().as_secs_f64();
    let mut spans: Vec<_> = t.spans.iter().collect();
    spans.sort_by_key(|s| s.start_timestamp);

    let body = html! {
        div.head {
            div {
                div.crumbs {
                    a href=(ctx.href("/performance")) { "Performance" } " / "
                    a href={ (ctx.href("/performance/route")) "?name=" (super::enc(&s.name)) } { (s.name) }
                    " / request"
                }
                h1.title.mono { (s.name) }
            }
        }
        dl.facts {
            div { dt { "Status" } dd.bad[s.is_error] { (s.http_status.map_or_else(|| s.status.clone().unwrap_or_default(), |c| c.to_string())) } }
            div { dt { "Duration" } dd { (dur(s.duration)) } }
            div { dt { "Spans" } dd { (s.span_count) } }
            div { dt { "Queries" } dd { (s.query_count) } }
            div { dt { "When" } dd { span title=(stamp(s.timestamp)) { (ago(s.timestamp, ctx.now)) } } }
            @if let Some(r) = &s.release { div { dt { "Release" } dd { code { (r) } } } }
        }
        @if !problems.is_empty() {
            section.panel.warn {
                h2 { "Performance problems" }
                ul.rows {
                    @for p in &problems {
                        li {
                            a.title href=(ctx.href(&format!("/issues/{}", p.issue_id))) { span.kind { (p.kind.title()) } " × " (p.count) " · " (dur(p.duration)) }
                            pre.block.sql { (p.description) }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "Spans" }
            div.legend {
                span.key.query { "query" } span.key.call { "HTTP call" } span.key.cache { "cache" } span.key.nplus1 { "N+1" } span.key.dup { "duplicate" } span.key.other { "other" }
            }
            @if spans.is_empty() { (empty("This request recorded no spans.")) }
            ol.waterfall {
                @for span in spans.iter().take(MAX_ROWS) {
                    @let from = offset(span.start_timestamp) / total * 1000.0;
                    @let width = (span.timestamp.duration_since(span.start_timestamp).unwrap_or_default().as_secs_f64() / total * 1000.0).max(2.0);
                    @let desc = span.description.as_deref().unwrap_or("");
                    @let class = match marks.get(&span.span_id) {
                        Some(ProblemKind::NPlusOne | ProblemKind::NPlusOneApiCalls) => "nplus1",
                        Some(_) => "dup",
                        None if is_query(span.op.as_deref()) && duplicates.contains(desc) => "dup",
                        None if is_query(span.op.as_deref()) => "query",
                        None if span.op.as_deref() == Some("http.client") => "call",
                        None if span.op.as_deref().is_some_and(|op| op.starts_with("cache.")) => "cache",
                        None => "other",
                    };
                    li.(class) {
                        div.label {
                            span.op { (span.op.as_deref().unwrap_or("span")) }
                            span.desc title=(desc) { (desc) }
                            span.took { (dur(span.timestamp.duration_since(span.start_timestamp).unwrap_or_default())) }
                        }
                        svg.bar viewBox="0 0 1000 8" preserveAspectRatio="none" aria-hidden="true" {
                            rect.track x="0" y="0" width="1000" height="8" {}
                            rect.span x=(format!("{:.1}", from.min(998.0))) y="0" width=(format!("{:.1}", width.min(1000.0 - from.min(998.0)))) height="8" {}
                        }
                    }
                }
            }
            @if spans.len() > MAX_ROWS { p.meta { (spans.len() - MAX_ROWS) " more spans not drawn." } }
        }
        section.panel {
            h2 { "Errors in this trace" }
            @if errors.is_empty() { (empty("No errors were recorded in this trace.")) }
            @else {
                ul.rows {
                    @for e in &errors {
                        li {
                            a.title href={ (ctx.href(&format!("/issues/{}", e.issue_id))) "?event=" (e.event_id) } { (e.title) }
                            span.meta { (level_badge(e.level)) " " (ago(e.timestamp, ctx.now)) }
                        }
                    }
                }
            }
        }
        @if let Some(req) = &t.request {
            section.panel {
                h2 { "Copy as curl" }
                p.meta { "Secret headers and filtered values are left out." }
                pre.block.curl { (curl(req)) }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Performance, &s.name, body)))
}

fn is_query(op: Option<&str>) -> bool {
    op.is_some_and(|op| op.starts_with("db"))
}

/// The request as a curl command, without secrets: no secret header, no value the
/// scrubber filtered, no header or body whose name looks secret.
pub(crate) fn curl(req: &Request) -> String {
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        SECRET_HEADERS.contains(&name.as_str()) || SECRET_KEYS.iter().any(|k| name.contains(k))
    };
    let mut out = String::from("curl");
    if let Some(m) = &req.method
        && m != "GET"
    {
        out.push_str(" -X ");
        out.push_str(&quote(m));
    }
    let mut url = req.url.clone().unwrap_or_default();
    if let Some(q) = &req.query_string
        && !q.is_empty()
        && !url.contains('?')
    {
        url.push('?');
        url.push_str(q);
    }
    out.push(' ');
    out.push_str(&quote(&url));
    for (k, v) in &req.headers {
        if secret(k) || v.contains(FILTERED) || k.eq_ignore_ascii_case("host") {
            continue;
        }
        out.push_str(" \\\n  -H ");
        out.push_str(&quote(&format!("{k}: {v}")));
    }
    if let Some(data) = &req.data
        && !data.contains(FILTERED)
    {
        out.push_str(" \\\n  --data-raw ");
        out.push_str(&quote(data));
    }
    out
}

/// Single-quoted for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::curl;
    use backstop_core::protocol::Request;

    #[test]
    fn curl_leaves_out_secrets() {
        let mut req = Request {
            method: Some("POST".into()),
            url: Some("http://shop.example/login".into()),
            ..Request::default()
        };
        req.headers
            .insert("authorization".into(), "Bearer abc".into());
        req.headers.insert("x-session-token".into(), "t0k".into());
        req.headers.insert("accept".into(), "text/html".into());
        req.headers.insert("x-note".into(), "[Filtered]".into());
        req.data = Some("it's".into());
        let c = curl(&req);
        assert!(c.contains("-X 'POST'"));
        assert!(c.contains("'accept: text/html'"));
        assert!(!c.contains("Bearer"));
        assert!(!c.contains("t0k"));
        assert!(!c.contains("x-note"));
        assert!(c.contains(r"'it'\''s'"));
    }
}
