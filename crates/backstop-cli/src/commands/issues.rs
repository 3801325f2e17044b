//! `backstop issues` and `backstop issue ID`.

use std::path::Path;

use backstop_core::Event;
use backstop_store::IssueStatus;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use super::note;
use crate::error::CliError;
use crate::json::{IssueDetailJson, IssueJson, IssueList};
use crate::output::{
    self, Align, Cell, DIM, LABEL, Out, Table, ago, datetime, issue_title, level_style,
    status_label, status_style,
};
use crate::store::{IssueFilter, IssueOrder, IssueView, Store};

#[derive(clap::Args)]
pub(crate) struct ListArgs {
    /// Only issues with this status.
    #[arg(
        long,
        value_name = "STATUS",
        value_parser = PossibleValuesParser::new(["unresolved", "resolved", "ignored"])
            .try_map(|s| s.parse::<IssueStatus>()),
    )]
    status: Option<IssueStatus>,

    /// The order (always descending).
    #[arg(long, value_enum, default_value_t = IssueOrder::LastSeen)]
    sort: IssueOrder,

    /// At most this many issues.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,

    /// Print JSON for scripts (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub(crate) struct ShowArgs {
    /// The issue's id, as `backstop issues` lists it (`7` or `#7`).
    #[arg(value_parser = super::parse_issue_id)]
    id: i64,

    /// Print JSON for scripts (see docs/cli.md).
    #[arg(long)]
    json: bool,
}

pub(crate) fn list(db: &Path, args: &ListArgs) -> Result<(), CliError> {
    let store = Store::open(db)?;
    let (issues, total) = store.issues(&IssueFilter {
        status: args.status,
        sort: args.sort,
        limit: args.limit as usize,
    })?;
    let mut out = Out::new();
    if args.json {
        out.json_pretty(&IssueList {
            issues: issues.iter().map(IssueJson::from).collect(),
            total,
        })?;
        return Ok(out.flush()?);
    }
    if issues.is_empty() {
        let which = args.status.map_or(String::new(), |s| format!("{s} "));
        note(&format!("no {which}issues in {}", db.display()));
        return Ok(());
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("STATUS", Align::Left),
        ("LEVEL", Align::Left),
        ("EVENTS", Align::Right),
        ("USERS", Align::Right),
        ("SEEN", Align::Left),
        ("TITLE", Align::Left),
    ]);
    for issue in &issues {
        table.row(vec![
            Cell::new(&issue.id.to_string()),
            Cell::styled(status_label(issue), status_style(issue)),
            Cell::styled(issue.level.as_str(), level_style(issue.level)),
            Cell::new(&issue.count.to_string()),
            Cell::new(&issue.users.to_string()),
            Cell::new(&ago(issue.last_seen)),
            Cell::new(&issue_title(issue)),
        ]);
    }
    table.print(&mut out)?;
    out.flush()?;
    if total > issues.len() as u64 {
        note(&format!(
            "showing {} of {total} issues; --limit shows more",
            issues.len()
        ));
    }
    Ok(())
}

pub(crate) fn show(db: &Path, args: &ShowArgs) -> Result<(), CliError> {
    let store = Store::open(db)?;
    let view = store.issue(args.id)?;
    let mut out = Out::new();
    if args.json {
        out.json_pretty(&IssueDetailJson::from(&view))?;
    } else {
        print_issue(&mut out, &view)?;
    }
    Ok(out.flush()?)
}

/// Width of the labels in an issue's header.
const LABEL_WIDTH: usize = 14;

fn print_issue(out: &mut Out, view: &IssueView) -> std::io::Result<()> {
    let issue = &view.detail.issue;
    let room = out.width().map(|w| w.saturating_sub(LABEL_WIDTH).max(20));
    let cut = |text: &str| match room {
        Some(room) => output::truncate(text, room),
        None => output::one_line(text),
    };
    out.styled(
        LABEL,
        &format!("#{:<width$}", issue.id, width = LABEL_WIDTH - 1),
    )?;
    out.styled(LABEL, &cut(&issue_title(issue)))?;
    out.line("")?;

    let field = |out: &mut Out, label: &str, value: &str| -> std::io::Result<()> {
        out.styled(DIM, &format!("{label:<LABEL_WIDTH$}"))?;
        out.line(&cut(value))
    };
    let status = if issue.regressed && issue.status == IssueStatus::Unresolved {
        "unresolved (regressed)"
    } else {
        issue.status.as_str()
    };
    field(out, "status", status)?;
    match issue.kind.problem() {
        Some(kind) => field(out, "kind", kind.title())?,
        None => field(out, "level", issue.level.as_str())?,
    }
    let culprit_label = if issue.kind.problem().is_some() {
        "route"
    } else {
        "culprit"
    };
    if let Some(culprit) = &issue.culprit {
        field(out, culprit_label, culprit)?;
    }
    let counted = if issue.kind.problem().is_some() {
        "occurrences"
    } else {
        "events"
    };
    field(
        out,
        counted,
        &format!(
            "{} ({} user{} affected)",
            issue.count,
            issue.users,
            if issue.users == 1 { "" } else { "s" }
        ),
    )?;
    let seen = |t, release: &Option<String>| {
        let mut s = format!("{} ({})", datetime(t), ago(t));
        if let Some(r) = release {
            s.push_str(&format!(" in {r}"));
        }
        s
    };
    field(
        out,
        "first seen",
        &seen(issue.first_seen, &issue.first_release),
    )?;
    field(
        out,
        "last seen",
        &seen(issue.last_seen, &issue.last_release),
    )?;
    if !view.detail.releases.is_empty() {
        field(out, "releases", &view.detail.releases.join(", "))?;
    }
    if !view.detail.environments.is_empty() {
        field(out, "environments", &view.detail.environments.join(", "))?;
    }

    if let Some(event) = &view.latest_event {
        out.line("")?;
        out.styled(LABEL, "Latest event ")?;
        out.line(&event.event_id.to_string())?;
        for line in event_lines(event) {
            out.line(&cut(&format!("  {line}")))?;
        }
    }

    if !view.detail.latest_events.is_empty() {
        out.line("")?;
        out.styled(LABEL, "Recent events")?;
        out.line("")?;
        let mut table = Table::new(&[
            ("WHEN", Align::Left),
            ("RELEASE", Align::Left),
            ("USER", Align::Left),
            ("EVENT ID", Align::Left),
        ]);
        for e in &view.detail.latest_events {
            table.row(vec![
                Cell::new(&ago(e.timestamp)),
                Cell::new(&output::truncate(e.release.as_deref().unwrap_or("-"), 16)),
                Cell::new(&output::truncate(e.user.as_deref().unwrap_or("-"), 16)),
                Cell::new(&e.event_id.to_string()),
            ]);
        }
        table.print(out)?;
    }

    if !view.occurrences.is_empty() {
        out.line("")?;
        out.styled(LABEL, "Recent occurrences")?;
        out.line("")?;
        let mut table = Table::new(&[
            ("WHEN", Align::Left),
            ("QUERIES", Align::Right),
            ("TIME", Align::Right),
            ("TRANSACTION", Align::Left),
        ]);
        for o in &view.occurrences {
            table.row(vec![
                Cell::new(&ago(o.timestamp)),
                Cell::new(&o.count.to_string()),
                Cell::new(&output::duration(o.duration)),
                Cell::new(&o.transaction_event_id.to_string()),
            ]);
        }
        table.print(out)?;
    }
    Ok(())
}

/// What a reader wants first from an event: the exception chain (outermost first) with
/// the frame each was raised in, the message, where it happened and to whom.
fn event_lines(event: &Event) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, exception) in event.exception.values.iter().rev().enumerate() {
        let mut line = if i == 0 {
            String::new()
        } else {
            "caused by: ".to_owned()
        };
        line.push_str(&exception.ty);
        if let Some(value) = &exception.value {
            line.push_str(": ");
            line.push_str(value);
        }
        lines.push(line);
        let frames = exception.stacktrace.as_ref().map(|s| &s.frames[..]);
        // Sentry lists frames outermost call first: the one that raised is last.
        let raised =
            frames.and_then(|f| f.iter().rev().find(|f| f.in_app == Some(true)).or(f.last()));
        if let Some(frame) = raised {
            let mut at = format!(
                "    at {}",
                frame.function.as_deref().unwrap_or("<unknown>")
            );
            if let Some(file) = frame.filename.as_deref().or(frame.abs_path.as_deref()) {
                at.push_str(&format!(" ({file}"));
                if let Some(line) = frame.lineno {
                    at.push_str(&format!(":{line}"));
                }
                at.push(')');
            }
            lines.push(at);
        }
    }
    if let Some(message) = &event.message
        && event.exception.values.is_empty()
    {
        lines.push(message.clone());
    }
    if let Some(request) = &event.request
        && let Some(url) = &request.url
    {
        let target = match &request.method {
            Some(method) => format!("{method} {url}"),
            None => url.clone(),
        };
        lines.push(format!("request      {target}"));
    }
    if let Some(transaction) = &event.transaction {
        lines.push(format!("transaction  {transaction}"));
    }
    if let Some(user) = &event.user {
        let who = user
            .id
            .as_deref()
            .map(|id| format!("id {id}"))
            .or_else(|| user.ip_address.as_ref().map(|ip| format!("ip {ip}")));
        if let Some(who) = who {
            lines.push(format!("user         {who}"));
        }
    }
    lines
}
