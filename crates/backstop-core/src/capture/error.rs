//! Events built from what handler code captures: a message, or an error with its
//! `source()` chain.

use crate::protocol::{Event, Exception, Level, Mechanism, Values};

pub(crate) fn message_event(message: String, level: Level) -> Event {
    let mut event = Event::new(level);
    event.message = Some(message);
    event
}

/// An event for an error and its `source()` chain: the root cause first, the error
/// itself last, as Sentry orders chained exceptions.
pub fn error_event<E: std::error::Error + ?Sized>(error: &E) -> Event {
    let mut exceptions = Vec::new();
    let top_type = std::any::type_name::<E>();
    let top_type = (!top_type.starts_with("dyn ")).then_some(top_type);
    exceptions.push(exception_for(error, top_type));
    let mut source = error.source();
    // Bound the walk: a cyclic chain must not hang the request.
    while let Some(err) = source {
        if exceptions.len() >= 32 {
            break;
        }
        exceptions.push(exception_for(err, None));
        source = err.source();
    }
    exceptions.reverse();
    if let Some(top) = exceptions.last_mut() {
        top.mechanism = Some(Mechanism::new("error", true));
    }
    let mut event = Event::new(Level::Error);
    event.exception = Values { values: exceptions };
    event
}

fn exception_for<E: std::error::Error + ?Sized>(error: &E, type_name: Option<&str>) -> Exception {
    let (module, ty) = match type_name {
        Some(full) => split_type_name(full),
        None => (None, type_from_debug(&format!("{error:?}"))),
    };
    Exception {
        ty,
        value: Some(error.to_string()),
        module,
        stacktrace: None,
        mechanism: None,
    }
}

/// `core::num::error::ParseIntError` → (`core::num::error`, `ParseIntError`); generic
/// arguments are kept with the name.
fn split_type_name(full: &str) -> (Option<String>, String) {
    let base_end = full.find('<').unwrap_or(full.len());
    match full[..base_end].rfind("::") {
        Some(at) => (Some(full[..at].to_owned()), full[at + 2..].to_owned()),
        None => (None, full.to_owned()),
    }
}

/// The type name a `Debug` output starts with (`ParseIntError { kind: .. }`), as the
/// best guess for a `dyn Error` whose concrete type is unknown.
fn type_from_debug(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    if name.is_empty() || !name.chars().next().is_some_and(char::is_alphabetic) {
        "Error".to_owned()
    } else {
        name.rsplit("::").next().unwrap_or(&name).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(
            split_type_name("core::num::error::ParseIntError"),
            (Some("core::num::error".into()), "ParseIntError".into())
        );
        assert_eq!(
            split_type_name("shop::Wrapper<core::num::error::ParseIntError>"),
            (
                Some("shop".into()),
                "Wrapper<core::num::error::ParseIntError>".into()
            )
        );
        assert_eq!(
            type_from_debug("ParseIntError { kind: InvalidDigit }"),
            "ParseIntError"
        );
        assert_eq!(type_from_debug("Os { code: 2 }"), "Os");
        assert_eq!(type_from_debug("\"just a string\""), "Error");
    }
}
