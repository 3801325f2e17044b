//! PII scrubbing, on the worker, before anything reaches a sink.
//!
//! With `send_default_pii` off (the default):
//! - secret headers (`Authorization`, `Cookie`, `X-Api-Key`, ...) and headers whose
//!   name matches a secret key pattern are replaced by `[Filtered]`;
//! - query-string, form and JSON keys that match a secret pattern (`password`, `token`,
//!   `session`, ...) have their values replaced by `[Filtered]`, wherever they appear:
//!   the URL, the body, extra data, contexts, tags, breadcrumb and span data;
//! - the user's email and IP, cookies and `REMOTE_ADDR` are removed.
//!
//! Patterns match case-insensitively, as substrings: `user_password` is caught by
//! `password`.

use serde_json::Value;

use crate::options::secrets::{FILTERED, Scrubber};
use crate::protocol::{Event, Map, Request, Transaction, User};

// The rules (`Scrubber`: which headers and keys are secret) are configuration, built
// and checked at init; this is where the worker applies them.

impl Scrubber {
    pub(crate) fn event(&self, event: &mut Event) {
        if !self.enabled {
            return;
        }
        if let Some(request) = &mut event.request {
            self.request(request);
        }
        if let Some(user) = &mut event.user {
            scrub_user(user);
        }
        self.tags(&mut event.tags);
        self.map(&mut event.extra);
        for value in event.contexts.values_mut() {
            self.value(value);
        }
        for crumb in &mut event.breadcrumbs.values {
            self.map(&mut crumb.data);
        }
    }

    pub(crate) fn transaction(&self, transaction: &mut Transaction) {
        if !self.enabled {
            return;
        }
        if let Some(request) = &mut transaction.request {
            self.request(request);
        }
        if let Some(user) = &mut transaction.user {
            scrub_user(user);
        }
        self.tags(&mut transaction.tags);
        self.map(&mut transaction.extra);
        self.map(&mut transaction.trace.data);
        for value in transaction.contexts.values_mut() {
            self.value(value);
        }
        for span in &mut transaction.spans {
            self.map(&mut span.data);
            self.tags(&mut span.tags);
            if span
                .op
                .as_deref()
                .is_some_and(|op| op.starts_with("cache."))
                && let Some(key) = &mut span.description
            {
                *key = self.cache_key(key);
            }
        }
    }

    fn request(&self, request: &mut Request) {
        for (name, value) in request.headers.iter_mut() {
            if self.is_secret_header(name) {
                *value = FILTERED.to_owned();
            }
        }
        request.cookies = None;
        request.env.remove("REMOTE_ADDR");
        if let Some(query) = &mut request.query_string {
            *query = self.query(query);
        }
        if let Some(url) = &mut request.url
            && let Some((base, query)) = url.split_once('?')
        {
            *url = format!("{base}?{}", self.query(query));
        }
        if let Some(data) = &mut request.data {
            *data = self.body(data);
        }
    }

    /// Filters the values of secret keys in `a=1&password=x`, leaving the rest as it was.
    pub(crate) fn query(&self, query: &str) -> String {
        query
            .split('&')
            .map(|pair| {
                let (raw_key, _) = pair.split_once('=').unwrap_or((pair, ""));
                let key = url::form_urlencoded::parse(raw_key.as_bytes())
                    .next()
                    .map(|(k, _)| k.into_owned())
                    .unwrap_or_default();
                if pair.contains('=') && self.is_secret_key(&key) {
                    format!("{raw_key}={}", FILTERED)
                } else {
                    pair.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// A captured body: JSON is scrubbed key by key; JSON that does not parse (a body
    /// cut at the capture limit) has the values of secret keys filtered in its text;
    /// anything else is treated as a form.
    fn body(&self, body: &str) -> String {
        match serde_json::from_str::<Value>(body) {
            Ok(mut value) => {
                self.value(&mut value);
                value.to_string()
            }
            Err(_) if body.trim_start().starts_with(['{', '[']) => self.raw_json(body),
            Err(_) if body.contains('=') => self.query(body),
            Err(_) => body.to_owned(),
        }
    }

    /// Filters `"secret_key": value` pairs in text that is JSON-like but not valid
    /// JSON; a value cut off at the end is filtered too.
    fn raw_json(&self, body: &str) -> String {
        static PAIR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r#""((?:[^"\\]|\\.)*)"\s*:\s*("(?:[^"\\]|\\.)*"?|[^,}\]\s]*)"#)
                .expect("valid pattern")
        });
        PAIR.replace_all(body, |caps: &regex::Captures<'_>| {
            let key = &caps[1];
            if self.is_secret_key(key) {
                format!(r#""{key}":"{FILTERED}""#)
            } else {
                caps[0].to_owned()
            }
        })
        .into_owned()
    }

    fn tags(&self, tags: &mut std::collections::BTreeMap<String, String>) {
        for (key, value) in tags.iter_mut() {
            if self.is_secret_key(key) {
                *value = FILTERED.to_owned();
            }
        }
    }

    /// Filters the secrets in a cache key: the values of `token=…` pairs, and the
    /// segment after one that names a secret (`session:…`).
    pub(crate) fn cache_key(&self, key: &str) -> String {
        let mut out = String::with_capacity(key.len());
        let mut after_secret = false;
        for (i, segment) in key.split(':').enumerate() {
            if i > 0 {
                out.push(':');
            }
            if after_secret {
                out.push_str(FILTERED);
                after_secret = false;
            } else if segment.contains('=') {
                out.push_str(&self.query(segment));
            } else {
                out.push_str(segment);
                after_secret = self.is_secret_key(segment);
            }
        }
        out
    }

    fn map(&self, map: &mut Map) {
        for (key, value) in map.iter_mut() {
            // An outgoing call's query and a cache key hold secrets inside the value.
            if let Value::String(text) = value {
                match key.as_str() {
                    "http.query" => {
                        *text = self.query(text);
                        continue;
                    }
                    "cache.key" => {
                        *text = self.cache_key(text);
                        continue;
                    }
                    _ => {}
                }
            }
            if self.is_secret_key(key) {
                *value = Value::String(FILTERED.to_owned());
            } else {
                self.value(value);
            }
        }
    }

    fn value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => self.map(map),
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            _ => {}
        }
    }
}

fn scrub_user(user: &mut User) {
    user.email = None;
    user.ip_address = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> Scrubber {
        Scrubber::new(false, vec!["pin".into()], vec!["x-internal".into()]).unwrap()
    }

    #[test]
    fn query_keeps_order_and_filters_secrets() {
        let s = scrubber();
        assert_eq!(
            s.query("page=2&password=hunter2&q=shoes&api_key=abc&PIN=1234"),
            "page=2&password=[Filtered]&q=shoes&api_key=[Filtered]&PIN=[Filtered]"
        );
        assert_eq!(s.query("flag&user_token=x"), "flag&user_token=[Filtered]");
        assert_eq!(s.query("pass%77ord=x"), "pass%77ord=[Filtered]");
    }

    #[test]
    fn json_bodies_are_scrubbed_deeply() {
        let s = scrubber();
        let out = s.body(r#"{"user":{"name":"ann","password":"x"},"items":[{"session_id":"s"}]}"#);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["user"]["name"], "ann");
        assert_eq!(v["user"]["password"], FILTERED);
        assert_eq!(v["items"][0]["session_id"], FILTERED);
    }

    #[test]
    fn json_cut_at_the_limit_is_still_scrubbed() {
        let s = scrubber();
        let out = s.body(r#"{"user":"ann","password":"hunt"#);
        assert!(!out.contains("hunt"), "{out}");
        assert!(out.contains(r#""user":"ann""#), "{out}");
        let out = s.body(r#"[{"api_key": 12345, "n": 1}, {"token":"abc\"def"#);
        assert!(!out.contains("12345") && !out.contains("abc"), "{out}");
        assert!(out.contains(r#""n": 1"#), "{out}");
    }

    #[test]
    fn cache_keys_lose_their_secrets() {
        let s = scrubber();
        assert_eq!(s.cache_key("rates:EUR"), "rates:EUR");
        assert_eq!(
            s.cache_key("session:abc123:cart"),
            "session:[Filtered]:cart"
        );
        assert_eq!(
            s.cache_key("user:7:token=abc&x=1"),
            "user:7:token=[Filtered]&x=1"
        );
        assert_eq!(s.cache_key(""), "");
    }

    #[test]
    fn headers() {
        let s = scrubber();
        assert!(s.is_secret_header("Authorization"));
        assert!(s.is_secret_header("X-Internal"));
        assert!(s.is_secret_header("X-Auth-Token"));
        assert!(!s.is_secret_header("Accept"));
    }
}
