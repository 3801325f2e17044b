//! Grouping: which events are the same issue.
//!
//! - With a stack trace: the exception types, plus the module and function of every
//!   in-app frame. Line numbers are left out, so an edit above the bug does not split
//!   its issue.
//! - Without one: the exception types and messages (or the plain message), with the
//!   parts that vary per occurrence (numbers, UUIDs, hex ids, emails, IPs) replaced by
//!   placeholders.
//! - A custom fingerprint replaces this; the entry `{{ default }}` stands for it.
//!
//! The worker stores the result in `event.fingerprint` (the default part as one hash),
//! so Sentry groups an exported event exactly as the local store does.

use std::sync::LazyLock;

use regex::Regex;

use crate::capture::stacktrace::full_name;
use crate::protocol::{Event, Exception};

/// The marker a custom fingerprint uses for the default grouping.
pub const DEFAULT_MARKER: &str = "{{ default }}";

pub use crate::protocol::hash_parts;

/// Replaces the parts of a message that vary per occurrence with placeholders.
///
/// ```
/// use backstop_core::fingerprint::normalize_message;
/// assert_eq!(
///     normalize_message("user 42 (ann@example.com) from 10.0.0.7 hit 0xdeadbeef"),
///     "user <num> (<email>) from <ip> hit <hex>"
/// );
/// ```
pub fn normalize_message(message: &str) -> String {
    static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?P<uuid>\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b)",
            r"|(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b)",
            r"|(?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}\b|\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{1,4}\b)",
            r"|(?P<hex>\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b)",
            // Digits anywhere: `30s`, `retry3` vary as much as `30`.
            r"|(?P<num>-?\d+(?:\.\d+)?)",
        ))
        .expect("the placeholder pattern is valid")
    });
    PATTERN
        .replace_all(message, |caps: &regex::Captures<'_>| {
            for name in ["uuid", "email", "ip", "hex", "num"] {
                if caps.name(name).is_some() {
                    return format!("<{name}>");
                }
            }
            String::new()
        })
        .into_owned()
}

/// The default grouping parts of an event.
pub fn default_parts(event: &Event) -> Vec<String> {
    let exceptions = &event.exception.values;
    let in_app = |exc: &Exception| {
        exc.stacktrace.as_ref().map(|st| {
            st.frames
                .iter()
                .filter(|f| f.in_app == Some(true))
                .map(|f| strip_closure_numbers(&full_name(f)))
                .collect::<Vec<_>>()
        })
    };
    if exceptions
        .iter()
        .any(|e| in_app(e).is_some_and(|frames| !frames.is_empty()))
    {
        let mut parts = Vec::new();
        for exc in exceptions {
            parts.push(exc.ty.clone());
            parts.extend(in_app(exc).unwrap_or_default());
        }
        return parts;
    }
    if !exceptions.is_empty() {
        return exceptions
            .iter()
            .flat_map(|e| {
                [
                    e.ty.clone(),
                    e.value
                        .as_deref()
                        .map(normalize_message)
                        .unwrap_or_default(),
                ]
            })
            .collect();
    }
    vec![normalize_message(event.message.as_deref().unwrap_or(""))]
}

/// `{{closure}}` numbering is not stable across edits: keep only the marker.
fn strip_closure_numbers(name: &str) -> String {
    static CLOSURE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\{\{closure\}\}(#\d+)?|\{closure#\d+\}").expect("valid"));
    CLOSURE.replace_all(name, "{{closure}}").into_owned()
}

/// Resolves the fingerprint (custom or default) and sets the culprit.
pub(crate) fn apply(event: &mut Event) {
    let default = || hash_parts(default_parts(event).iter().map(String::as_str));
    let fingerprint = if event.fingerprint.is_empty() {
        vec![default()]
    } else {
        let default = default();
        event
            .fingerprint
            .iter()
            .map(|part| {
                if is_default_marker(part) {
                    default.clone()
                } else {
                    part.clone()
                }
            })
            .collect()
    };
    event.fingerprint = fingerprint;
    if event.culprit.is_none() {
        event.culprit = culprit(event);
    }
}

fn is_default_marker(part: &str) -> bool {
    let inner = part.trim();
    inner
        .strip_prefix("{{")
        .and_then(|s| s.strip_suffix("}}"))
        .map(str::trim)
        == Some("default")
}

/// The innermost in-app frame of the outermost exception, else the transaction.
fn culprit(event: &Event) -> Option<String> {
    event
        .exception
        .values
        .iter()
        .rev()
        .filter_map(|e| e.stacktrace.as_ref())
        .flat_map(|st| st.frames.iter().rev())
        .find(|f| f.in_app == Some(true))
        .map(|f| {
            let name = full_name(f);
            match (&f.filename, f.lineno) {
                (Some(file), Some(line)) => format!("{name} ({file}:{line})"),
                _ => name,
            }
        })
        .or_else(|| event.transaction.clone())
}

/// Whether any exception's type is on the ignore list, by full path or bare name.
pub(crate) fn is_ignored(event: &Event, ignore: &[String]) -> bool {
    if ignore.is_empty() {
        return false;
    }
    event.exception.values.iter().any(|e| {
        let full = match &e.module {
            Some(module) => format!("{module}::{}", e.ty),
            None => e.ty.clone(),
        };
        ignore.iter().any(|i| *i == e.ty || *i == full)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let cases = [
            ("order 1234 failed", "order <num> failed"),
            (
                "id 550e8400-e29b-41d4-a716-446655440000 missing",
                "id <uuid> missing",
            ),
            (
                "mail ann.lee+x@shop.example.org bounced",
                "mail <email> bounced",
            ),
            ("peer 192.168.1.20 reset", "peer <ip> reset"),
            ("peer fe80::1:2:3 reset", "peer <ip> reset"),
            ("object 5f3a9c0e1b not found", "object <hex> not found"),
            ("took 3.25 s", "took <num> s"),
            ("no numbers here", "no numbers here"),
            (
                "timed out after 30s (retry3)",
                "timed out after <num>s (retry<num>)",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_message(input), expected, "{input}");
        }
    }

    #[test]
    fn marker_forms() {
        assert!(is_default_marker("{{ default }}"));
        assert!(is_default_marker("{{default}}"));
        assert!(!is_default_marker("default"));
    }

    #[test]
    fn hash_is_stable_and_separates_parts() {
        assert_eq!(hash_parts(["a", "b"]), hash_parts(["a", "b"]));
        assert_ne!(hash_parts(["ab", "c"]), hash_parts(["a", "bc"]));
        assert_eq!(hash_parts(["x"]).len(), 32);
    }
}
