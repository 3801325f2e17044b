//! The performance-problem detectors, through the public API only.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backstop_core::detect::{QuerySpan, Thresholds, detect};
use backstop_core::{PerformanceProblem, ProblemKind, SpanId};

const USERS: &str = "SELECT * FROM users";
const POSTS: &str = "SELECT * FROM posts WHERE user_id = $1";
const COMMENTS: &str = "SELECT * FROM comments WHERE post_id = $1";
const JOIN: &str = "SELECT * FROM users JOIN posts ON posts.user_id = users.id";

/// An owned query, so tests can build lists freely and borrow them as [`QuerySpan`]s.
#[derive(Clone)]
struct Query {
    id: SpanId,
    parent: Option<SpanId>,
    sql: &'static str,
    params: Option<String>,
    start: SystemTime,
    end: SystemTime,
}

fn group(normalized: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    normalized.hash(&mut hasher);
    hasher.finish()
}

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn query(
    parent: SpanId,
    sql: &'static str,
    params: Option<&str>,
    start_ms: u64,
    dur_ms: u64,
) -> Query {
    Query {
        id: SpanId::new(),
        parent: Some(parent),
        sql,
        params: params.map(str::to_owned),
        start: at(start_ms),
        end: at(start_ms + dur_ms),
    }
}

/// The statement is the normalised SQL itself: these tests vary params, not text.
fn spans(queries: &[Query]) -> Vec<QuerySpan<'_>> {
    queries
        .iter()
        .map(|q| QuerySpan {
            span_id: q.id,
            parent_span_id: q.parent,
            normalized: q.sql,
            group: group(q.sql),
            statement: q.sql,
            params: q.params.as_deref(),
            start: q.start,
            end: q.end,
        })
        .collect()
}

fn run(queries: &[Query]) -> Vec<PerformanceProblem> {
    detect("GET /users", &spans(queries), &Thresholds::default())
}

fn run_with(queries: &[Query], thresholds: &Thresholds) -> Vec<PerformanceProblem> {
    detect("GET /users", &spans(queries), thresholds)
}

fn kinds(problems: &[PerformanceProblem]) -> Vec<ProblemKind> {
    problems.iter().map(|p| p.kind).collect()
}

/// One users query, then `n` posts queries (params `1..=n` when `params`), each
/// `dur_ms` long, one after the other.
fn classic(root: SpanId, n: u64, dur_ms: u64, params: bool) -> Vec<Query> {
    let mut queries = vec![query(root, USERS, params.then_some("[]"), 0, 5)];
    for i in 1..=n {
        let p = i.to_string();
        queries.push(query(
            root,
            POSTS,
            params.then_some(p.as_str()),
            10 + i * dur_ms,
            dur_ms,
        ));
    }
    queries
}

#[test]
fn classic_n_plus_one_is_one_problem_and_not_also_a_duplicate() {
    let root = SpanId::new();
    for params in [true, false] {
        let queries = classic(root, 20, 3, params);
        let problems = run(&queries);
        assert_eq!(
            kinds(&problems),
            [ProblemKind::NPlusOne],
            "params known: {params}"
        );
        let p = &problems[0];
        assert_eq!(p.description, POSTS);
        assert_eq!(p.query_group, Some(format!("{:016x}", group(POSTS))));
        assert_eq!(p.parent_span_id, Some(root));
        let expected: Vec<SpanId> = queries[1..].iter().map(|q| q.id).collect();
        assert_eq!(p.span_ids, expected);
        assert_eq!(p.count, 20);
        assert!((p.duration_ms - 60.0).abs() < 1e-6, "{}", p.duration_ms);
        assert_eq!(p.summary(), format!("20 queries like `{POSTS}` took 60 ms"));
    }
}

#[test]
fn the_fixed_version_with_one_join_is_fine() {
    let root = SpanId::new();
    let queries = vec![query(root, JOIN, Some("[]"), 0, 20)];
    assert!(run(&queries).is_empty());
}

#[test]
fn four_repeats_are_not_enough() {
    let root = SpanId::new();
    assert!(run(&classic(root, 4, 20, true)).is_empty());
}

#[test]
fn five_quick_repeats_need_the_zero_duration_floor() {
    let root = SpanId::new();
    let queries = classic(root, 5, 8, true);
    assert!(run(&queries).is_empty(), "40 ms is under the 50 ms default");

    let dev = Thresholds {
        n_plus_one_duration: Duration::ZERO,
        ..Thresholds::default()
    };
    let problems = run_with(&queries, &dev);
    assert_eq!(kinds(&problems), [ProblemKind::NPlusOne]);
    assert_eq!(problems[0].count, 5);
    assert!((problems[0].duration_ms - 40.0).abs() < 1e-6);

    // Even instantaneous queries.
    let instant = classic(root, 5, 0, true);
    assert_eq!(kinds(&run_with(&instant, &dev)), [ProblemKind::NPlusOne]);
}

#[test]
fn repeats_without_a_source_query_are_not_n_plus_one() {
    let root = SpanId::new();
    let different: Vec<Query> = (0..10)
        .map(|i| query(root, POSTS, Some(&i.to_string()), i * 10, 10))
        .collect();
    assert!(run(&different).is_empty());

    // Identical ones are duplicates, though.
    let identical: Vec<Query> = (0..10)
        .map(|i| query(root, POSTS, Some("7"), i * 10, 10))
        .collect();
    let problems = run(&identical);
    assert_eq!(kinds(&problems), [ProblemKind::DuplicateQueries]);
    assert_eq!(problems[0].count, 10);
    assert_eq!(problems[0].parent_span_id, Some(root));

    // A source query under another parent does not count.
    let mut elsewhere = vec![query(SpanId::new(), USERS, Some("[]"), 0, 5)];
    elsewhere.extend((1..=10).map(|i| query(root, POSTS, Some(&i.to_string()), i * 10, 10)));
    assert!(run(&elsewhere).is_empty());
}

/// Under each of `parents`: one user query, then `repeats` post queries, each with its
/// own params.
fn under_each(parents: [SpanId; 2], repeats: u64) -> Vec<Query> {
    let mut queries = Vec::new();
    for (offset, parent) in [0, 1000].into_iter().zip(parents) {
        queries.push(query(parent, USERS, Some(&offset.to_string()), offset, 5));
        for i in 1..=repeats {
            queries.push(query(
                parent,
                POSTS,
                Some(&format!("{offset}-{i}")),
                offset + i * 20,
                20,
            ));
        }
    }
    queries
}

#[test]
fn repeats_split_across_two_parents() {
    // Three under each: neither parent has five consecutive repeats.
    let (a, b) = (SpanId::new(), SpanId::new());
    assert!(run(&under_each([a, b], 3)).is_empty());

    // Six under each: one problem per parent, same fingerprint (same issue).
    let queries = under_each([a, b], 6);
    let problems = run(&queries);
    assert_eq!(
        kinds(&problems),
        [ProblemKind::NPlusOne, ProblemKind::NPlusOne]
    );
    assert_eq!(problems[0].parent_span_id, Some(a));
    assert_eq!(problems[1].parent_span_id, Some(b));
    assert_eq!(problems[0].count, 6);
    assert_eq!(problems[0].fingerprint, problems[1].fingerprint);
}

#[test]
fn two_runs_under_one_parent_merge_into_one_problem() {
    let root = SpanId::new();
    let mut queries = classic(root, 6, 10, true);
    queries.push(query(root, USERS, Some("[2]"), 500, 5));
    for i in 1..=7 {
        queries.push(query(
            root,
            POSTS,
            Some(&(100 + i).to_string()),
            500 + i * 10,
            10,
        ));
    }
    let problems = run(&queries);
    assert_eq!(kinds(&problems), [ProblemKind::NPlusOne]);
    assert_eq!(problems[0].count, 13);
    assert!((problems[0].duration_ms - 130.0).abs() < 1e-6);
    let expected: Vec<SpanId> = queries
        .iter()
        .filter(|q| q.sql == POSTS)
        .map(|q| q.id)
        .collect();
    assert_eq!(problems[0].span_ids, expected);
}

#[test]
fn concurrent_repeats_are_still_n_plus_one() {
    // `join_all` over the users: the posts queries overlap.
    let root = SpanId::new();
    let mut queries = vec![query(root, USERS, Some("[]"), 0, 5)];
    for i in 1..=10 {
        queries.push(query(root, POSTS, Some(&i.to_string()), 10 + i, 30));
    }
    let problems = run(&queries);
    assert_eq!(kinds(&problems), [ProblemKind::NPlusOne]);
    assert_eq!(problems[0].count, 10);
    assert!((problems[0].duration_ms - 300.0).abs() < 1e-6);
}

#[test]
fn an_interleaved_pattern_is_not_n_plus_one() {
    let root = SpanId::new();
    let mut queries = vec![query(root, USERS, Some("[]"), 0, 5)];
    for i in 0..10u64 {
        let p = i.to_string();
        queries.push(query(root, POSTS, Some(&p), 10 + i * 40, 20));
        queries.push(query(root, COMMENTS, Some(&p), 30 + i * 40, 20));
    }
    assert!(run(&queries).is_empty());
}

#[test]
fn duplicates_compare_params_when_known_and_text_when_not() {
    let root = SpanId::new();
    let same = vec![
        query(root, POSTS, Some("1"), 0, 5),
        query(root, USERS, Some("[]"), 10, 5),
        query(root, POSTS, Some("1"), 20, 7),
    ];
    let problems = run(&same);
    assert_eq!(kinds(&problems), [ProblemKind::DuplicateQueries]);
    assert_eq!(problems[0].description, POSTS);
    assert_eq!(problems[0].span_ids, [same[0].id, same[2].id]);
    assert_eq!(problems[0].count, 2);
    assert!((problems[0].duration_ms - 12.0).abs() < 1e-6);
    assert_eq!(
        problems[0].summary(),
        format!("2 queries like `{POSTS}` took 12 ms")
    );

    let different = vec![
        query(root, POSTS, Some("1"), 0, 5),
        query(root, POSTS, Some("2"), 20, 5),
    ];
    assert!(run(&different).is_empty());

    let unknown = vec![
        query(root, POSTS, None, 0, 5),
        query(root, POSTS, None, 20, 5),
    ];
    assert_eq!(kinds(&run(&unknown)), [ProblemKind::DuplicateQueries]);

    // Unknown params never match known ones.
    let mixed = vec![
        query(root, POSTS, None, 0, 5),
        query(root, POSTS, Some("1"), 20, 5),
    ];
    assert!(run(&mixed).is_empty());
}

#[test]
fn slow_queries_start_at_the_threshold() {
    let root = SpanId::new();
    assert!(run(&[query(root, JOIN, None, 0, 499)]).is_empty());

    let queries = vec![
        query(root, JOIN, None, 0, 500),
        query(root, USERS, None, 600, 10),
        query(root, JOIN, Some("x"), 700, 800),
    ];
    let problems = run(&queries);
    assert_eq!(kinds(&problems), [ProblemKind::SlowQuery]);
    assert_eq!(problems[0].span_ids, [queries[0].id, queries[2].id]);
    assert_eq!(problems[0].count, 2);
    assert!((problems[0].duration_ms - 1300.0).abs() < 1e-6);
    assert_eq!(problems[0].description, JOIN);
    assert_eq!(
        problems[0].summary(),
        format!("2 slow queries like `{JOIN}` took 1300 ms")
    );
}

#[test]
fn too_many_queries_start_at_fifty() {
    let root = SpanId::new();
    let many = |n: u64| -> Vec<Query> {
        (0..n)
            .map(|i| {
                let sql = if i % 3 == 0 { USERS } else { COMMENTS };
                query(root, sql, Some(&i.to_string()), i * 2, 1)
            })
            .collect()
    };
    // Alternating groups: no N+1 run, all params different: no duplicates.
    assert!(run(&many(49)).is_empty());

    let queries = many(50);
    let problems = run(&queries);
    assert_eq!(kinds(&problems), [ProblemKind::TooManyQueries]);
    let p = &problems[0];
    assert_eq!(p.description, COMMENTS);
    assert_eq!(p.query_group, None);
    assert_eq!(p.count, 50);
    assert_eq!(p.span_ids, queries.iter().map(|q| q.id).collect::<Vec<_>>());
    assert!((p.duration_ms - 50.0).abs() < 1e-6);
    assert_eq!(p.summary(), "50 queries in one request took 50 ms");
}

#[test]
fn fingerprints_are_stable_per_route_and_query() {
    let root = SpanId::new();
    let first = run(&classic(root, 20, 3, true));
    let again = run(&classic(SpanId::new(), 8, 10, false));
    assert_eq!(first[0].fingerprint, again[0].fingerprint);

    let other_route = detect(
        "GET /posts",
        &spans(&classic(root, 20, 3, true)),
        &Thresholds::default(),
    );
    assert_ne!(first[0].fingerprint, other_route[0].fingerprint);

    // Same route, other kind of problem on the same query: another issue.
    let slow = run(&[query(root, POSTS, None, 0, 600)]);
    assert_ne!(first[0].fingerprint, slow[0].fingerprint);
}

#[test]
fn output_is_ordered_by_kind_then_first_span_whatever_the_input_order() {
    let root = SpanId::new();
    let mut queries = classic(root, 20, 3, true);
    // A slow join, a duplicated comments query, and enough to be too many.
    queries.push(query(root, JOIN, None, 1000, 600));
    queries.push(query(root, COMMENTS, Some("1"), 2000, 1));
    queries.push(query(root, COMMENTS, Some("1"), 2010, 1));
    queries.push(query(root, USERS, Some("9"), 2020, 1));
    queries.push(query(root, USERS, Some("9"), 2030, 1));
    for i in 0..30 {
        queries.push(query(root, JOIN, Some(&i.to_string()), 3000 + i * 10, 1));
    }
    let expected = run(&queries);
    assert_eq!(
        kinds(&expected),
        [
            ProblemKind::NPlusOne,
            ProblemKind::DuplicateQueries,
            ProblemKind::DuplicateQueries,
            ProblemKind::SlowQuery,
            ProblemKind::TooManyQueries,
        ]
    );
    assert_eq!(expected[1].description, COMMENTS);
    assert_eq!(expected[2].description, USERS);

    let mut shuffled = queries.clone();
    shuffled.reverse();
    assert_eq!(run(&shuffled), expected);
    for seed in 0..5 {
        fastrand_shuffle(&mut shuffled, seed);
        assert_eq!(run(&shuffled), expected);
    }
}

/// A small deterministic shuffle, so the test needs no extra dependency.
fn fastrand_shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (state >> 33) as usize % (i + 1);
        items.swap(i, j);
    }
}

#[test]
fn hostile_inputs_do_not_panic() {
    let t = Thresholds::default();
    assert!(detect("GET /", &[], &t).is_empty());

    // Zero thresholds everywhere: nothing on empty input, sensible results otherwise.
    let zero = Thresholds {
        n_plus_one_count: 0,
        n_plus_one_duration: Duration::ZERO,
        duplicate_count: 0,
        slow_query: Duration::ZERO,
        too_many_queries: 0,
        ..Thresholds::default()
    };
    assert!(detect("GET /", &[], &zero).is_empty());
    let root = SpanId::new();
    let single = vec![query(root, USERS, None, 0, 1)];
    let problems = run_with(&single, &zero);
    // One query is neither an N+1 nor a duplicate, even with thresholds of 0.
    assert_eq!(
        kinds(&problems),
        [ProblemKind::SlowQuery, ProblemKind::TooManyQueries]
    );
    let one = Thresholds {
        n_plus_one_count: 1,
        duplicate_count: 1,
        ..zero.clone()
    };
    assert_eq!(run_with(&single, &one), problems);

    // n_plus_one_count below 2 counts as 2: a source and two repeats is an N+1.
    let two = vec![
        query(root, USERS, None, 0, 1),
        query(root, POSTS, Some("1"), 2, 1),
        query(root, POSTS, Some("2"), 4, 1),
    ];
    let problems = run_with(&two, &zero);
    assert_eq!(problems[0].kind, ProblemKind::NPlusOne);
    assert_eq!(problems[0].count, 2);
    let one_repeat = &two[..2];
    assert!(
        !kinds(&run_with(one_repeat, &zero)).contains(&ProblemKind::NPlusOne),
        "one query after the source is no repeat"
    );

    // Ends before starts, the epoch, far futures, repeated ids, no parent.
    let id = SpanId::new();
    let mut odd = vec![
        Query {
            id,
            parent: None,
            sql: USERS,
            params: None,
            start: at(100),
            end: at(0),
        },
        Query {
            id,
            parent: None,
            sql: USERS,
            params: None,
            start: UNIX_EPOCH,
            end: UNIX_EPOCH,
        },
        Query {
            id,
            parent: None,
            sql: POSTS,
            params: Some(String::new()),
            start: UNIX_EPOCH,
            end: UNIX_EPOCH + Duration::from_secs(u64::MAX / 4),
        },
    ];
    for _ in 0..10 {
        odd.push(Query {
            id,
            parent: None,
            sql: POSTS,
            params: None,
            start: at(5),
            end: UNIX_EPOCH + Duration::from_secs(u64::MAX / 4),
        });
    }
    for thresholds in [&t, &zero] {
        let problems = run_with(&odd, thresholds);
        for p in &problems {
            assert!(p.duration_ms.is_finite() && p.duration_ms >= 0.0);
            assert!(!p.summary().is_empty());
        }
    }
    let problems = run(&odd);
    assert!(kinds(&problems).contains(&ProblemKind::NPlusOne));
    assert!(kinds(&problems).contains(&ProblemKind::SlowQuery));

    // A thousand identical queries: one duplicate problem and one too-many.
    let thousand: Vec<Query> = (0..1000).map(|i| query(root, USERS, None, i, 1)).collect();
    let problems = run(&thousand);
    assert_eq!(
        kinds(&problems),
        [ProblemKind::DuplicateQueries, ProblemKind::TooManyQueries]
    );
    assert_eq!(problems[0].count, 1000);
}

// ---------------------------------------------------------------------------------------
// Outgoing calls

mod calls {
    use std::time::{Duration, UNIX_EPOCH};

    use backstop_core::detect::{CallSpan, Thresholds, detect_calls};
    use backstop_core::{ProblemKind, SpanId};

    const RATES: &str = "GET https://rates.example/eur";
    const USER: &str = "GET https://api.example/users/*";

    fn call(normalized: &'static str, start_ms: u64, took_ms: u64) -> CallSpan<'static> {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_000_000 + ms);
        CallSpan {
            span_id: SpanId::new(),
            parent_span_id: None,
            normalized,
            group: group_of(normalized),
            start: at(start_ms),
            end: at(start_ms + took_ms),
        }
    }

    fn group_of(text: &str) -> u64 {
        text.bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
    }

    fn kinds(calls: &[CallSpan<'_>]) -> Vec<ProblemKind> {
        detect_calls("GET /team", calls, &Thresholds::default())
            .iter()
            .map(|p| p.kind)
            .collect()
    }

    #[test]
    fn five_calls_in_a_row_to_one_url_are_an_n_plus_one() {
        let five: Vec<_> = (0..5).map(|i| call(USER, i * 10, 5)).collect();
        let problems = detect_calls("GET /team", &five, &Thresholds::default());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, ProblemKind::NPlusOneApiCalls);
        assert_eq!(problems[0].count, 5);
        assert_eq!(problems[0].description, USER);
        assert_eq!(problems[0].duration_ms, 25.0);
        assert_eq!(
            problems[0].summary(),
            format!("5 calls to `{USER}` in a row took 25 ms")
        );
        // Four are not; nor five broken up by another call.
        assert!(kinds(&five[..4]).is_empty());
        let mut broken = five.clone();
        broken.insert(2, call(RATES, 15, 1));
        assert!(kinds(&broken).is_empty());
        // The input's order does not matter.
        let mut reversed = five.clone();
        reversed.reverse();
        assert_eq!(kinds(&reversed), [ProblemKind::NPlusOneApiCalls]);
    }

    #[test]
    fn two_runs_of_one_url_are_one_problem_with_a_stable_fingerprint() {
        let mut calls: Vec<_> = (0..5).map(|i| call(USER, i * 10, 5)).collect();
        calls.push(call(RATES, 60, 5));
        calls.extend((0..6).map(|i| call(USER, 100 + i * 10, 5)));
        let problems = detect_calls("GET /team", &calls, &Thresholds::default());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].count, 11);
        let again = detect_calls("GET /team", &calls[..5], &Thresholds::default());
        assert_eq!(
            again[0].fingerprint, problems[0].fingerprint,
            "same route, same URL"
        );
        let elsewhere = detect_calls("GET /other", &calls[..5], &Thresholds::default());
        assert_ne!(elsewhere[0].fingerprint, problems[0].fingerprint);
    }

    #[test]
    fn calls_over_the_threshold_are_slow_one_problem_per_url() {
        let calls = vec![
            call(RATES, 0, 600),
            call(USER, 700, 10),
            call(RATES, 800, 500),
            call(USER, 1400, 499),
        ];
        let problems = detect_calls("GET /team", &calls, &Thresholds::default());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, ProblemKind::SlowHttpCall);
        assert_eq!((problems[0].count, problems[0].duration_ms), (2, 1100.0));
        let strict = Thresholds {
            slow_call: Duration::from_millis(5),
            ..Thresholds::default()
        };
        assert_eq!(detect_calls("GET /team", &calls, &strict).len(), 2);
    }

    #[test]
    fn hostile_input_never_panics() {
        assert!(kinds(&[]).is_empty());
        let mut backwards = call(RATES, 100, 0);
        backwards.end = UNIX_EPOCH;
        let zero = Thresholds {
            n_plus_one_calls: 0,
            slow_call: Duration::ZERO,
            ..Thresholds::default()
        };
        let problems = detect_calls("", &[backwards.clone(), backwards], &zero);
        assert_eq!(
            problems.iter().map(|p| p.kind).collect::<Vec<_>>(),
            [ProblemKind::NPlusOneApiCalls, ProblemKind::SlowHttpCall]
        );
    }
}
