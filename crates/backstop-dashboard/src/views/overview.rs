//! The overview: traffic, errors and latency for the range, what is new or back, the
//! slowest routes and the worst performance problems.

use backstop_store::{
    Issue, IssueQuery, IssueSort, IssueStatus, PerfIssueQuery, RequestQuery, RouteQuery, RouteSort,
    StoreError, StoreReader,
};
use maud::{Markup, html};

use super::{Ctx, Page, Section, empty, enc, layout, level_badge, range_picker, status_badge};
use crate::charts;
use crate::format::{ago, count, dur, pct};

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let range = ctx.range();
    let buckets = range.buckets(ctx.now);
    let series = reader.request_series(&RequestQuery::new(), buckets)?;
    let (requests, errors, p95) = (series.total.count, series.total.errors, series.total.p95);
    let series = series.points;
    let error_rate = if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    };

    let new_issues: Vec<Issue> = reader
        .issues(
            &IssueQuery::new()
                .status(IssueStatus::Unresolved)
                .sort(IssueSort::FirstSeen)
                .since(buckets.since)
                .limit(8),
        )?
        .into_iter()
        .filter(|i| i.first_seen >= buckets.since)
        .collect();
    let regressed = reader.issues(&IssueQuery::new().regressed().limit(8))?;
    let slowest = reader.routes(
        &RouteQuery::new()
            .since(buckets.since)
            .sort(RouteSort::P95)
            .limit(6),
    )?;
    let problems = reader.performance_issues(
        &PerfIssueQuery::new()
            .status(IssueStatus::Unresolved)
            .since(buckets.since)
            .sort(IssueSort::Count)
            .limit(6),
    )?;

    let counts: Vec<f64> = series.iter().map(|p| p.count as f64).collect();
    let rates: Vec<f64> = series
        .iter()
        .map(|p| {
            if p.count == 0 {
                0.0
            } else {
                p.errors as f64 / p.count as f64
            }
        })
        .collect();
    let p95s: Vec<f64> = series.iter().map(|p| p.p95.as_secs_f64()).collect();

    let axis = html! { div.axis { span { (range.start_label()) } span { "now" } } };
    let body = html! {
        div.head {
            h1 { "Overview" }
            (range_picker(ctx, "/"))
        }
        section.cards {
            (card("Requests", &count(requests), range.label(), html! { (charts::area(&counts, 80.0, "blue")) (axis) }))
            (card("Error rate", &pct(error_rate), &format!("{} failed", count(errors)), html! { (charts::area(&rates, 80.0, "red")) (axis) }))
            (card("p95 latency", &dur(p95), "95% of requests were faster", html! { (charts::area(&p95s, 80.0, "violet")) (axis) }))
        }
        div.grid2 {
            section.panel {
                h2 { "New issues" }
                @if new_issues.is_empty() { (empty("No new issues in this range.")) }
                @else { (issue_list(ctx, &new_issues)) }
            }
            section.panel {
                h2 { "Regressed" }
                @if regressed.is_empty() { (empty("Nothing came back after being resolved.")) }
                @else { (issue_list(ctx, &regressed)) }
            }
            section.panel {
                h2 { "Slowest routes" }
                @if slowest.is_empty() { (empty("No requests recorded in this range.")) }
                @else {
                    div.table-wrap { table {
                        thead { tr { th { "Route" } th.num { "p95" } th.num { "Requests" } } }
                        tbody {
                            @for r in &slowest {
                                tr {
                                    td.wrap { a href={ (ctx.href("/performance/route")) "?name=" (enc(&r.name)) } { (r.name) } }
                                    td.num { (dur(r.p95)) }
                                    td.num { (count(r.count)) }
                                }
                            }
                        }
                    } }
                }
            }
            section.panel {
                h2 { "Top performance problems" }
                @if problems.is_empty() { (empty("No N+1, duplicate or slow queries found.")) }
                @else {
                    ul.rows {
                        @for p in &problems {
                            li {
                                a.title href=(ctx.href(&format!("/issues/{}", p.issue.id))) { span.kind { (p.kind.title()) } " " code { (p.issue.title) } }
                                span.meta { (p.route) " · " (count(p.issue.count)) " requests · " (ago(p.issue.last_seen, ctx.now)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Overview, "Overview", body)))
}

fn card(label: &str, value: &str, note: &str, chart: Markup) -> Markup {
    html! {
        article.card {
            h2 { (label) }
            p.big { (value) }
            p.note { (note) }
            (chart)
        }
    }
}

/// A short list of issues: title, culprit, counts.
pub(crate) fn issue_list(ctx: &Ctx<'_>, issues: &[Issue]) -> Markup {
    html! {
        ul.rows {
            @for i in issues {
                li {
                    a.title href=(ctx.href(&format!("/issues/{}", i.id))) { (i.title) }
                    span.meta {
                        (level_badge(i.level)) " " (status_badge(i.status, i.regressed)) " "
                        @if let Some(c) = &i.culprit { (c) " · " }
                        (count(i.count)) " events · " (ago(i.last_seen, ctx.now))
                    }
                }
            }
        }
    }
}
