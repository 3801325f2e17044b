//! Kent, a fake Sentry server from PyPI, for end-to-end tests: [`Kent::start`] runs
//! `kent-server` from the workspace's `target/venv` on a free loopback port.
//!
//! Kent gives every item it receives its own id; [`Kent::items`] returns each with the
//! `event_id` of its body, which is what tests match on. It keeps the last 100 items.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `kent-server`, stopped when dropped.
#[derive(Debug)]
pub struct Kent {
    child: Child,
    addr: SocketAddr,
    agent: ureq::Agent,
}

/// One item Kent received.
#[derive(Debug, Clone)]
pub struct KentItem {
    /// The envelope's header.
    pub envelope_header: Value,
    /// The item's header (`type` tells events, transactions and client reports apart).
    pub header: Value,
    /// The item's payload.
    pub body: Value,
}

impl KentItem {
    /// The item type (`event`, `transaction`, `client_report`).
    pub fn item_type(&self) -> &str {
        self.header["type"].as_str().unwrap_or_default()
    }

    /// The `event_id` in the payload.
    pub fn event_id(&self) -> Option<&str> {
        self.body["event_id"].as_str()
    }
}

/// Where `.ci/run` (and a developer) installs Kent:
/// `python3 -m venv target/venv && target/venv/bin/pip install kent aiosmtpd`.
pub fn kent_server_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/kent-server")
}

impl Kent {
    /// Starts Kent and waits until it answers. Panics, saying how to install it, when it
    /// is not installed: a test that needs it must not pass without it.
    pub fn start() -> Kent {
        Kent::start_on(Kent::free_port())
    }

    /// A loopback port nothing listens on now: a DSN for it points at a server that is
    /// down until [`Kent::start_on`] starts one there.
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port()
    }

    /// The DSN for project 1 of a Kent on `port` (started or not).
    pub fn dsn_for(port: u16) -> String {
        format!("http://public@127.0.0.1:{port}/1")
    }

    /// Starts Kent on `port`, as [`Kent::start`] does.
    pub fn start_on(port: u16) -> Kent {
        let path = kent_server_path();
        assert!(
            path.exists(),
            "Kent is not installed at {}: run `python3 -m venv target/venv && \
             target/venv/bin/pip install kent aiosmtpd` in the workspace root",
            path.display()
        );
        let child = Command::new(&path)
            .args([
                "run",
                "--host",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--no-reload",
                "--no-debugger",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let kent = Kent {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while kent.list().is_err() {
            assert!(
                Instant::now() < deadline,
                "Kent did not start on {}",
                kent.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        kent
    }

    /// A DSN for project 1 on this server.
    pub fn dsn(&self) -> String {
        Kent::dsn_for(self.addr.port())
    }

    fn get(&self, path: &str) -> Result<Value, ureq::Error> {
        let bytes = self
            .agent
            .get(format!("http://{}{path}", self.addr))
            .call()?
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()?;
        serde_json::from_slice(&bytes).map_err(|e| ureq::Error::Io(e.into()))
    }

    fn list(&self) -> Result<Vec<String>, ureq::Error> {
        let list = self.get("/api/eventlist/")?;
        Ok(list["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["event_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Every item Kent holds, oldest first.
    pub fn items(&self) -> Vec<KentItem> {
        let ids = self.list().unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.get(&format!("/api/event/{id}")).ok())
            .map(|e| KentItem {
                envelope_header: e["payload"]["envelope_header"].clone(),
                header: e["payload"]["header"].clone(),
                body: e["payload"]["body"].clone(),
            })
            .collect()
    }

    /// Polls until `done` holds for the items Kent holds, for at most `timeout`;
    /// returns the last items seen.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[KentItem]) -> bool,
    ) -> Vec<KentItem> {
        let deadline = Instant::now() + timeout;
        loop {
            let items = self.items();
            if done(&items) || Instant::now() >= deadline {
                return items;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Kent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
