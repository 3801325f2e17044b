//! Alerts: the history of every alert (sent, failed, or suppressed by its interval),
//! and a button that sends a test notification through every configured channel.

use backstop_store::{StoreError, StoreReader};
use maud::html;

use super::{Ctx, Page, Section, csrf, empty, layout};
use crate::format::{ago, stamp};

/// Alerts on one page of the history.
const PAGE: usize = 50;

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let before = ctx.params.get("before").and_then(|b| b.parse::<i64>().ok());
    let alerts = reader.alert_history(PAGE, before)?;
    let next = (alerts.len() == PAGE)
        .then(|| alerts.last().map(|a| a.id))
        .flatten();
    let test = reader.alert_test();
    let body = html! {
        div.head { h1 { "Alerts" } }
        section.panel {
            h2 { "Channels" }
            @match test {
                Some(test) => {
                    p.meta { "Configured: " (test.channels().join(", ")) }
                    form method="post" action=(ctx.href("/alerts/test")) {
                        (csrf(ctx))
                        button type="submit" { "Send a test notification" }
                    }
                    p.meta { "One attempt per channel; each outcome appears in the history below." }
                }
                None => p.none {
                    "No alert channel is configured in this process. Set the BACKSTOP_ALERT_* variables "
                    "(see docs/alerts.md), or run backstop alert test from a shell."
                },
            }
        }
        section.panel {
            h2 { "History" }
            @if alerts.is_empty() {
                (empty("No alert has fired yet."))
            } @else {
                div.table-wrap { table {
                    thead { tr { th { "When" } th { "Status" } th { "Alert" } } }
                    tbody {
                        @for a in &alerts {
                            @let alert = &a.alert;
                            tr {
                                td.num title=(stamp(alert.at)) { (ago(alert.at, ctx.now)) }
                                td { span.badge.(alert.status.as_str()) { (alert.status.as_str()) } }
                                td.main {
                                    @match alert.issue {
                                        Some(issue) => a.title href=(ctx.href(&format!("/issues/{}", issue.0))) { (alert.title) },
                                        None => span.title { (alert.title) },
                                    }
                                    div.meta {
                                        "rule " span.mono { (alert.rule) }
                                        @if let Some(channel) = &alert.channel { " · " (channel) }
                                        " · " (alert.attempts) @if alert.attempts == 1 { " attempt" } @else { " attempts" }
                                    }
                                    @if let Some(error) = &alert.error { div.meta.bad { (error) } }
                                }
                            }
                        }
                    }
                } }
            }
            nav.pager {
                @if before.is_some() {
                    a href=(ctx.href("/alerts")) { "← Newest" }
                }
                @if let Some(next) = next {
                    a href={ (ctx.href("/alerts")) "?before=" (next) } { "Older →" }
                }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Alerts, "Alerts", body)))
}

/// Sends a test notification to every channel (blocking: the dashboard answers off
/// the async threads), then shows the history with its outcomes.
pub(crate) fn test(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let Some(test) = reader.alert_test() else {
        return Ok(Page::NotFound(
            "No alert channel is configured in this process.".into(),
        ));
    };
    test.send();
    Ok(Page::Redirect(ctx.href("/alerts")))
}
