//! The pages: one module each, functions from the store's answers to markup.

mod alerts;
mod health;
mod issue;
mod issues;
mod overview;
mod performance;
mod queries;
mod releases;
mod request;

use std::time::{Duration, SystemTime};

use backstop_core::protocol::Level;
use backstop_store::{Buckets, IssueStatus, StoreError, StoreReader};
use maud::{DOCTYPE, Markup, html};

use crate::config::DashboardConfig;

/// What a view knows about the request.
pub(crate) struct Ctx<'a> {
    /// The mount path, for links.
    pub(crate) base: &'a str,
    /// What every form carries.
    pub(crate) csrf: &'a str,
    /// The query string.
    pub(crate) params: Params,
    pub(crate) now: SystemTime,
    pub(crate) config: &'a DashboardConfig,
}

impl Ctx<'_> {
    /// A link inside the dashboard.
    pub(crate) fn href(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The selected time range.
    pub(crate) fn range(&self) -> Range {
        Range::parse(self.params.get("range"))
    }
}

/// What a view answers.
pub(crate) enum Page {
    Html(Markup),
    Redirect(String),
    NotFound(String),
}

/// Query-string or form parameters, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(text: &str) -> Params {
        Params(
            form_urlencoded::parse(text.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `key`, if not empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters without `key`, encoded.
    pub(crate) fn without(&self, key: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            if k != key {
                out.append_pair(k, v);
            }
        }
        out.finish()
    }

    /// The parameters with `key` set to `value` (or removed, for an empty value) and
    /// `after` dropped (a new filter starts at the first page).
    pub(crate) fn with(&self, key: &str, value: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            if k != key && k != "after" && !v.is_empty() {
                out.append_pair(k, v);
            }
        }
        if !value.is_empty() {
            out.append_pair(key, value);
        }
        out.finish()
    }
}

/// Encodes one query-string value.
pub(crate) fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The time range a page covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    pub(crate) const ALL: [Range; 3] = [Range::Hour, Range::Day, Range::Week];

    fn parse(text: Option<&str>) -> Range {
        match text {
            Some("1h") => Range::Hour,
            Some("7d") => Range::Week,
            _ => Range::Day,
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Range::Hour => "Last hour",
            Range::Day => "Last 24 hours",
            Range::Week => "Last 7 days",
        }
    }

    /// Where a chart over the range starts.
    pub(crate) fn start_label(self) -> &'static str {
        match self {
            Range::Hour => "1 h ago",
            Range::Day => "24 h ago",
            Range::Week => "7 d ago",
        }
    }

    pub(crate) fn duration(self) -> Duration {
        match self {
            Range::Hour => Duration::from_secs(3600),
            Range::Day => Duration::from_secs(86_400),
            Range::Week => Duration::from_secs(7 * 86_400),
        }
    }

    /// The chart buckets: minutes for an hour, half hours for a day, three hours for
    /// a week.
    pub(crate) fn buckets(self, now: SystemTime) -> Buckets {
        let n = match self {
            Range::Hour => 60,
            Range::Day => 48,
            Range::Week => 56,
        };
        Buckets::new(now - self.duration(), now, n)
    }
}

/// Routes a GET.
pub(crate) fn get(reader: &StoreReader, ctx: &Ctx<'_>, path: &str) -> Result<Page, StoreError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => overview::page(reader, ctx),
        ["issues"] => issues::page(reader, ctx),
        ["issues", id] => issue::page(reader, ctx, id),
        ["performance"] => performance::page(reader, ctx),
        ["performance", "route"] => performance::route(reader, ctx),
        ["requests", id] => request::page(reader, ctx, id),
        ["queries"] => queries::page(reader, ctx),
        ["queries", "statement"] => queries::statement(reader, ctx),
        ["releases"] => releases::page(reader, ctx),
        ["releases", "compare"] => releases::compare(reader, ctx),
        ["alerts"] => alerts::page(reader, ctx),
        ["health"] => health::page(reader, ctx),
        _ => Ok(Page::NotFound("This page does not exist.".into())),
    }
}

/// Routes a POST (its CSRF token already checked).
pub(crate) fn post(
    reader: &StoreReader,
    ctx: &Ctx<'_>,
    path: &str,
    form: &Params,
) -> Result<Page, StoreError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["issues"] => issues::bulk(reader, ctx, form),
        ["issues", id] => issue::act(reader, ctx, id, form),
        ["alerts", "test"] => alerts::test(reader, ctx),
        ["clear"] => {
            reader.clear()?;
            Ok(Page::Redirect(ctx.href("/health")))
        }
        _ => Ok(Page::NotFound("This page does not exist.".into())),
    }
}

/// The sections in the header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Issues,
    Performance,
    Queries,
    Releases,
    Alerts,
    Health,
}

const SECTIONS: [(Section, &str, &str); 7] = [
    (Section::Overview, "Overview", "/"),
    (Section::Issues, "Issues", "/issues"),
    (Section::Performance, "Performance", "/performance"),
    (Section::Queries, "Queries", "/queries"),
    (Section::Releases, "Releases", "/releases"),
    (Section::Alerts, "Alerts", "/alerts"),
    (Section::Health, "Health", "/health"),
];

/// Every page's frame.
pub(crate) fn layout(ctx: &Ctx<'_>, section: Section, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                meta name="color-scheme" content="light dark";
                title { (title) " · Backstop" }
                // No favicon request: outside the mount it would be a stray 404.
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(ctx.href("/assets/dashboard.css"));
            }
            body {
                header.top {
                    a.brand href=(ctx.href("/")) {
                        svg.logo viewBox="0 0 24 24" aria-hidden="true" {
                            path d="M12 2 3 6v6c0 5 3.8 9.4 9 10 5.2-.6 9-5 9-10V6l-9-4Z" {}
                        }
                        span { "Backstop" }
                    }
                    nav {
                        @for (s, label, path) in SECTIONS {
                            a.current[s == section] href=(ctx.href(path)) { (label) }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The range selector.
pub(crate) fn range_picker(ctx: &Ctx<'_>, path: &str) -> Markup {
    let current = ctx.range();
    html! {
        nav.range aria-label="Time range" {
            @for r in Range::ALL {
                a.current[r == current] href={ (ctx.href(path)) "?" (ctx.params.with("range", r.key())) } { (r.key()) }
            }
        }
    }
}

pub(crate) fn status_badge(status: IssueStatus, regressed: bool) -> Markup {
    let (class, label) = match (status, regressed) {
        (IssueStatus::Unresolved, true) => ("regressed", "regressed"),
        (IssueStatus::Unresolved, false) => ("unresolved", "unresolved"),
        (IssueStatus::Resolved, _) => ("resolved", "resolved"),
        (IssueStatus::Ignored, _) => ("ignored", "ignored"),
    };
    html! { span.badge.(class) { (label) } }
}

pub(crate) fn level_badge(level: Level) -> Markup {
    let name = level.to_string();
    html! { span.level.(name) { (name) } }
}

/// A page for something that is not there (an unknown or pruned issue or request).
pub(crate) fn missing(ctx: &Ctx<'_>, what: &str) -> Markup {
    layout(
        ctx,
        Section::Overview,
        "Not found",
        html! {
            section.empty {
                h1 { "Not found" }
                p { (what) }
                p { a href=(ctx.href("/")) { "Back to the overview" } }
            }
        },
    )
}

/// A page for a store that could not be read.
pub(crate) fn failure(ctx: &Ctx<'_>, error: &str) -> Markup {
    layout(
        ctx,
        Section::Health,
        "Store error",
        html! {
            section.empty {
                h1 { "The store could not be read" }
                p.mono { (error) }
            }
        },
    )
}

/// An empty-state box.
pub(crate) fn empty(text: &str) -> Markup {
    html! { p.none { (text) } }
}

/// A hidden CSRF field for a form.
pub(crate) fn csrf(ctx: &Ctx<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}
