//! Performance: the routes table, and one route in depth.

use std::time::Duration;

use backstop_store::{
    PerfIssueQuery, RequestQuery, RequestSummary, RouteQuery, RouteSort, StoreError, StoreReader,
};
use maud::{Markup, html};

use super::overview::issue_list;
use super::{Ctx, Page, Section, empty, enc, layout, range_picker};
use crate::charts;
use crate::format::{ago, count, dur, pct};

const SORTS: [(&str, RouteSort, &str); 4] = [
    ("requests", RouteSort::Count, "Requests"),
    ("p95", RouteSort::P95, "p95"),
    ("errors", RouteSort::ErrorRate, "Error rate"),
    ("queries", RouteSort::Queries, "Queries"),
];

/// Upper bounds of the duration histogram's bins.
const HISTOGRAM: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let range = ctx.range();
    let since = ctx.now - range.duration();
    let sort_key = ctx.params.get("sort").unwrap_or("requests");
    let sort = SORTS
        .iter()
        .find(|(k, _, _)| *k == sort_key)
        .map_or(RouteSort::Count, |(_, s, _)| *s);
    let routes = reader.routes(
        &RouteQuery::new()
            .since(since)
            .sort(sort)
            .apdex(ctx.config.apdex_threshold)
            .limit(100),
    )?;
    let minutes = range.duration().as_secs_f64() / 60.0;
    let sort_link = |key: &str, label: &&str| {
        html! {
            a.current[key == sort_key] href={ (ctx.href("/performance")) "?" (ctx.params.with("sort", key)) } { (label) }
        }
    };
    let body = html! {
        div.head {
            h1 { "Performance" }
            (range_picker(ctx, "/performance"))
        }
        @if routes.is_empty() {
            (empty("No requests recorded in this range."))
        } @else {
            p.meta.sorts { "Sort by " @for (i, (k, _, label)) in SORTS.iter().enumerate() { @if i > 0 { " · " } (sort_link(k, label)) }
                "· Apdex threshold " (dur(ctx.config.apdex_threshold)) }
            div.table-wrap { table.routes {
                thead { tr {
                    th { "Route" } th.num { "Requests" } th.num.wide { "Per min" } th.num { "Errors" }
                    th.num.wide { "p50" } th.num { "p95" } th.num.wide { "p99" } th.num.wide { "Queries" } th.num { "Apdex" }
                } }
                tbody {
                    @for r in &routes {
                        tr {
                            td.wrap { a href={ (ctx.href("/performance/route")) "?name=" (enc(&r.name)) } { (r.name) } }
                            td.num { (count(r.count)) }
                            td.num.wide { (format!("{:.2}", r.count as f64 / minutes)) }
                            td.num.bad[r.error_rate > 0.05] { (pct(r.error_rate)) }
                            td.num.wide { (dur(r.p50)) }
                            td.num { (dur(r.p95)) }
                            td.num.wide { (dur(r.p99)) }
                            td.num.wide { (format!("{:.1}", r.mean_queries)) }
                            td.num { (r.apdex.map_or("–".to_owned(), |a| format!("{a:.2}"))) }
                        }
                    }
                }
            } }
        }
    };
    Ok(Page::Html(layout(
        ctx,
        Section::Performance,
        "Performance",
        body,
    )))
}

pub(crate) fn route(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let Some(name) = ctx.params.get("name") else {
        return Ok(Page::NotFound(
            "Which route? The link lost its name.".into(),
        ));
    };
    let range = ctx.range();
    let buckets = range.buckets(ctx.now);
    let requests = RequestQuery::new().route(name).since(buckets.since);
    let stats = reader
        .routes(
            &RouteQuery::new()
                .route(name)
                .since(buckets.since)
                .apdex(ctx.config.apdex_threshold),
        )?
        .pop();
    let series = reader.request_series(&requests, buckets)?.points;
    let bounds: Vec<Duration> = HISTOGRAM
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect();
    let histogram = reader.duration_histogram(&requests, &bounds)?;
    let slowest = reader.slowest_requests(&requests.clone().limit(10))?;
    let recent = reader.recent_requests(&requests.clone().limit(10))?;
    let top = RouteQuery::new().since(buckets.since).limit(10);
    let spans = reader.span_totals(top.filter(), Some(name))?;
    let calls = reader.calls(top.filter(), Some(name))?;
    let caches = reader.caches(top.filter(), Some(name))?;
    let issues = reader.route_issues(name, 8)?;
    let problems = reader.performance_issue_count(&PerfIssueQuery::new().route(name))?;

    let p50s: Vec<f64> = series.iter().map(|p| p.p50.as_secs_f64()).collect();
    let p95s: Vec<f64> = series.iter().map(|p| p.p95.as_secs_f64()).collect();
    let p99s: Vec<f64> = series.iter().map(|p| p.p99.as_secs_f64()).collect();
    let peak = series.iter().map(|p| p.p99).max().unwrap_or_default();
    let counts: Vec<u64> = series.iter().map(|p| p.count).collect();
    let here = format!("/performance/route?name={}", enc(name));
    let axis = html! { div.axis { span { (range.start_label()) } span { "now" } } };
    let body = html! {
        div.head {
            div {
                div.crumbs { a href=(ctx.href("/performance")) { "Performance" } " / route" }
                h1.title.mono { (name) }
            }
            (range_picker(ctx, &here))
        }
        @if let Some(s) = &stats {
            dl.facts {
                div { dt { "Requests" } dd { (count(s.count)) } }
                div { dt { "Error rate" } dd { (pct(s.error_rate)) } }
                div { dt { "p50" } dd { (dur(s.p50)) } }
                div { dt { "p95" } dd { (dur(s.p95)) } }
                div { dt { "p99" } dd { (dur(s.p99)) } }
                div { dt { "Queries / request" } dd { (format!("{:.1}", s.mean_queries)) } }
                div { dt { "Apdex" } dd { (s.apdex.map_or("–".to_owned(), |a| format!("{a:.2}"))) } }
            }
        } @else {
            (empty("No requests for this route in this range."))
        }
        div.grid2 {
            section.panel {
                h2 { "Percentiles over time" }
                div.legend { span.key.p50 { "p50" } span.key.p95 { "p95" } span.key.p99 { "p99" } span { "peak " (dur(peak)) } }
                (charts::lines(&[(&p50s, "p50"), (&p95s, "p95"), (&p99s, "p99")], 90.0))
                (axis)
            }
            section.panel { h2 { "Requests over time" } (charts::bars(&counts, 90.0, "blue")) (axis) }
            section.panel {
                h2 { "Duration histogram" }
                (charts::bars(&histogram, 90.0, "teal"))
                div.axis {
                    span { "≤5 ms" } span { "≤100 ms" } span { "≤1 s" } span { ">10 s" }
                }
            }
            section.panel {
                h2 { "Related issues" }
                @if issues.is_empty() { (empty("No issues on this route.")) } @else { (issue_list(ctx, &issues)) }
                @if problems > 0 { p.meta { a href={ (ctx.href("/issues")) "?kind=performance&status=all&q=" (enc(name)) } { (problems) " performance problem(s) on this route →" } } }
            }
        }
        div.grid2 {
            section.panel { h2 { "Slowest requests" } (request_table(ctx, &slowest)) }
            section.panel { h2 { "Recent requests" } (request_table(ctx, &recent)) }
        }
        section.panel {
            h2 { "Spans and queries taking the most time" }
            @if spans.is_empty() { (empty("No spans recorded on this route.")) }
            @else {
                div.table-wrap { table.statements {
                    thead { tr { th { "Span" } th.num { "Runs" } th.num { "Total" } th.num.wide { "Mean" } } }
                    tbody {
                        @for s in &spans {
                            tr {
                                td.sqlcell {
                                    span.op { (s.op.as_deref().unwrap_or("span")) } " "
                                    @if s.op.as_deref().is_some_and(|op| op.starts_with("db")) {
                                        a href={ (ctx.href("/queries/statement")) "?sql=" (enc(&s.description)) } { code { (s.description) } }
                                    } @else { code { (s.description) } }
                                }
                                td.num { (count(s.count)) }
                                td.num { (dur(s.total)) }
                                td.num.wide { (dur(s.mean)) }
                            }
                        }
                    }
                } }
            }
        }
        div.grid2 {
            section.panel {
                h2 { "Outgoing calls" }
                @if calls.is_empty() { (empty("No outgoing HTTP calls recorded on this route.")) }
                @else {
                    div.table-wrap { table.statements {
                        thead { tr { th { "Call" } th.num { "Calls" } th.num { "Failed" } th.num { "p95" } } }
                        tbody {
                            @for c in &calls {
                                tr {
                                    td.sqlcell { code { (c.url) } }
                                    td.num { (count(c.count)) }
                                    td.num { (count(c.failed)) }
                                    td.num { (dur(c.p95)) }
                                }
                            }
                        }
                    } }
                }
            }
            section.panel {
                h2 { "Caches" }
                @if caches.is_empty() { (empty("No cache reads recorded on this route.")) }
                @else {
                    div.table-wrap { table.statements {
                        thead { tr { th { "Key prefix" } th.num { "Hits" } th.num { "Misses" } th.num { "Hit rate" } } }
                        tbody {
                            @for c in &caches {
                                tr {
                                    td.sqlcell { code { (c.prefix) } }
                                    td.num { (count(c.hits)) }
                                    td.num { (count(c.misses)) }
                                    td.num { (pct(c.hit_rate())) }
                                }
                            }
                        }
                    } }
                }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Performance, name, body)))
}

pub(crate) fn request_table(ctx: &Ctx<'_>, requests: &[RequestSummary]) -> Markup {
    html! {
        @if requests.is_empty() { (empty("None kept.")) }
        @else {
            div.table-wrap { table {
                thead { tr { th { "When" } th.num { "Status" } th.num { "Duration" } th.num { "Queries" } } }
                tbody {
                    @for r in requests {
                        tr {
                            td { a href=(ctx.href(&format!("/requests/{}", r.event_id))) { (ago(r.timestamp, ctx.now)) } }
                            td.num.bad[r.is_error] { (r.http_status.map_or_else(|| r.status.clone().unwrap_or_default(), |s| s.to_string())) }
                            td.num { (dur(r.duration)) }
                            td.num { (r.query_count) }
                        }
                    }
                }
            } }
        }
    }
}
