//! Health: the pipeline's counters with drops by reason, and the store's size and
//! contents.

use backstop_core::KindStats;
use backstop_store::{StoreError, StoreReader};
use maud::{Markup, html};

use super::{Ctx, Page, Section, csrf, layout};
use crate::format::{ago, bytes, count};

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let health = reader.health()?;
    let writes = reader.write_stats();
    let pipeline = ctx.config.stats.as_ref().map(|f| f());
    let dropped = pipeline
        .map(|p| {
            p.events.dropped_queue_full
                + p.events.dropped_sink_failed
                + p.transactions.dropped_queue_full
                + p.transactions.dropped_sink_failed
        })
        .unwrap_or(0)
        + writes
            .as_ref()
            .map_or(0, |w| w.events_dropped + w.transactions_dropped);
    let body = html! {
        div.head { h1 { "Health" } }
        @if dropped > 0 {
            div.alert role="alert" {
                strong { "Records are being dropped. " }
                (count(dropped)) " events or transactions were lost (queue full or store write failed). See the counters below."
            }
        }
        div.grid2 {
            section.panel {
                h2 { "Store" }
                dl.kv {
                    dt { "File" } dd.mono { (reader.path().display()) }
                    dt { "Size" } dd { (bytes(health.file_bytes)) " (" (bytes(health.free_bytes)) " free)" }
                    dt { "Schema version" } dd { (health.schema_version) }
                    dt { "Issues" } dd { (count(health.issues)) }
                    dt { "Events" } dd { (count(health.events)) }
                    dt { "Transactions" } dd { (count(health.transactions)) }
                    dt { "Spans" } dd { (count(health.spans)) }
                    dt { "Oldest event" } dd { (health.oldest_event.map_or("–".to_owned(), |t| ago(t, ctx.now))) }
                    dt { "Oldest transaction" } dd { (health.oldest_transaction.map_or("–".to_owned(), |t| ago(t, ctx.now))) }
                    @if let Some(r) = reader.retention() {
                        dt { "Retention" } dd {
                            (r.max_age.map_or("no age limit".to_owned(), |a| format!("{} days", a.as_secs() / 86_400)))
                            ", " (r.max_transactions.map_or("every".to_owned(), count)) " transactions, "
                            (r.max_events_per_issue.map_or("every".to_owned(), count)) " events per issue"
                        }
                    }
                }
            }
            section.panel {
                h2 { "Store writes" }
                @match &writes {
                    None => p.none { "This store was opened from a file; the writer's counters live in the app that writes it." },
                    Some(w) => dl.kv {
                        dt { "Batches written" } dd { (count(w.batches_written)) }
                        dt { "Batches failed" } dd.bad[w.batches_failed > 0] { (count(w.batches_failed)) }
                        dt { "Events written" } dd { (count(w.events_written)) }
                        dt { "Transactions written" } dd { (count(w.transactions_written)) }
                        dt { "Events dropped" } dd.bad[w.events_dropped > 0] { (count(w.events_dropped)) }
                        dt { "Transactions dropped" } dd.bad[w.transactions_dropped > 0] { (count(w.transactions_dropped)) }
                        dt { "Pruned by retention" } dd { (count(w.events_pruned)) " events, " (count(w.transactions_pruned)) " transactions, " (count(w.issues_pruned)) " issues" }
                        dt { "Last prune" } dd { (w.last_prune.map_or("not yet".to_owned(), |t| ago(t, ctx.now))) }
                        dt { "Reopens" } dd { (count(w.reopens)) }
                        @if let Some(e) = &w.last_error { dt { "Last error" } dd.mono { (e) } }
                    },
                }
            }
        }
        @if let Some(p) = pipeline {
            section.panel {
                h2 { "Pipeline" }
                p.meta { (p.queued) " queued · " (count(p.breadcrumbs_dropped)) " breadcrumbs and " (count(p.spans_dropped)) " spans over their limits · " (count(p.callback_panics)) " callback panics" }
                div.table-wrap { table {
                    thead { tr { th { "" } th.num { "Events" } th.num { "Transactions" } } }
                    tbody {
                        (kinds("Captured", &p.events, &p.transactions, |k| k.captured))
                        (kinds("Sent", &p.events, &p.transactions, |k| k.sent))
                        (kinds("Dropped: queue full", &p.events, &p.transactions, |k| k.dropped_queue_full))
                        (kinds("Dropped: sampled", &p.events, &p.transactions, |k| k.dropped_sampled))
                        (kinds("Dropped: ignored", &p.events, &p.transactions, |k| k.dropped_ignored))
                        (kinds("Dropped: before_send", &p.events, &p.transactions, |k| k.dropped_before_send))
                        (kinds("Dropped: panicked", &p.events, &p.transactions, |k| k.dropped_panicked))
                        (kinds("Dropped: sink failed", &p.events, &p.transactions, |k| k.dropped_sink_failed))
                        (kinds("Dropped: after shutdown", &p.events, &p.transactions, |k| k.dropped_shutdown))
                        (kinds("Not kept: over the keep budget", &p.events, &p.transactions, |k| k.dropped_budget))
                    }
                } }
            }
        }
        section.panel.danger-zone {
            h2 { "Clear the store" }
            p.meta { "Deletes every issue, event, request and release. The file and its schema stay." }
            form method="post" action=(ctx.href("/clear")) {
                (csrf(ctx))
                button.danger type="submit" { "Clear everything" }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Health, "Health", body)))
}

fn kinds(label: &str, e: &KindStats, t: &KindStats, f: impl Fn(&KindStats) -> u64) -> Markup {
    let (a, b) = (f(e), f(t));
    html! {
        tr.bad[label.starts_with("Dropped") && label != "Dropped: sampled" && (a > 0 || b > 0)] {
            th { (label) } td.num { (count(a)) } td.num { (count(b)) }
        }
    }
}
