//! Query building: the one [`Filter`] every list shares, the per-list selections, the
//! keyset [`Cursor`], and the SQL they become.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use backstop_core::protocol::ProblemKind;
use rusqlite::types::Value;

use super::models::{Issue, IssueCategory, IssueSort, IssueStatus, RouteSort};
use crate::store::millis;

/// What every list shares: a time range, an environment, a release, and a page (a
/// limit with an offset or a keyset [`Cursor`]).
///
/// What "in the range" means depends on the list: a request started in it; an issue
/// was seen in it (last seen at or after `since`, first seen before `until`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub(crate) since: Option<SystemTime>,
    pub(crate) until: Option<SystemTime>,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) limit: usize,
    pub(crate) offset: usize,
    pub(crate) after: Option<Cursor>,
}

impl Filter {
    fn with_limit(limit: usize) -> Self {
        Filter {
            since: None,
            until: None,
            environment: None,
            release: None,
            limit,
            offset: 0,
            after: None,
        }
    }

    /// The start of the range (inclusive).
    pub fn since(&self) -> Option<SystemTime> {
        self.since
    }

    /// The end of the range (exclusive).
    pub fn until(&self) -> Option<SystemTime> {
        self.until
    }

    /// The environment.
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The release.
    pub fn release(&self) -> Option<&str> {
        self.release.as_deref()
    }

    /// The page size.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// A position in a keyset-paginated list: the sort key and id of the last row seen.
/// Its text form (`1733500000000.42`) goes in URLs.
///
/// ```
/// use backstop_store::Cursor;
///
/// let cursor: Cursor = "1733500000000.42".parse().unwrap();
/// assert_eq!(cursor.to_string(), "1733500000000.42");
/// assert!("x.1".parse::<Cursor>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    key: i64,
    id: i64,
}

impl Cursor {
    /// The position just after `issue` in a list sorted by `sort`.
    pub fn after_issue(issue: &Issue, sort: IssueSort) -> Cursor {
        let key = match sort {
            IssueSort::LastSeen => millis(issue.last_seen),
            IssueSort::FirstSeen => millis(issue.first_seen),
            IssueSort::Count => issue.count as i64,
            IssueSort::Users => issue.users as i64,
        };
        Cursor {
            key,
            id: issue.id.0,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.key, self.id)
    }
}

/// Text that is not a [`Cursor`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a list position: {0:?}")]
pub struct InvalidCursor(String);

impl FromStr for Cursor {
    type Err = InvalidCursor;
    fn from_str(s: &str) -> Result<Self, InvalidCursor> {
        let bad = || InvalidCursor(s.chars().take(64).collect());
        let (key, id) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            key: key.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// A list's query: the shared [`Filter`] and what only this list selects on (`S`).
/// Use it through its aliases: [`IssueQuery`], [`PerfIssueQuery`], [`RouteQuery`],
/// [`RequestQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Query<S> {
    pub(crate) filter: Filter,
    pub(crate) select: S,
}

impl<S> Query<S> {
    /// Only rows at or after `since`.
    pub fn since(mut self, since: SystemTime) -> Self {
        self.filter.since = Some(since);
        self
    }

    /// Only rows before `until`.
    pub fn until(mut self, until: SystemTime) -> Self {
        self.filter.until = Some(until);
        self
    }

    /// Only this environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.filter.environment = Some(environment.into());
        self
    }

    /// Only this release.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.filter.release = Some(release.into());
        self
    }

    /// At most this many rows.
    pub fn limit(mut self, limit: usize) -> Self {
        self.filter.limit = limit;
        self
    }

    /// Skips this many rows.
    pub fn offset(mut self, offset: usize) -> Self {
        self.filter.offset = offset;
        self
    }

    /// Starts just after this position (keyset paging: cheap however deep the page).
    /// Lists without a keyset order ignore it.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.filter.after = Some(cursor);
        self
    }

    /// The shared part.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }
}

/// What only the issue list selects on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IssueSelect {
    pub(crate) status: Option<IssueStatus>,
    pub(crate) regressed: bool,
    pub(crate) category: Option<IssueCategory>,
    pub(crate) first_release: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) level: Option<String>,
    pub(crate) sort: IssueSort,
}

/// Which issues to list. The default lists the 100 most recently seen, of any status
/// and either category (errors and performance problems).
///
/// ```
/// use backstop_store::{IssueQuery, IssueSort, IssueStatus};
///
/// let query = IssueQuery::new()
///     .status(IssueStatus::Unresolved)
///     .release("shop@1.4.2")
///     .sort(IssueSort::Users)
///     .limit(25);
/// assert_eq!(query.filter().release(), Some("shop@1.4.2"));
/// ```
pub type IssueQuery = Query<IssueSelect>;

impl Default for IssueQuery {
    fn default() -> Self {
        Query {
            filter: Filter::with_limit(100),
            select: IssueSelect::default(),
        }
    }
}

impl IssueQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only issues with this status.
    pub fn status(mut self, status: IssueStatus) -> Self {
        self.select.status = Some(status);
        self
    }

    /// Only issues that came back after being resolved (and are still unresolved).
    pub fn regressed(mut self) -> Self {
        self.select.regressed = true;
        self
    }

    /// Only error issues, or only performance issues.
    pub fn category(mut self, category: IssueCategory) -> Self {
        self.select.category = Some(category);
        self
    }

    /// Only issues first seen in this release (the release's new issues).
    pub fn first_release(mut self, release: impl Into<String>) -> Self {
        self.select.first_release = Some(release.into());
        self
    }

    /// Only issues whose latest level is this one (`error`, `warning`...).
    pub fn level(mut self, level: impl Into<String>) -> Self {
        self.select.level = Some(level.into());
        self
    }

    /// Only issues whose title or culprit contains `text` (ASCII case-insensitive). For a
    /// performance issue these are the query and the route.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.select.text = (!text.is_empty()).then_some(text);
        self
    }

    /// The order.
    pub fn sort(mut self, sort: IssueSort) -> Self {
        self.select.sort = sort;
        self
    }

    /// The order this query lists in.
    pub fn sort_order(&self) -> IssueSort {
        self.select.sort
    }
}

/// What only the performance-issue list selects on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PerfIssueSelect {
    pub(crate) kind: Option<ProblemKind>,
    pub(crate) route: Option<String>,
    pub(crate) status: Option<IssueStatus>,
    pub(crate) sort: IssueSort,
}

/// Which performance issues to list. The default lists the 100 most recently seen, of
/// any kind, route and status.
///
/// ```
/// use backstop_core::protocol::ProblemKind;
/// use backstop_store::{IssueSort, PerfIssueQuery};
///
/// let query = PerfIssueQuery::new()
///     .kind(ProblemKind::NPlusOne)
///     .route("GET /users")
///     .sort(IssueSort::Count)
///     .limit(20);
/// # let _ = query;
/// ```
pub type PerfIssueQuery = Query<PerfIssueSelect>;

impl Default for PerfIssueQuery {
    fn default() -> Self {
        Query {
            filter: Filter::with_limit(100),
            select: PerfIssueSelect::default(),
        }
    }
}

impl PerfIssueQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only problems of this kind.
    pub fn kind(mut self, kind: ProblemKind) -> Self {
        self.select.kind = Some(kind);
        self
    }

    /// Only problems on this route (transaction name, `GET /users/{id}`).
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.select.route = Some(route.into());
        self
    }

    /// Only issues with this status.
    pub fn status(mut self, status: IssueStatus) -> Self {
        self.select.status = Some(status);
        self
    }

    /// The order: last seen, first seen, count (occurrences) or users.
    pub fn sort(mut self, sort: IssueSort) -> Self {
        self.select.sort = sort;
        self
    }
}

/// What only the route table selects on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteSelect {
    pub(crate) route: Option<String>,
    pub(crate) sort: RouteSort,
    pub(crate) apdex: Option<std::time::Duration>,
}

/// Which transactions to summarise by route, and how. The default covers everything
/// kept, 100 routes at most.
pub type RouteQuery = Query<RouteSelect>;

impl Default for RouteQuery {
    fn default() -> Self {
        Query {
            filter: Filter::with_limit(100),
            select: RouteSelect::default(),
        }
    }
}

impl RouteQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// The order.
    pub fn sort(mut self, sort: RouteSort) -> Self {
        self.select.sort = sort;
        self
    }

    /// Only this route.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.select.route = Some(route.into());
        self
    }

    /// Computes each route's Apdex with this threshold `T` (satisfied at most `T`,
    /// tolerating at most `4T`), in [`RouteStats::apdex`](super::RouteStats::apdex).
    pub fn apdex(mut self, threshold: std::time::Duration) -> Self {
        self.select.apdex = Some(threshold);
        self
    }
}

/// What only the request lists select on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestSelect {
    pub(crate) route: Option<String>,
}

/// Which requests to list. The default lists 50, of every route.
pub type RequestQuery = Query<RequestSelect>;

impl Default for RequestQuery {
    fn default() -> Self {
        Query {
            filter: Filter::with_limit(50),
            select: RequestSelect::default(),
        }
    }
}

impl RequestQuery {
    /// The default query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this route.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.select.route = Some(route.into());
        self
    }
}

/// A `SELECT` under construction: conditions joined with `AND`, each with its values
/// bound in order.
pub(crate) struct Sql {
    text: String,
    values: Vec<Value>,
    conditions: usize,
}

impl Sql {
    pub(crate) fn new(head: &str) -> Sql {
        Sql {
            text: head.to_owned(),
            values: Vec::new(),
            conditions: 0,
        }
    }

    /// Adds `condition`, whose `?`s take `values` in order.
    pub(crate) fn and<const N: usize>(&mut self, condition: &str, values: [Value; N]) {
        self.text.push_str(if self.conditions == 0 {
            " WHERE "
        } else {
            " AND "
        });
        self.text.push('(');
        self.text.push_str(condition);
        self.text.push(')');
        self.values.extend(values);
        self.conditions += 1;
    }

    /// Adds `condition` when `value` is set.
    pub(crate) fn and_some(&mut self, condition: &str, value: Option<impl Into<Value>>) {
        if let Some(value) = value {
            self.and(condition, [value.into()]);
        }
    }

    /// Appends text after the conditions (`GROUP BY`, `ORDER BY`).
    pub(crate) fn then(&mut self, tail: &str) {
        self.then_with(tail, []);
    }

    /// Appends text whose `?`s take `values` in order.
    pub(crate) fn then_with<const N: usize>(&mut self, tail: &str, values: [Value; N]) {
        self.text.push(' ');
        self.text.push_str(tail);
        self.values.extend(values);
    }

    /// Appends `LIMIT ? OFFSET ?`.
    pub(crate) fn page(&mut self, filter: &Filter) {
        self.text.push_str(" LIMIT ? OFFSET ?");
        self.values.push(Value::Integer(filter.limit as i64));
        self.values.push(Value::Integer(filter.offset as i64));
    }

    /// Time range conditions on a millisecond `column`.
    pub(crate) fn range(&mut self, column: &str, filter: &Filter) {
        self.and_some(&format!("{column} >= ?"), filter.since.map(millis));
        self.and_some(&format!("{column} < ?"), filter.until.map(millis));
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn values(&self) -> rusqlite::ParamsFromIter<std::slice::Iter<'_, Value>> {
        rusqlite::params_from_iter(self.values.iter())
    }
}

/// `%text%` for LIKE, with the wildcards in `text` escaped.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The issue conditions shared by the list and its count.
pub(crate) fn issue_conditions(sql: &mut Sql, query: &IssueQuery) {
    let (f, s) = (&query.filter, &query.select);
    sql.and_some("status = ?", s.status.map(|s| s.as_str().to_owned()));
    if s.regressed {
        sql.and("regressed = 1 AND status = 'unresolved'", []);
    }
    sql.and_some(
        "EXISTS (SELECT 1 FROM issue_releases r WHERE r.issue_id = issues.id AND r.release = ?)",
        f.release.clone(),
    );
    sql.and_some("first_release = ?", s.first_release.clone());
    sql.and_some(
        "EXISTS (SELECT 1 FROM issue_environments e
                 WHERE e.issue_id = issues.id AND e.environment = ?)",
        f.environment.clone(),
    );
    if let Some(text) = &s.text {
        let pattern = like_pattern(text);
        sql.and(
            "title LIKE ? ESCAPE '\\' OR culprit LIKE ? ESCAPE '\\'",
            [pattern.clone().into(), pattern.into()],
        );
    }
    sql.and_some("level = ?", s.level.clone());
    match s.category {
        Some(IssueCategory::Error) => sql.and("kind = 'error'", []),
        Some(IssueCategory::Performance) => sql.and("kind <> 'error'", []),
        None => {}
    }
    sql.and_some("last_seen >= ?", f.since.map(millis));
    sql.and_some("first_seen < ?", f.until.map(millis));
}

/// The column an issue list sorts on.
pub(crate) fn issue_sort_column(sort: IssueSort) -> &'static str {
    match sort {
        IssueSort::LastSeen => "last_seen",
        IssueSort::FirstSeen => "first_seen",
        IssueSort::Count => "times_seen",
        IssueSort::Users => "users",
    }
}

/// The keyset condition and order for an issue list: the sort column, then the id,
/// both descending.
pub(crate) fn issue_keyset(sql: &mut Sql, sort: IssueSort, after: Option<Cursor>) {
    let column = issue_sort_column(sort);
    if let Some(c) = after {
        sql.and(
            &format!("{column} < ? OR ({column} = ? AND id < ?)"),
            [c.key.into(), c.key.into(), c.id.into()],
        );
    }
    sql.then(&format!("ORDER BY {column} DESC, id DESC"));
}

/// The performance-issue conditions shared by the list and its count.
pub(crate) fn perf_conditions(sql: &mut Sql, query: &PerfIssueQuery) {
    let (f, s) = (&query.filter, &query.select);
    sql.and("kind <> 'error'", []);
    sql.and_some("kind = ?", s.kind.map(|k| k.as_str().to_owned()));
    sql.and_some("culprit = ?", s.route.clone());
    sql.and_some("status = ?", s.status.map(|s| s.as_str().to_owned()));
    sql.and_some(
        "EXISTS (SELECT 1 FROM issue_releases r WHERE r.issue_id = issues.id AND r.release = ?)",
        f.release.clone(),
    );
    sql.and_some(
        "EXISTS (SELECT 1 FROM issue_environments e
                 WHERE e.issue_id = issues.id AND e.environment = ?)",
        f.environment.clone(),
    );
    sql.and_some("last_seen >= ?", f.since.map(millis));
    sql.and_some("first_seen < ?", f.until.map(millis));
}

/// Transaction conditions: route, range, environment, release.
pub(crate) fn transaction_conditions(sql: &mut Sql, filter: &Filter, route: Option<&str>) {
    sql.and_some("name = ?", route.map(str::to_owned));
    sql.range("timestamp", filter);
    sql.and_some("environment = ?", filter.environment.clone());
    sql.and_some("release = ?", filter.release.clone());
}
