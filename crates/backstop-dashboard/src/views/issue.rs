//! One issue: its header and actions, events over time, tag distributions, and one
//! event in full.

use backstop_core::protocol::{Event, EventId, Frame};
use backstop_store::{IssueDetail, IssueId, IssueStatus, StoreError, StoreReader};
use maud::{Markup, html};

use super::issues::back_to;
use super::{Ctx, Page, Params, Section, csrf, empty, level_badge, status_badge};
use crate::charts;
use crate::format::{ago, count, dur, stamp};

/// Frames shown before the rest are folded away.
const MAX_FRAMES: usize = 60;

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>, id: &str) -> Result<Page, StoreError> {
    let Ok(id) = id.parse::<i64>().map(IssueId) else {
        return Ok(Page::NotFound("There is no such issue.".into()));
    };
    let Some(detail) = reader.issue(id, 1)? else {
        return Ok(Page::NotFound(
            "There is no such issue: it was deleted, or pruned by retention.".into(),
        ));
    };
    let issue = &detail.issue;
    let buckets = ctx.range().buckets(ctx.now);
    let series = reader
        .issue_series(&[id], buckets)?
        .remove(&id)
        .unwrap_or_default();

    let main = if issue.kind.problem().is_some() {
        performance_body(reader, ctx, id)?
    } else {
        error_body(reader, ctx, &detail, &series)?
    };
    let body = html! {
        (header(ctx, &detail))
        (main)
    };
    Ok(Page::Html(layout_issue(ctx, &issue.title, body)))
}

fn layout_issue(ctx: &Ctx<'_>, title: &str, body: Markup) -> Markup {
    super::layout(ctx, Section::Issues, title, body)
}

fn header(ctx: &Ctx<'_>, detail: &IssueDetail) -> Markup {
    let issue = &detail.issue;
    let here = ctx.href(&format!("/issues/{}", issue.id));
    let action = |value: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action=(here) {
                (csrf(ctx))
                input type="hidden" name="back" value=(here);
                button.(class) name="action" value=(value) { (label) }
            }
        }
    };
    html! {
        section.issue-head {
            div.crumbs { a href=(ctx.href("/issues")) { "Issues" } " / " (issue.id) }
            h1.title { (issue.title) }
            @if let Some(c) = &issue.culprit { p.culprit.mono { (c) } }
            div.meta {
                (level_badge(issue.level)) " " (status_badge(issue.status, issue.regressed))
                @if let Some(kind) = issue.kind.problem() { " " span.kind { (kind.title()) } }
            }
            div.actions {
                @if issue.status != IssueStatus::Resolved { (action("resolve", "Resolve", "primary")) }
                @if issue.status != IssueStatus::Ignored { (action("ignore", "Ignore", "")) }
                @if issue.status != IssueStatus::Unresolved { (action("unresolve", "Unresolve", "")) }
                (action("delete", "Delete", "danger"))
            }
            dl.facts {
                div { dt { "Events" } dd { (count(issue.count)) } }
                div { dt { "Users" } dd { (count(issue.users)) } }
                div { dt { "First seen" } dd {
                    span title=(stamp(issue.first_seen)) { (ago(issue.first_seen, ctx.now)) }
                    @if let Some(r) = &issue.first_release { " in " code { (r) } }
                } }
                div { dt { "Last seen" } dd {
                    span title=(stamp(issue.last_seen)) { (ago(issue.last_seen, ctx.now)) }
                    @if let Some(r) = &issue.last_release { " in " code { (r) } }
                } }
            }
        }
    }
}

fn error_body(
    reader: &StoreReader,
    ctx: &Ctx<'_>,
    detail: &IssueDetail,
    series: &[u64],
) -> Result<Markup, StoreError> {
    let id = detail.issue.id;
    let tags = reader.tag_distributions(id, 500)?;
    let chosen: Option<EventId> = ctx
        .params
        .get("event")
        .and_then(|e| e.parse().ok())
        .or_else(|| detail.latest_events.first().map(|e| e.event_id));
    let event = match chosen {
        Some(e) => reader.event(e)?.filter(|s| s.issue_id == id),
        None => None,
    };
    let links = match &event {
        Some(e) => reader.event_links(id, e.event.event_id)?,
        None => Default::default(),
    };
    let transaction = match event.as_ref().and_then(|e| trace_id(&e.event)) {
        Some(trace) => reader.trace_request(trace)?,
        None => None,
    };
    let here = ctx.href(&format!("/issues/{id}"));
    let link = |label: &str, target: Option<EventId>| {
        html! {
            @match target {
                Some(e) => a href={ (here) "?event=" (e) } { (label) },
                None => span.off { (label) },
            }
        }
    };
    Ok(html! {
        div.grid2 {
            section.panel {
                h2 { "Events · " (ctx.range().label()) }
                (charts::bars(series, 90.0, "red"))
                div.axis { span { (ctx.range().start_label()) } span { "now" } }
            }
            section.panel {
                h2 { "Tags" }
                @if tags.is_empty() { (empty("No tags.")) }
                div.tags {
                    @for t in &tags {
                        div.tag {
                            h3 { (t.key) }
                            @for (value, n) in &t.values {
                                div.tagrow {
                                    span.val { (value) }
                                    span.pc { (format!("{:.0}%", *n as f64 * 100.0 / t.total.max(1) as f64)) }
                                    (charts::share(*n as f64 / t.total.max(1) as f64))
                                }
                            }
                        }
                    }
                }
            }
        }
        @match &event {
            None => section.panel { (empty("No event of this issue is kept any more.")) },
            Some(stored) => section.panel.event {
                div.event-nav {
                    h2 { "Event " code { (stored.event.event_id) } }
                    nav {
                        (link("« First", links.first)) (link("‹ Previous", links.previous))
                        (link("Next ›", links.next)) (link("Latest »", links.latest))
                    }
                }
                p.meta {
                    (stamp(stored.event.timestamp))
                    @if let Some(r) = &stored.event.release { " · " code { (r) } }
                    @if let Some(e) = &stored.event.environment { " · " (e) }
                    @if let Some(t) = transaction {
                        " · " a href=(ctx.href(&format!("/requests/{t}"))) { "View the request's transaction" }
                    }
                }
                (event_markup(&stored.event))
            },
        }
    })
}

fn trace_id(event: &Event) -> Option<backstop_core::protocol::TraceId> {
    event
        .contexts
        .get("trace")
        .and_then(|t| t.get("trace_id"))
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse().ok())
}

/// An event in full: exceptions, message, breadcrumbs, request, user, contexts, tags,
/// raw JSON.
pub(crate) fn event_markup(event: &Event) -> Markup {
    html! {
        @if let Some(m) = &event.message {
            h3 { "Message" }
            pre.block { (m) }
        }
        @if !event.exception.values.is_empty() {
            h3 { "Exception" }
            @for (i, ex) in event.exception.values.iter().rev().enumerate() {
                div.exception {
                    p.extitle {
                        @if i > 0 { span.caused { "Caused by" } " " }
                        strong { (ex.ty) } @if let Some(v) = &ex.value { ": " (v) }
                    }
                    @if let Some(st) = &ex.stacktrace { (frames(&st.frames)) }
                }
            }
        }
        @if !event.breadcrumbs.values.is_empty() {
            h3 { "Breadcrumbs" }
            ol.timeline {
                @for b in &event.breadcrumbs.values {
                    li {
                        span.when { (stamp(b.timestamp)) }
                        span.cat { (b.category.as_deref().unwrap_or(&b.ty)) }
                        span.level.(b.level.to_string()) { (b.level.to_string()) }
                        @if let Some(m) = &b.message { span.msg { (m) } }
                        @if !b.data.is_empty() { code.data { (serde_json::Value::Object(b.data.clone())) } }
                    }
                }
            }
        }
        @if let Some(req) = &event.request {
            h3 { "Request" }
            dl.kv {
                @if let Some(m) = &req.method { dt { "Method" } dd { (m) } }
                @if let Some(u) = &req.url { dt { "URL" } dd.mono { (u) } }
                @if let Some(q) = &req.query_string { dt { "Query" } dd.mono { (q) } }
                @for (k, v) in &req.headers { dt { (k) } dd.mono { (v) } }
            }
        }
        @if let Some(user) = &event.user {
            h3 { "User" }
            dl.kv {
                @if let Some(v) = &user.id { dt { "ID" } dd { (v) } }
                @if let Some(v) = &user.username { dt { "Username" } dd { (v) } }
                @if let Some(v) = &user.email { dt { "E-mail" } dd { (v) } }
                @if let Some(v) = &user.ip_address { dt { "IP address" } dd { (v) } }
                @for (k, v) in &user.other { dt { (k) } dd { (v) } }
            }
        }
        @if !event.tags.is_empty() {
            h3 { "Tags" }
            dl.kv { @for (k, v) in &event.tags { dt { (k) } dd { (v) } } }
        }
        @if !event.contexts.is_empty() {
            h3 { "Contexts" }
            dl.kv {
                @for (k, v) in &event.contexts {
                    dt { (k) } dd.mono { (serde_json::to_string(v).unwrap_or_default()) }
                }
            }
        }
        details.raw {
            summary { "Raw JSON" }
            pre.block { (serde_json::to_string_pretty(event).unwrap_or_default()) }
        }
    }
}

/// Frames, most recent call first: in-app frames shown, runs of library frames folded.
fn frames(frames: &[Frame]) -> Markup {
    let ordered: Vec<&Frame> = frames.iter().rev().take(MAX_FRAMES).collect();
    let mut groups: Vec<(bool, Vec<&Frame>)> = Vec::new();
    for f in ordered {
        let in_app = f.in_app.unwrap_or(false);
        match groups.last_mut() {
            Some((app, list)) if *app == in_app => list.push(f),
            _ => groups.push((in_app, vec![f])),
        }
    }
    html! {
        ol.frames {
            @for (in_app, list) in &groups {
                @if *in_app {
                    @for f in list { li.app { (frame(f)) } }
                } @else {
                    li.lib { details {
                        summary { (list.len()) " library frame" @if list.len() != 1 { "s" } }
                        ol { @for f in list { li { (frame(f)) } } }
                    } }
                }
            }
        }
    }
}

fn frame(f: &Frame) -> Markup {
    html! {
        span.fn { (f.function.as_deref().unwrap_or("<unknown>")) }
        @if let Some(file) = f.filename.as_deref().or(f.abs_path.as_deref()) {
            span.at { (file) @if let Some(l) = f.lineno { ":" (l) } }
        }
    }
}

fn performance_body(
    reader: &StoreReader,
    ctx: &Ctx<'_>,
    id: IssueId,
) -> Result<Markup, StoreError> {
    let detail = reader.performance_issue(id, 30)?;
    Ok(html! {
        @if let Some(d) = detail {
            section.panel {
                h2 { (d.issue.kind.title()) " on " code { (d.issue.route) } }
                pre.block.sql { (d.issue.issue.title) }
                h3 { "Latest occurrences" }
                @if d.occurrences.is_empty() { (empty("The transactions it was found in have been pruned.")) }
                @else {
                    div.table-wrap { table {
                        thead { tr { th { "When" } th.num { "Queries" } th.num { "Time" } th { "Request" } } }
                        tbody {
                            @for o in &d.occurrences {
                                tr {
                                    td { (ago(o.timestamp, ctx.now)) }
                                    td.num { (o.count) }
                                    td.num { (dur(o.duration)) }
                                    td { a href=(ctx.href(&format!("/requests/{}", o.transaction_event_id))) { "Waterfall →" } }
                                }
                            }
                        }
                    } }
                }
            }
        }
    })
}

/// Resolve, ignore, unresolve or delete one issue.
pub(crate) fn act(
    reader: &StoreReader,
    ctx: &Ctx<'_>,
    id: &str,
    form: &Params,
) -> Result<Page, StoreError> {
    let Ok(id) = id.parse::<i64>().map(IssueId) else {
        return Ok(Page::NotFound("There is no such issue.".into()));
    };
    let status = match form.get("action") {
        Some("resolve") => IssueStatus::Resolved,
        Some("ignore") => IssueStatus::Ignored,
        Some("unresolve") => IssueStatus::Unresolved,
        Some("delete") => {
            reader.delete_issue(id)?;
            return Ok(Page::Redirect(ctx.href("/issues")));
        }
        _ => return Ok(Page::NotFound("Unknown action.".into())),
    };
    if !reader.set_issue_status(id, status)? {
        return Ok(Page::NotFound("There is no such issue.".into()));
    }
    Ok(Page::Redirect(back_to(
        ctx,
        form.get("back"),
        &format!("/issues/{id}"),
    )))
}
