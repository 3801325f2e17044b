//! Which headers and keys are secret: the rules that scrubbing
//! (`crate::pipeline::scrub`) applies on the worker. They are configuration, built and
//! checked by [`Options`](crate::Options) at init, so a bad scrub key is an
//! [`InitError`](crate::InitError) naming the setting.

/// The replacement for a scrubbed value.
pub const FILTERED: &str = "[Filtered]";

/// Headers whose values are always filtered when PII is off.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-forwarded-for",
    "x-real-ip",
];

/// Key patterns whose values are filtered when PII is off.
pub const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "auth",
    "credentials",
    "session",
    "csrf",
    "signature",
];

/// Keys nearly every record has: common request headers, and the names Backstop
/// itself writes into trace and span data. Those the rules leave alone are answered
/// from [`Scrubber::common`] without running the pattern, the largest part of
/// checking a key.
const COMMON_KEYS: [&str; 40] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "dnt",
    "host",
    "if-modified-since",
    "if-none-match",
    "origin",
    "pragma",
    "referer",
    "sec-ch-ua",
    "sec-ch-ua-mobile",
    "sec-ch-ua-platform",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "te",
    "upgrade-insecure-requests",
    "user-agent",
    "x-request-id",
    "code.filepath",
    "code.lineno",
    "code.namespace",
    "db.params",
    "db.query_group",
    "db.rows_affected",
    "db.rows_returned",
    "db.statement",
    "db.system",
    "http.response.status_code",
    "http.status_code",
    "location",
    "thread",
    "tracing",
    "spans_dropped",
];

/// The scrubbing rules of one client.
pub(crate) struct Scrubber {
    /// Off when `send_default_pii` is on.
    pub(crate) enabled: bool,
    headers: Vec<String>,
    /// Every key pattern in one case-insensitive alternation: one pass over the key,
    /// no copy (the worker checks every key of every span's data).
    keys: regex::Regex,
    /// The [`COMMON_KEYS`] that are not secret keys, each with whether it is not a
    /// secret header either.
    common: hashbrown::HashMap<&'static str, bool>,
}

impl Scrubber {
    /// The rules; an error when the extra keys can't form one pattern (there are too
    /// many of them) or one is empty (it would filter every value).
    pub(crate) fn new(
        send_default_pii: bool,
        extra_keys: Vec<String>,
        extra_headers: Vec<String>,
    ) -> Result<Self, &'static str> {
        if extra_keys.iter().any(|k| k.is_empty()) {
            return Err("a scrub key must not be empty (it would filter every value)");
        }
        let mut keys: Vec<String> = SECRET_KEYS.iter().map(|k| regex::escape(k)).collect();
        keys.extend(
            extra_keys
                .iter()
                .map(|k| regex::escape(&k.to_ascii_lowercase())),
        );
        let keys = regex::RegexBuilder::new(&keys.join("|"))
            .case_insensitive(true)
            .unicode(false)
            .build()
            .map_err(|_| "too many scrub keys to match at once")?;
        let mut headers: Vec<String> = SECRET_HEADERS.iter().map(|h| (*h).to_owned()).collect();
        headers.extend(extra_headers.into_iter().map(|h| h.to_ascii_lowercase()));
        let mut scrubber = Scrubber {
            enabled: !send_default_pii,
            headers,
            keys,
            common: hashbrown::HashMap::new(),
        };
        for key in COMMON_KEYS {
            if !scrubber.keys.is_match(key) {
                let plain_header = !scrubber.in_secret_headers(key);
                scrubber.common.insert(key, plain_header);
            }
        }
        Ok(scrubber)
    }

    /// Whether a key (query, form, JSON, tag) names a secret.
    pub(crate) fn is_secret_key(&self, key: &str) -> bool {
        !self.common.contains_key(key) && self.keys.is_match(key)
    }

    /// Whether a header's value is filtered.
    pub(crate) fn is_secret_header(&self, name: &str) -> bool {
        match self.common.get(name) {
            Some(true) => false,
            _ => self.in_secret_headers(name) || self.keys.is_match(name),
        }
    }

    fn in_secret_headers(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_follow_the_configured_rules() {
        let s = Scrubber::new(false, vec!["pin".into()], vec!["x-internal".into()]).unwrap();
        assert!(!s.is_secret_key("db.statement"));
        assert!(!s.is_secret_header("accept"));
        // A team's own key or header that names a common one takes it out of the fast
        // answer.
        let s = Scrubber::new(
            false,
            vec!["statement".into()],
            vec!["user-agent".into(), "ACCEPT".into()],
        )
        .unwrap();
        assert!(s.is_secret_key("db.statement"));
        assert!(s.is_secret_header("user-agent"));
        assert!(s.is_secret_header("accept"));
        assert!(
            !s.is_secret_key("user-agent"),
            "a secret header, not a secret key"
        );
        assert!(!s.is_secret_header("accept-language"));
        assert!(!s.common.contains_key("db.statementx"));
        assert!(!s.common.contains_key(""));
        // Every common key is a plain name: none of the built-in patterns take it, so
        // all are answered without them.
        let s = Scrubber::new(false, Vec::new(), Vec::new()).unwrap();
        assert_eq!(s.common.len(), COMMON_KEYS.len());
        assert!(s.common.values().all(|plain_header| *plain_header));
    }
}
