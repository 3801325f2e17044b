//! A store filled by the real pipeline, and a way to run the real binary on it.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use backstop_core::detect::Thresholds;
use backstop_core::{BackstopGuard, Event, EventId, Level, Options, RequestScope, User};
use backstop_store::SqliteStore;

/// How long anything may take on a loaded machine before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const RELEASE: &str = "shop@1.2.0";
pub const ENVIRONMENT: &str = "staging";
pub const N_PLUS_ONE: &str = "SELECT * FROM posts WHERE user_id = ?";

/// A store file with a client writing to it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub backstop: BackstopGuard,
}

/// What [`seeded`] captured.
pub struct Seeded {
    pub fixture: Fixture,
    /// The `ParseIntError` captured in `GET /checkout`, whose request failed (500).
    pub checkout_event: EventId,
    /// The warning message captured outside any request.
    pub disk_event: EventId,
}

/// An empty store with a client whose worker writes to it. The N+1 detector's time
/// threshold is off, so a handful of fast queries is an N+1.
pub fn fixture() -> Fixture {
    fixture_sampling(1.0)
}

/// Like [`fixture`], sampling `rate` of requests.
pub fn fixture_sampling(rate: f64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backstop.db");
    let store = SqliteStore::open(&path).unwrap();
    let backstop = backstop_core::test::start(
        Options::new()
            .sink(store)
            .console(false)
            .install_panic_hook(false)
            .release(RELEASE)
            .environment(ENVIRONMENT)
            .traces_sample_rate(rate)
            .problem_thresholds(Thresholds {
                n_plus_one_duration: Duration::ZERO,
                ..Thresholds::default()
            }),
    )
    .unwrap();
    Fixture {
        dir,
        path,
        backstop,
    }
}

impl Fixture {
    pub fn flush(&self) {
        assert!(self.backstop.flush(PATIENCE), "the pipeline flushed");
    }

    /// A `GET /checkout` request that fails on a `ParseIntError`, for user 9.
    pub fn checkout_failure(&self) -> EventId {
        let scope = RequestScope::builder(&self.backstop, "GET /checkout")
            .op("http.server")
            .sampled(true)
            .start();
        scope.configure(|s| s.set_user(Some(User::with_id("9"))));
        let err = "x".parse::<u32>().unwrap_err();
        let id = scope.capture_error(&err);
        scope.finish_http(500);
        id
    }

    /// A `GET /users` request that loads the users, then each one's posts: an N+1 of
    /// `posts` queries on a real SQLite database.
    pub fn users_request(&self, users: usize) {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY);
             CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER);",
        )
        .unwrap();
        for i in 0..users {
            db.execute("INSERT INTO users (id) VALUES (?1)", [i as i64])
                .unwrap();
        }
        let scope = RequestScope::builder(&self.backstop, "GET /users")
            .op("http.server")
            .sampled(true)
            .start();
        scope.run(|| {
            let sql = "SELECT id FROM users";
            let span = backstop_core::db_span("sqlite", sql);
            let ids: Vec<i64> = db
                .prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            drop(span);
            for id in ids {
                let sql = "SELECT * FROM posts WHERE user_id = ?1";
                let _span = backstop_core::db_span("sqlite", sql);
                db.prepare(sql)
                    .unwrap()
                    .query_map([id], |_| Ok(()))
                    .unwrap()
                    .count();
            }
        });
        scope.finish_http(200);
    }

    /// A fast `GET /` request.
    pub fn home_request(&self) {
        let scope = RequestScope::builder(&self.backstop, "GET /")
            .op("http.server")
            .sampled(true)
            .start();
        scope.finish_http(200);
    }

    /// A warning message outside any request.
    pub fn message(&self, text: &str) -> EventId {
        let mut event = Event::new(Level::Warning);
        event.message = Some(text.into());
        self.backstop.capture_event(event)
    }

    /// `n` issues, each with one long error message.
    pub fn many_issues(&self, n: usize) {
        for i in 0..n {
            let mut event = Event::new(Level::Error);
            event.message = Some(format!("failure {i}: {}", "the long story ".repeat(20)));
            event.fingerprint = vec![format!("issue-{i}")];
            self.backstop.capture_event(event);
        }
        self.flush();
    }

    /// Runs `backstop ARGS --db <this store>`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--db", self.path.to_str().unwrap()]);
        run_in(self.dir.path(), &all)
    }
}

/// One failing checkout, three N+1 user lists, two home page views and a warning.
pub fn seeded() -> Seeded {
    let fixture = fixture();
    let checkout_event = fixture.checkout_failure();
    for _ in 0..3 {
        fixture.users_request(6);
    }
    fixture.home_request();
    fixture.home_request();
    let disk_event = fixture.message("disk almost full");
    fixture.flush();
    Seeded {
        fixture,
        checkout_event,
        disk_event,
    }
}

/// The binary, run in `dir` with no `BACKSTOP_DB`, so that only what a test passes
/// names a store.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backstop"));
    cmd.current_dir(dir)
        .env_remove("BACKSTOP_DB")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null());
    cmd
}

pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The command succeeded; its stdout as JSON.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The command failed with `code`, one line on stderr and nothing on stdout; that line.
pub fn failure(out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(stdout(out), "", "nothing on stdout");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("backstop: "), "{err}");
    err
}

/// A running `backstop tail`, its output read on threads. Killed when dropped, so a
/// failing test leaves no process behind.
pub struct Tailing {
    pub child: Child,
    pub lines: Receiver<String>,
}

impl Drop for Tailing {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts `backstop tail ARGS` on the fixture's store and waits until it follows.
pub fn tail(fixture: &Fixture, args: &[&str]) -> Tailing {
    let mut child = command(fixture.dir.path())
        .arg("tail")
        .args(["--interval", "50ms", "--db", fixture.path.to_str().unwrap()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_following(child.stderr.take().unwrap());
    let lines = read_lines(child.stdout.take().unwrap());
    Tailing { child, lines }
}

/// Blocks until tail says on stderr that it follows the file (it has read where the
/// store ends, so anything captured from now on is new to it).
pub fn wait_until_following(stderr: ChildStderr) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining, so the child never blocks on a full pipe.
        let _ = reader.read_to_end(&mut Vec::new());
    });
    let line = rx.recv_timeout(PATIENCE).expect("tail started");
    assert!(line.starts_with("following "), "{line:?}");
}

pub fn read_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Lines from `rx` until `done` holds for what was collected, or [`PATIENCE`] passes.
pub fn collect_until(rx: &Receiver<String>, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("timed out; got {lines:#?}"),
        }
    }
    lines
}

/// Waits for the child to exit, killing it if it outlasts [`PATIENCE`].
pub fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
