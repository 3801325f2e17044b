//! The issues list: filters, sort, keyset pages, a sparkline per row, bulk actions.

use backstop_store::{
    Cursor, IssueCategory, IssueId, IssueQuery, IssueSort, IssueStatus, StoreError, StoreReader,
};
use maud::html;

use super::{Ctx, Page, Params, Section, csrf, empty, enc, layout, level_badge, status_badge};
use crate::charts;
use crate::format::{ago, count};

const PAGE: usize = 50;

const SORTS: [(&str, IssueSort, &str); 4] = [
    ("last_seen", IssueSort::LastSeen, "Last seen"),
    ("first_seen", IssueSort::FirstSeen, "First seen"),
    ("events", IssueSort::Count, "Events"),
    ("users", IssueSort::Users, "Users"),
];

/// The query the list's parameters ask for, without its page.
fn query(params: &Params) -> IssueQuery {
    let mut q = IssueQuery::new().limit(PAGE);
    match params.get("status") {
        Some("regressed") => q = q.regressed(),
        Some("all") => {}
        Some(s) => {
            if let Ok(status) = s.parse::<IssueStatus>() {
                q = q.status(status);
            }
        }
        None => q = q.status(IssueStatus::Unresolved),
    }
    match params.get("kind") {
        Some("error") => q = q.category(IssueCategory::Error),
        Some("performance") => q = q.category(IssueCategory::Performance),
        _ => {}
    }
    if let Some(level) = params.get("level") {
        q = q.level(level);
    }
    if let Some(env) = params.get("environment") {
        q = q.environment(env);
    }
    if let Some(release) = params.get("release") {
        q = q.release(release);
    }
    if let Some(text) = params.get("q") {
        q = q.text(text);
    }
    let sort = params
        .get("sort")
        .and_then(|s| SORTS.iter().find(|(k, _, _)| *k == s))
        .map_or(IssueSort::LastSeen, |(_, sort, _)| *sort);
    q.sort(sort)
}

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let base = query(&ctx.params);
    let sort = base.sort_order();
    let mut q = base.clone();
    if let Some(after) = ctx
        .params
        .get("after")
        .and_then(|a| a.parse::<Cursor>().ok())
    {
        q = q.after(after);
    }
    let issues = reader.issues(&q)?;
    let total = reader.issue_count(&base)?;
    let buckets = ctx.range().buckets(ctx.now);
    let ids: Vec<IssueId> = issues.iter().map(|i| i.id).collect();
    let series = reader.issue_series(&ids, buckets)?;
    let next = (issues.len() == PAGE)
        .then(|| issues.last().map(|last| Cursor::after_issue(last, sort)))
        .flatten();
    let p = &ctx.params;
    let selected =
        |key: &str, value: &str, default: bool| p.get(key).map_or(default, |v| v == value);
    let back = format!("{}?{}", ctx.href("/issues"), p.without("csrf"));

    let body = html! {
        div.head {
            h1 { "Issues" }
            span.meta { (count(total)) " matching" }
        }
        form.filters method="get" action=(ctx.href("/issues")) {
            label { span { "Status" }
                select name="status" {
                    option value="unresolved" selected[selected("status", "unresolved", true)] { "Unresolved" }
                    option value="regressed" selected[selected("status", "regressed", false)] { "Regressed" }
                    option value="resolved" selected[selected("status", "resolved", false)] { "Resolved" }
                    option value="ignored" selected[selected("status", "ignored", false)] { "Ignored" }
                    option value="all" selected[selected("status", "all", false)] { "Any" }
                }
            }
            label { span { "Kind" }
                select name="kind" {
                    option value="" { "Any" }
                    option value="error" selected[selected("kind", "error", false)] { "Errors" }
                    option value="performance" selected[selected("kind", "performance", false)] { "Performance" }
                }
            }
            label { span { "Level" }
                select name="level" {
                    option value="" { "Any" }
                    @for l in ["fatal", "error", "warning", "info", "debug"] {
                        option value=(l) selected[selected("level", l, false)] { (l) }
                    }
                }
            }
            label { span { "Sort" }
                select name="sort" {
                    @for (key, _, label) in SORTS {
                        option value=(key) selected[selected("sort", key, key == "last_seen")] { (label) }
                    }
                }
            }
            label { span { "Environment" } input type="text" name="environment" value=[p.get("environment")] placeholder="any"; }
            label { span { "Release" } input type="text" name="release" value=[p.get("release")] placeholder="any"; }
            label.grow { span { "Search" } input type="search" name="q" value=[p.get("q")] placeholder="Title or culprit"; }
            @if let Some(r) = p.get("range") { input type="hidden" name="range" value=(r); }
            button type="submit" { "Filter" }
        }
        @if issues.is_empty() {
            (empty("No issues match these filters."))
        } @else {
            form method="post" action=(ctx.href("/issues")) {
                (csrf(ctx))
                input type="hidden" name="back" value=(back);
                div.bulk {
                    span { "With the selected:" }
                    button name="action" value="resolve" { "Resolve" }
                    button name="action" value="ignore" { "Ignore" }
                    button name="action" value="unresolve" { "Unresolve" }
                }
                div.table-wrap { table.issues {
                    thead { tr {
                        th.check { span.sr { "Select" } }
                        th { "Issue" }
                        th.spark-col { (ctx.range().label()) }
                        th.num { "Events" }
                        th.num.users { "Users" }
                        th.num.seen { "Last seen" }
                    } }
                    tbody {
                        @for i in &issues {
                            tr {
                                td.check { input type="checkbox" name="id" value=(i.id) aria-label="Select"; }
                                td.main {
                                    a.title href=(ctx.href(&format!("/issues/{}", i.id))) { (i.title) }
                                    div.meta {
                                        (level_badge(i.level)) " " (status_badge(i.status, i.regressed)) " "
                                        @if let Some(kind) = i.kind.problem() { span.kind { (kind.title()) } " " }
                                        @if let Some(c) = &i.culprit { span.culprit { (c) } }
                                    }
                                }
                                td.spark-col { (charts::sparkline(series.get(&i.id).map_or(&[][..], |s| &s[..]))) }
                                td.num { (count(i.count)) }
                                td.num.users { (count(i.users)) }
                                td.num.seen { (ago(i.last_seen, ctx.now)) }
                            }
                        }
                    }
                } }
            }
            nav.pager {
                @if p.get("after").is_some() {
                    a href={ (ctx.href("/issues")) "?" (p.with("after", "")) } { "← First page" }
                }
                @if let Some(next) = next {
                    a href={ (ctx.href("/issues")) "?" (p.with("after", "")) "&after=" (enc(&next.to_string())) } { "Next page →" }
                }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Issues, "Issues", body)))
}

/// Resolves, ignores or reopens every selected issue, then goes back to the list.
pub(crate) fn bulk(reader: &StoreReader, ctx: &Ctx<'_>, form: &Params) -> Result<Page, StoreError> {
    let status = match form.get("action") {
        Some("resolve") => IssueStatus::Resolved,
        Some("ignore") => IssueStatus::Ignored,
        Some("unresolve") => IssueStatus::Unresolved,
        _ => return Ok(Page::NotFound("Unknown action.".into())),
    };
    for id in form.all("id").filter_map(|id| id.parse::<i64>().ok()) {
        reader.set_issue_status(IssueId(id), status)?;
    }
    Ok(Page::Redirect(back_to(ctx, form.get("back"), "/issues")))
}

/// Where a form goes back to: its `back` field when it stays inside the dashboard.
pub(crate) fn back_to(ctx: &Ctx<'_>, back: Option<&str>, fallback: &str) -> String {
    match back {
        Some(b) if b.starts_with(&format!("{}/", ctx.base)) && !b.starts_with("//") => b.to_owned(),
        _ => ctx.href(fallback),
    }
}
