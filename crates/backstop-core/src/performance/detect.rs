//! Performance-problem detectors: N+1, duplicate, slow and too many queries. They run
//! on the worker over a finished transaction's query spans, never on the request path.
//!
//! [`detect`] sorts the spans by start (their order in the input does not matter) and
//! applies four rules, each with a threshold in [`Thresholds`]:
//!
//! - **N+1**: under one parent span, a *run* of at least `n_plus_one_count` consecutive
//!   siblings with the same query group, preceded by a sibling with a different group
//!   (the "source" query, `SELECT * FROM users`), the run totalling at least
//!   `n_plus_one_duration`. Runs of the same group under the same parent (a loop that
//!   runs twice) become one problem; the same group under two parents is two problems.
//!   Overlapping (concurrent) queries count like sequential ones: only start order
//!   matters. A run with nothing before it is not an N+1, as in Sentry.
//! - **Duplicate queries**: the same `statement` text with the same `params`, at least
//!   `duplicate_count` times. Spans whose params are unknown (`None`) match each other
//!   by text alone; a span with unknown params never matches one with known params.
//!   Spans already in an N+1 problem are left out, so an N+1 over a driver that does
//!   not report parameters (sqlx) is not reported twice. One problem per statement.
//! - **Slow query**: every span taking at least `slow_query`; one problem per group.
//! - **Too many queries**: at least `too_many_queries` spans; one problem, described by
//!   the most frequent normalised query.
//!
//! Problems come out by kind (in that order), then by when their first span started.
//! Each is fingerprinted from its kind, the transaction name and the query group, so
//! the same problem on the same route is one issue across requests.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use backstop_core::detect::{QuerySpan, Thresholds, detect};
//! use backstop_core::{ProblemKind, SpanId};
//!
//! let root = SpanId::new();
//! let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_000_000 + ms);
//! let span = |ms: u64, normalized, group, params| QuerySpan {
//!     span_id: SpanId::new(),
//!     parent_span_id: Some(root),
//!     normalized,
//!     group,
//!     statement: normalized,
//!     params,
//!     start: at(ms),
//!     end: at(ms + 10),
//! };
//! let mut queries = vec![span(0, "SELECT * FROM users", 1, None)];
//! for i in 1..=10 {
//!     queries.push(span(i * 10, "SELECT * FROM posts WHERE user_id = ?", 2, None));
//! }
//!
//! let problems = detect("GET /users", &queries, &Thresholds::default());
//! assert_eq!(problems.len(), 1);
//! assert_eq!(problems[0].kind, ProblemKind::NPlusOne);
//! assert_eq!(
//!     problems[0].summary(),
//!     "10 queries like `SELECT * FROM posts WHERE user_id = ?` took 100 ms"
//! );
//! ```

use hashbrown::HashMap;
use std::time::{Duration, SystemTime};

use crate::performance::sql::group_hex;
use crate::protocol::{PerformanceProblem, ProblemKind, SpanId, hash_parts};

// Configuration, so `Options` names it without reaching into the detectors.
pub use crate::options::Thresholds;

/// One database span as the detectors see it.
#[derive(Debug, Clone)]
pub struct QuerySpan<'a> {
    /// The span.
    pub span_id: SpanId,
    /// The span it ran under (the request's root span or a function span).
    pub parent_span_id: Option<SpanId>,
    /// The normalised statement.
    pub normalized: &'a str,
    /// Its group hash ([`crate::performance::sql::NormalizedSql::group`]).
    pub group: u64,
    /// The statement as executed.
    pub statement: &'a str,
    /// Its bound parameters rendered as text, when the driver reports them.
    pub params: Option<&'a str>,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
}

impl QuerySpan<'_> {
    /// How long it took; zero when it ends before it starts.
    fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }
}

/// Runs every detector over the queries of the transaction named `transaction`.
///
/// The queries may come in any order. Never panics, whatever the input: a span that
/// ends before it starts counts as taking no time, and repeated span ids are treated
/// as distinct spans. `O(n log n)` in the number of queries.
pub fn detect(
    transaction: &str,
    queries: &[QuerySpan<'_>],
    thresholds: &Thresholds,
) -> Vec<PerformanceProblem> {
    if queries.is_empty() {
        return Vec::new();
    }
    let spans = Spans::new(queries);
    let mut problems = Vec::new();

    let n_plus_one = n_plus_one(&spans, thresholds);
    let mut reported = vec![false; spans.len()];
    for found in &n_plus_one {
        for &rank in &found.ranks {
            reported[rank] = true;
        }
    }
    let duplicates = duplicates(&spans, thresholds, &reported);
    let slow = slow_queries(&spans, thresholds);
    let too_many = too_many_queries(&spans, thresholds);

    for (kind, found) in [
        (ProblemKind::NPlusOne, n_plus_one),
        (ProblemKind::DuplicateQueries, duplicates),
        (ProblemKind::SlowQuery, slow),
        (ProblemKind::TooManyQueries, too_many),
    ] {
        problems.extend(
            found
                .into_iter()
                .map(|found| spans.problem(kind, transaction, found)),
        );
    }
    problems
}

/// The queries in start order, with their durations. Detectors refer to a span by its
/// rank in this order, so "by first span" sorts are plain integer sorts and a repeated
/// span id cannot confuse anything.
struct Spans<'q, 'a> {
    sorted: Vec<&'q QuerySpan<'a>>,
    durations: Vec<Duration>,
}

impl<'q, 'a> Spans<'q, 'a> {
    fn new(queries: &'q [QuerySpan<'a>]) -> Self {
        let mut sorted: Vec<&QuerySpan<'a>> = queries.iter().collect();
        // Ties broken on everything else, so the input's order never shows in the output.
        sorted.sort_by(|a, b| {
            (a.start, a.end, a.span_id, a.group, a.statement, a.params).cmp(&(
                b.start,
                b.end,
                b.span_id,
                b.group,
                b.statement,
                b.params,
            ))
        });
        let durations = sorted.iter().map(|q| q.duration()).collect();
        Spans { sorted, durations }
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    fn total(&self, ranks: &[usize]) -> Duration {
        ranks.iter().fold(Duration::ZERO, |sum, &r| {
            sum.saturating_add(self.durations[r])
        })
    }

    /// The parent all the spans share, if they share one.
    fn common_parent(&self, ranks: &[usize]) -> Option<SpanId> {
        let first = self.sorted[*ranks.first()?].parent_span_id;
        ranks
            .iter()
            .all(|&r| self.sorted[r].parent_span_id == first)
            .then_some(first)
            .flatten()
    }

    fn problem(&self, kind: ProblemKind, transaction: &str, found: Found) -> PerformanceProblem {
        let group = found.group.map(group_hex);
        let fingerprint = match &group {
            Some(group) => hash_parts([kind.as_str(), transaction, group.as_str()]),
            None => hash_parts([kind.as_str(), transaction]),
        };
        PerformanceProblem {
            kind,
            fingerprint,
            description: found.description.to_owned(),
            query_group: group,
            parent_span_id: found.parent,
            span_ids: found
                .ranks
                .iter()
                .map(|&r| self.sorted[r].span_id)
                .collect(),
            count: u32::try_from(found.ranks.len()).unwrap_or(u32::MAX),
            duration_ms: self.total(&found.ranks).as_secs_f64() * 1000.0,
        }
    }
}

/// A problem before it is dressed for output.
struct Found<'a> {
    /// The spans, as ranks in start order, ascending.
    ranks: Vec<usize>,
    /// The query group at fault; `None` for too many queries.
    group: Option<u64>,
    description: &'a str,
    parent: Option<SpanId>,
}

/// Sorts one detector's findings by their first span.
fn by_first_span(mut found: Vec<Found<'_>>) -> Vec<Found<'_>> {
    found.sort_by_key(|f| f.ranks.first().copied());
    found
}

fn n_plus_one<'a>(spans: &Spans<'_, 'a>, thresholds: &Thresholds) -> Vec<Found<'a>> {
    let min_count = thresholds.n_plus_one_count.max(2);
    let mut siblings: HashMap<Option<SpanId>, Vec<usize>> = HashMap::new();
    for (rank, span) in spans.sorted.iter().enumerate() {
        siblings.entry(span.parent_span_id).or_default().push(rank);
    }

    // Qualifying runs, merged by (parent, group).
    let mut runs: HashMap<(Option<SpanId>, u64), Vec<usize>> = HashMap::new();
    for (parent, ranks) in &siblings {
        // Each maximal run of one group; the sibling before a run that does not start
        // at 0 has another group by construction, and is its source query.
        let mut start = 0;
        while start < ranks.len() {
            let group = spans.sorted[ranks[start]].group;
            let len = ranks[start..]
                .iter()
                .take_while(|&&r| spans.sorted[r].group == group)
                .count();
            let run = &ranks[start..start + len];
            if start > 0 && len >= min_count && spans.total(run) >= thresholds.n_plus_one_duration {
                runs.entry((*parent, group))
                    .or_default()
                    .extend_from_slice(run);
            }
            start += len;
        }
    }

    by_first_span(
        runs.into_iter()
            .map(|((parent, group), ranks)| Found {
                description: spans.sorted[ranks[0]].normalized,
                ranks,
                group: Some(group),
                parent,
            })
            .collect(),
    )
}

fn duplicates<'a>(
    spans: &Spans<'_, 'a>,
    thresholds: &Thresholds,
    reported: &[bool],
) -> Vec<Found<'a>> {
    let min_count = thresholds.duplicate_count.max(2);
    // `None` params is a key of its own: unknown params match each other by text, and
    // never match known ones.
    let mut statements: HashMap<(&str, Option<&str>), Vec<usize>> = HashMap::new();
    for (rank, span) in spans.sorted.iter().enumerate() {
        if !reported[rank] {
            statements
                .entry((span.statement, span.params))
                .or_default()
                .push(rank);
        }
    }
    by_first_span(
        statements
            .into_values()
            .filter(|ranks| ranks.len() >= min_count)
            .map(|ranks| {
                let first = spans.sorted[ranks[0]];
                Found {
                    group: Some(first.group),
                    description: first.normalized,
                    parent: spans.common_parent(&ranks),
                    ranks,
                }
            })
            .collect(),
    )
}

fn slow_queries<'a>(spans: &Spans<'_, 'a>, thresholds: &Thresholds) -> Vec<Found<'a>> {
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (rank, span) in spans.sorted.iter().enumerate() {
        if spans.durations[rank] >= thresholds.slow_query {
            groups.entry(span.group).or_default().push(rank);
        }
    }
    by_first_span(
        groups
            .into_iter()
            .map(|(group, ranks)| Found {
                group: Some(group),
                description: spans.sorted[ranks[0]].normalized,
                parent: spans.common_parent(&ranks),
                ranks,
            })
            .collect(),
    )
}

fn too_many_queries<'a>(spans: &Spans<'_, 'a>, thresholds: &Thresholds) -> Vec<Found<'a>> {
    if spans.len() < thresholds.too_many_queries.max(1) {
        return Vec::new();
    }
    // The most frequent group; on a tie, the one that ran first.
    let mut counts: HashMap<u64, (usize, usize)> = HashMap::new();
    for (rank, span) in spans.sorted.iter().enumerate() {
        counts.entry(span.group).or_insert((0, rank)).0 += 1;
    }
    let description = counts
        .into_values()
        .max_by_key(|&(count, first)| (count, std::cmp::Reverse(first)))
        .map_or("", |(_, first)| spans.sorted[first].normalized);
    let ranks: Vec<usize> = (0..spans.len()).collect();
    vec![Found {
        group: None,
        description,
        parent: spans.common_parent(&ranks),
        ranks,
    }]
}

// ---------------------------------------------------------------------------------------
// Outgoing calls

/// One outgoing HTTP call (`http.client` span) as the call detectors see it.
#[derive(Debug, Clone)]
pub struct CallSpan<'a> {
    /// The span.
    pub span_id: SpanId,
    /// The span it ran under.
    pub parent_span_id: Option<SpanId>,
    /// The method and normalised URL
    /// ([`normalize_url`](crate::outgoing::normalize_url)).
    pub normalized: &'a str,
    /// A stable hash of `normalized`.
    pub group: u64,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
}

/// Runs the outgoing-call detectors over the calls of the transaction named
/// `transaction`, in any order:
///
/// - **N+1 API calls**: at least `n_plus_one_calls` calls in a row (by start, across
///   the whole transaction) to the same normalised URL, where one call could have
///   served; the runs of one URL become one problem.
/// - **Slow external call**: every call taking at least `slow_call`; one problem per
///   normalised URL.
///
/// Each problem is fingerprinted from its kind, the transaction name and the URL's
/// group, like the query problems. Never panics, whatever the input.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use backstop_core::detect::{CallSpan, Thresholds, detect_calls};
/// use backstop_core::{ProblemKind, SpanId};
///
/// let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_000_000 + ms);
/// let calls: Vec<CallSpan> = (0..5)
///     .map(|i| CallSpan {
///         span_id: SpanId::new(),
///         parent_span_id: None,
///         normalized: "GET https://api.example/users/*",
///         group: 7,
///         start: at(i * 20),
///         end: at(i * 20 + 10),
///     })
///     .collect();
/// let problems = detect_calls("GET /team", &calls, &Thresholds::default());
/// assert_eq!(problems[0].kind, ProblemKind::NPlusOneApiCalls);
/// assert_eq!(problems[0].count, 5);
/// ```
pub fn detect_calls(
    transaction: &str,
    calls: &[CallSpan<'_>],
    thresholds: &Thresholds,
) -> Vec<PerformanceProblem> {
    if calls.is_empty() {
        return Vec::new();
    }
    let mut sorted: Vec<&CallSpan<'_>> = calls.iter().collect();
    sorted.sort_by(|a, b| {
        (a.start, a.end, a.span_id, a.group).cmp(&(b.start, b.end, b.span_id, b.group))
    });
    let duration = |c: &CallSpan<'_>| c.end.duration_since(c.start).unwrap_or_default();

    let min_count = thresholds.n_plus_one_calls.max(2);
    let mut runs: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let group = sorted[start].group;
        let len = sorted[start..]
            .iter()
            .take_while(|c| c.group == group)
            .count();
        if len >= min_count {
            let ranks = start..start + len;
            match runs.iter_mut().find(|(g, _)| *g == group) {
                Some((_, found)) => found.extend(ranks),
                None => runs.push((group, ranks.collect())),
            }
        }
        start += len;
    }

    let mut slow: Vec<(u64, Vec<usize>)> = Vec::new();
    for (rank, call) in sorted.iter().enumerate() {
        if duration(call) >= thresholds.slow_call {
            match slow.iter_mut().find(|(g, _)| *g == call.group) {
                Some((_, found)) => found.push(rank),
                None => slow.push((call.group, vec![rank])),
            }
        }
    }

    let problem = |kind: ProblemKind, (group, ranks): (u64, Vec<usize>)| {
        let group_hex = group_hex(group);
        let first = sorted[ranks[0]];
        let parent = first.parent_span_id;
        let total = ranks.iter().fold(Duration::ZERO, |sum, &r| {
            sum.saturating_add(duration(sorted[r]))
        });
        PerformanceProblem {
            kind,
            fingerprint: hash_parts([kind.as_str(), transaction, group_hex.as_str()]),
            description: first.normalized.to_owned(),
            query_group: Some(group_hex),
            parent_span_id: ranks
                .iter()
                .all(|&r| sorted[r].parent_span_id == parent)
                .then_some(parent)
                .flatten(),
            span_ids: ranks.iter().map(|&r| sorted[r].span_id).collect(),
            count: u32::try_from(ranks.len()).unwrap_or(u32::MAX),
            duration_ms: total.as_secs_f64() * 1000.0,
        }
    };
    runs.into_iter()
        .map(|found| problem(ProblemKind::NPlusOneApiCalls, found))
        .chain(
            slow.into_iter()
                .map(|found| problem(ProblemKind::SlowHttpCall, found)),
        )
        .collect()
}
