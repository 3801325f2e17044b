//! Who gets in: the token, the session cookie, CSRF tokens and the limit on failed
//! attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "backstop_dashboard";
/// Failed token attempts allowed per client within [`WINDOW`].
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at most; a flood of addresses cannot grow memory without bound.
const MAX_CLIENTS: usize = 10_000;

/// The peer's address, put in the request's extensions by whoever accepted the
/// connection (the standalone server, or an adapter). Failed attempts are counted per
/// address; requests without one share a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// `n` random bytes as lowercase hex, from the operating system's generator.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness is an environment broken beyond what a dashboard can fix;
        // a predictable token would be worse than none, so the caller gets an empty
        // string and treats the dashboard as off.
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The secrets of one running dashboard.
pub(crate) struct Keys {
    /// What `?token=` must be.
    pub(crate) token: String,
    /// What the session cookie holds: random per process, so the token itself never
    /// sits in a cookie.
    pub(crate) session: String,
    /// What every form carries.
    pub(crate) csrf: String,
}

impl Keys {
    pub(crate) fn new(token: String) -> Option<Keys> {
        let (session, csrf) = (random_hex(32), random_hex(32));
        (!token.is_empty() && !session.is_empty() && !csrf.is_empty()).then_some(Keys {
            token,
            session,
            csrf,
        })
    }

    pub(crate) fn token_ok(&self, given: &str) -> bool {
        same(given, &self.token)
    }

    pub(crate) fn cookie_ok(&self, cookie_header: Option<&str>) -> bool {
        cookie_header.is_some_and(|h| {
            h.split(';')
                .filter_map(|c| c.trim().split_once('='))
                .any(|(name, value)| name == COOKIE && same(value, &self.session))
        })
    }

    pub(crate) fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| same(g, &self.csrf))
    }
}

/// Failed attempts per client address.
#[derive(Default)]
pub(crate) struct Attempts {
    clients: Mutex<HashMap<Option<IpAddr>, (u32, Instant)>>,
}

impl Attempts {
    /// Whether this client has used up its attempts.
    pub(crate) fn blocked(&self, client: Option<IpAddr>) -> bool {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .get(&client)
            .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < WINDOW)
    }

    pub(crate) fn failed(&self, client: Option<IpAddr>) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if clients.len() >= MAX_CLIENTS {
                clients.clear();
            }
        }
        let entry = clients.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}
