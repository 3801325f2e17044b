//! Releases: what each one did against the one before, and a side-by-side compare of
//! one route across two releases.

use backstop_store::{RouteQuery, RouteStats, StoreError, StoreReader};
use maud::{Markup, html};

use super::{Ctx, Page, Section, empty, enc, layout};
use crate::format::{ago, count, dur, pct, stamp};

pub(crate) fn page(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let releases = reader.release_stats(50)?;
    let body = html! {
        div.head { h1 { "Releases" } }
        @if releases.is_empty() { (empty("No release recorded. Set BACKSTOP_RELEASE to see one per deploy.")) }
        @else {
            section.panel { div.table-wrap { table {
                thead { tr {
                    th { "Release" } th.num.wide { "First seen" } th.num { "New issues" } th.num.wide { "Regressions" }
                    th.num { "Errors" } th.num.wide { "Requests" } th.num { "p95" } th.num.wide { "vs previous" }
                } }
                tbody {
                    @for (i, r) in releases.iter().enumerate() {
                        @let previous = releases.get(i + 1);
                        tr {
                            td.wrap { code { (r.version) } }
                            td.num.wide { span title=(stamp(r.first_seen)) { (ago(r.first_seen, ctx.now)) } }
                            td.num { (count(r.new_issues)) }
                            td.num.wide { (count(r.regressions)) }
                            td.num { (count(r.errors)) }
                            td.num.wide { (count(r.requests)) }
                            td.num { (dur(r.p95)) }
                            td.num.wide {
                                @if let Some(p) = previous {
                                    (delta(r.p95.as_secs_f64(), p.p95.as_secs_f64()))
                                    " · " a href={ (ctx.href("/releases/compare")) "?a=" (enc(&p.version)) "&b=" (enc(&r.version)) } { "compare" }
                                }
                            }
                        }
                    }
                }
            } } }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Releases, "Releases", body)))
}

fn delta(now: f64, before: f64) -> Markup {
    if before <= 0.0 {
        return html! { "–" };
    }
    let change = (now - before) / before;
    html! { span.bad[change > 0.1].good[change < -0.1] { (format!("{:+.0}% p95", change * 100.0)) } }
}

/// Two time windows of the same length, the later one ending now.
const PERIODS: [(&str, &str, u64); 2] = [
    ("day", "Last 24 hours vs the 24 hours before", 86_400),
    ("week", "Last 3.5 days vs the 3.5 days before", 302_400),
];

pub(crate) fn compare(reader: &StoreReader, ctx: &Ctx<'_>) -> Result<Page, StoreError> {
    let releases = reader.release_stats(50)?;
    let period = ctx
        .params
        .get("period")
        .and_then(|p| PERIODS.iter().find(|(k, _, _)| *k == p));
    let a = ctx.params.get("a");
    let b = ctx.params.get("b");
    let route = ctx.params.get("route");
    let query = || {
        RouteQuery::new()
            .apdex(ctx.config.apdex_threshold)
            .limit(200)
    };
    let (left, right, labels) = match period {
        Some((_, _, secs)) => {
            let len = std::time::Duration::from_secs(*secs);
            let mid = ctx.now - len;
            (
                reader.routes(&query().since(mid - len).until(mid))?,
                reader.routes(&query().since(mid))?,
                ("Before".to_owned(), "Latest".to_owned()),
            )
        }
        None => {
            let side = |release: Option<&str>| -> Result<Vec<RouteStats>, StoreError> {
                match release {
                    Some(release) => reader.routes(&query().release(release)),
                    None => Ok(Vec::new()),
                }
            };
            (
                side(a)?,
                side(b)?,
                (a.unwrap_or("").to_owned(), b.unwrap_or("").to_owned()),
            )
        }
    };
    let mut names: Vec<&str> = left.iter().chain(&right).map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if let Some(route) = route {
        names.retain(|n| *n == route);
    }
    let find = |side: &[RouteStats], name: &str| side.iter().find(|r| r.name == name).cloned();
    let body = html! {
        div.crumbs { a href=(ctx.href("/releases")) { "Releases" } " / compare" }
        h1 { "Compare" }
        form.filters method="get" action=(ctx.href("/releases/compare")) {
            label { span { "Before" } select name="a" { @for r in &releases { option value=(r.version) selected[Some(r.version.as_str()) == a] { (r.version) } } } }
            label { span { "After" } select name="b" { @for r in &releases { option value=(r.version) selected[Some(r.version.as_str()) == b] { (r.version) } } } }
            label { span { "Or time ranges" }
                select name="period" {
                    option value="" { "Releases above" }
                    @for (key, label, _) in PERIODS { option value=(key) selected[period.is_some_and(|p| p.0 == key)] { (label) } }
                }
            }
            label.grow { span { "Route" } input type="text" name="route" value=[route] placeholder="every route"; }
            button type="submit" { "Compare" }
        }
        @if names.is_empty() { (empty("Pick two releases, or two time ranges, with recorded requests.")) }
        @for name in &names {
            @let (l, r) = (find(&left, name), find(&right, name));
            section.panel.compare {
                h2.mono { (name) }
                div.table-wrap { table {
                    thead { tr { th { "" } th.num { (labels.0) } th.num { (labels.1) } } }
                    tbody {
                        (row("Requests", &l, &r, |s| count(s.count)))
                        (row("Error rate", &l, &r, |s| pct(s.error_rate)))
                        (row("p50", &l, &r, |s| dur(s.p50)))
                        (row("p95", &l, &r, |s| dur(s.p95)))
                        (row("p99", &l, &r, |s| dur(s.p99)))
                        (row("Queries / request", &l, &r, |s| format!("{:.1}", s.mean_queries)))
                    }
                } }
            }
        }
    };
    Ok(Page::Html(layout(ctx, Section::Releases, "Compare", body)))
}

fn row(
    label: &str,
    l: &Option<RouteStats>,
    r: &Option<RouteStats>,
    f: impl Fn(&RouteStats) -> String,
) -> Markup {
    html! {
        tr {
            th { (label) }
            td.num { (l.as_ref().map_or("–".to_owned(), &f)) }
            td.num { (r.as_ref().map_or("–".to_owned(), &f)) }
        }
    }
}
