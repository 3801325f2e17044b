//! The demos' application data: 20 users with 3 posts each, in a real SQLite file read
//! through sqlx. Both demos serve it on `/users` (with an N+1: one query for the users,
//! then one per user) and `/users/fixed` (the same data in one join). The checkout's
//! exchange rates ([`Rates`]), which both demos serve on `/checkout`, fetched from
//! their own `/api/rates` ([`rates`]) through a cache. Also the detection thresholds
//! both demos (and their tests) run with.
//!
//! ```no_run
//! # async fn run() -> Result<(), sqlx::Error> {
//! let pool = backstop_demo_data::open("demo-data.db").await?;
//! let users = backstop_demo_data::users_n_plus_one(&pool).await?;
//! assert_eq!(users.len(), 20);
//! # Ok(()) }
//! ```

use std::path::Path;

mod checkout;
pub use checkout::{Checkout, RATES_DELAY, Rates, RatesError, rates};

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
pub use sqlx::{Error, SqlitePool};

/// The problem thresholds the demos run with: the production defaults, with no
/// duration floor for N+1 queries. A development setting: SQLite answers in
/// microseconds, so every N+1 is flagged however little time it took.
pub fn thresholds() -> backstop_core::detect::Thresholds {
    backstop_core::detect::Thresholds {
        n_plus_one_duration: std::time::Duration::ZERO,
        ..Default::default()
    }
}

/// The paths both demos serve (the demo contract), as they print them at start; an
/// unknown path stands for the 404.
pub const ROUTES: [&str; 11] = [
    "/",
    "/panic",
    "/error",
    "/forbidden",
    "/bad-request",
    "/no/such/page",
    "/users",
    "/users/fixed",
    "/slow",
    "/checkout",
    "/api/rates",
];

/// The dashboard as a demo served at `own` mounts it: configured from the environment
/// like any app's, with the demo's own address as the base URL (unless
/// `BACKSTOP_DASHBOARD_URL` names another), so the login URL printed at start is one a
/// browser can open.
pub fn dashboard(
    environment: &str,
    own: std::net::SocketAddr,
) -> backstop_dashboard::DashboardConfig {
    let config = backstop_dashboard::DashboardConfig::from_env().environment(environment);
    match std::env::var_os(backstop_dashboard::URL_ENV) {
        Some(_) => config,
        None => config.base_url(format!("http://{own}/_backstop")),
    }
}

/// How many users the seed creates.
pub const USERS: i64 = 20;
/// How many posts each seeded user has.
pub const POSTS_PER_USER: i64 = 3;

/// A user and the titles of their posts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserPosts {
    /// The user's id.
    pub id: i64,
    /// The user's name.
    pub name: String,
    /// The titles of their posts, oldest first.
    pub posts: Vec<String>,
}

/// Opens (creating if needed) the SQLite file at `path`, creates the tables and seeds
/// them when empty.
pub async fn open(path: impl AsRef<Path>) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    // One connection, opened here and kept: the demo's requests then show only their
    // own queries, not a new connection's setup (`PRAGMA ...`) in the middle of them.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    seed(&pool).await?;
    Ok(pool)
}

async fn seed(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS users (
            id    INTEGER PRIMARY KEY,
            name  TEXT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS posts (
            id       INTEGER PRIMARY KEY,
            user_id  INTEGER NOT NULL REFERENCES users (id),
            title    TEXT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    if count == 0 {
        for id in 1..=USERS {
            sqlx::query("INSERT INTO users (id, name) VALUES (?, ?)")
                .bind(id)
                .bind(format!("user {id}"))
                .execute(&mut *tx)
                .await?;
            for n in 1..=POSTS_PER_USER {
                sqlx::query("INSERT INTO posts (user_id, title) VALUES (?, ?)")
                    .bind(id)
                    .bind(format!("post {n} by user {id}"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await
}

/// Every user with their posts, the slow way: one query for the users, then one query
/// per user for their posts (an N+1).
#[tracing::instrument(skip_all)]
pub async fn users_n_plus_one(pool: &SqlitePool) -> Result<Vec<UserPosts>, sqlx::Error> {
    let users: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM users ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(users.len());
    for (id, name) in users {
        let posts: Vec<(String,)> =
            sqlx::query_as("SELECT title FROM posts WHERE user_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(pool)
                .await?;
        out.push(UserPosts {
            id,
            name,
            posts: posts.into_iter().map(|(title,)| title).collect(),
        });
    }
    Ok(out)
}

/// The same data in one query, with a join.
#[tracing::instrument(skip_all)]
pub async fn users_joined(pool: &SqlitePool) -> Result<Vec<UserPosts>, sqlx::Error> {
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT users.id, users.name, posts.title
         FROM users LEFT JOIN posts ON posts.user_id = users.id
         ORDER BY users.id, posts.id",
    )
    .fetch_all(pool)
    .await?;
    let mut out: Vec<UserPosts> = Vec::new();
    for (id, name, title) in rows {
        if out.last().map(|u| u.id) != Some(id) {
            out.push(UserPosts {
                id,
                name,
                posts: Vec::new(),
            });
        }
        if let (Some(user), Some(title)) = (out.last_mut(), title) {
            user.posts.push(title);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_reads_give_the_same_data_and_reopening_does_not_reseed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.db");
        let pool = open(&path).await.unwrap();
        let slow = users_n_plus_one(&pool).await.unwrap();
        let fast = users_joined(&pool).await.unwrap();
        assert_eq!(slow.len(), USERS as usize);
        assert!(
            slow.iter()
                .all(|u| u.posts.len() == POSTS_PER_USER as usize)
        );
        assert_eq!(slow, fast);
        pool.close().await;

        let pool = open(&path).await.unwrap();
        let (posts,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(posts, USERS * POSTS_PER_USER);
    }
}
