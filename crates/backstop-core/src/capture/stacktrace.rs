//! Turning a captured backtrace into Sentry frames: symbolise (on the worker), trim the
//! panic machinery and Backstop's own frames from the top, and mark which frames are
//! the application's (`in_app`).

use crate::options::Settings;
use crate::protocol::{Frame, Stacktrace};

/// Crates whose frames are never the application's own.
const NOT_IN_APP: &[&str] = &[
    "std",
    "core",
    "alloc",
    "backtrace",
    "tokio",
    "futures",
    "futures_core",
    "futures_util",
    "futures_executor",
    "hyper",
    "hyper_util",
    "h2",
    "tower",
    "tower_http",
    "tower_service",
    "tower_layer",
    "axum",
    "axum_core",
    "actix_web",
    "actix_http",
    "actix_server",
    "actix_service",
    "actix_rt",
    "actix_utils",
    "tracing",
    "tracing_core",
    "tracing_subscriber",
    "sqlx",
    "sqlx_core",
    "sqlx_sqlite",
    "sqlx_postgres",
    "sqlx_mysql",
    "rusqlite",
    "serde",
    "serde_json",
    "test",
    "criterion",
    "pin_project_lite",
    "backstop",
    "backstop_core",
    "backstop_tower",
    "backstop_actix",
    "backstop_pages",
    "backstop_store",
    "backstop_sentry",
    "backstop_dashboard",
];

/// Functions that belong to the panic machinery; everything above the last of them is
/// trimmed.
const PANIC_MACHINERY: &[&str] = &[
    "std::panicking::",
    "core::panicking::",
    "core::panic::",
    "rust_begin_unwind",
    "__rustc::rust_begin_unwind",
    "std::sys::backtrace::",
    "std::sys_common::backtrace::",
    "std::rt::begin_panic",
    "backtrace::",
    "backstop_core::capture::panic::",
];

/// Symbolises a backtrace captured by the panic hook.
pub(crate) fn from_backtrace(
    mut backtrace: backtrace::Backtrace,
    settings: &Settings,
) -> Stacktrace {
    backtrace.resolve();
    // Innermost first, as the backtrace gives them.
    let mut frames: Vec<Frame> = Vec::new();
    for frame in backtrace.frames() {
        let ip = format!("{:#x}", frame.ip() as usize);
        let symbols = frame.symbols();
        if symbols.is_empty() {
            frames.push(Frame {
                instruction_addr: Some(ip),
                ..Frame::default()
            });
            continue;
        }
        for symbol in symbols {
            let name = symbol.name().map(|n| format!("{n:#}"));
            let (module, function) = match &name {
                Some(name) => split_name(name),
                None => (None, None),
            };
            let path = symbol.filename().map(|p| p.display().to_string());
            frames.push(Frame {
                function,
                module,
                filename: path.as_deref().map(short_filename),
                abs_path: path,
                lineno: symbol.lineno().map(u64::from),
                colno: symbol.colno().map(u64::from),
                in_app: None,
                instruction_addr: Some(ip.clone()),
            });
        }
    }
    // Drop the run of panic machinery (and unsymbolised frames) at the top: the hook,
    // the backtrace capture, std's panic entry points. The first frame after it is the
    // code that panicked.
    let cut = frames
        .iter()
        .position(|f| !(is_machinery(f) || (f.function.is_none() && f.module.is_none())))
        .unwrap_or(0);
    frames.drain(..cut);
    // Below the entry point is the runtime's start-up: of no interest.
    if let Some(end) = frames
        .iter()
        .position(|f| full_name(f).contains("__rust_begin_short_backtrace"))
    {
        frames.truncate(end);
    }
    frames.reverse();
    let mut stacktrace = Stacktrace { frames };
    mark_in_app(&mut stacktrace, settings);
    stacktrace
}

/// Sets `in_app` on each frame that has no verdict yet.
pub(crate) fn mark_in_app(stacktrace: &mut Stacktrace, settings: &Settings) {
    for frame in &mut stacktrace.frames {
        if frame.in_app.is_some() {
            continue;
        }
        let name = full_name(frame);
        let matches = |prefixes: &[String]| prefixes.iter().any(|p| name.starts_with(p.as_str()));
        frame.in_app = Some(if matches(&settings.in_app_include) {
            true
        } else if matches(&settings.in_app_exclude) {
            false
        } else {
            match frame_crate(&name) {
                Some(krate) => !NOT_IN_APP.contains(&krate),
                None => false,
            }
        });
    }
}

fn is_machinery(frame: &Frame) -> bool {
    let name = full_name(frame);
    // The boxed hook's `Fn::call` frame names the hook's argument type.
    PANIC_MACHINERY.iter().any(|m| name.starts_with(m)) || name.contains("PanicHookInfo")
}

/// `module::function`, or whichever of the two is known.
pub(crate) fn full_name(frame: &Frame) -> String {
    match (&frame.module, &frame.function) {
        (Some(m), Some(f)) => format!("{m}::{f}"),
        (None, Some(f)) => f.clone(),
        (Some(m), None) => m.clone(),
        (None, None) => String::new(),
    }
}

/// The crate a demangled path belongs to: the first segment; for `<Type as Trait>`,
/// the type's crate, or the trait's when the type is a primitive (`usize`, `[T]`, `&str`).
pub(crate) fn frame_crate(name: &str) -> Option<&str> {
    fn first_segment(path: &str) -> Option<&str> {
        let path = path.trim_start_matches(['<', '&', '*', ' ']);
        let path = path.strip_prefix("mut ").unwrap_or(path);
        let path = path.strip_prefix("dyn ").unwrap_or(path);
        let end = path
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(path.len());
        let krate = &path[..end];
        // A path without `::` after its first segment is a primitive or a bare name.
        (!krate.is_empty() && path[end..].starts_with("::")).then_some(krate)
    }
    if let Some(inner) = name.strip_prefix('<') {
        let ty_end = inner.find(" as ").unwrap_or(inner.len());
        if let Some(krate) = first_segment(&inner[..ty_end]) {
            return Some(krate);
        }
        if ty_end < inner.len() {
            return first_segment(&inner[ty_end + 4..]);
        }
        return None;
    }
    first_segment(name).or_else(|| {
        let end = name
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(name.len());
        (end > 0).then_some(&name[..end])
    })
}

/// Splits `a::b::Type::method::{{closure}}` into the module path (`a::b::Type`) and the
/// function (`method::{{closure}}`), at the last `::` outside angle brackets that is not
/// followed by a closure marker.
pub(crate) fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let mut depth = 0i32;
    let mut separators = Vec::new();
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                separators.push(i);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let split = separators
        .iter()
        .rev()
        .find(|&&at| !name[at + 2..].starts_with("{{"))
        .copied();
    match split {
        Some(at) => (Some(name[..at].to_owned()), Some(name[at + 2..].to_owned())),
        None => (None, Some(name.to_owned())),
    }
}

/// The path relative to the crate (`src/routes.rs`), as Sentry shows it.
fn short_filename(path: &str) -> String {
    if let Some(at) = path.rfind("/src/") {
        return path[at + 1..].to_owned();
    }
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_module_and_function() {
        assert_eq!(
            split_name("demo::routes::handler::{{closure}}"),
            (
                Some("demo::routes".into()),
                Some("handler::{{closure}}".into())
            )
        );
        assert_eq!(
            split_name("<demo::Foo as core::fmt::Display>::fmt"),
            (
                Some("<demo::Foo as core::fmt::Display>".into()),
                Some("fmt".into())
            )
        );
        assert_eq!(split_name("main"), (None, Some("main".into())));
    }

    #[test]
    fn finds_the_crate() {
        assert_eq!(frame_crate("demo::routes::handler"), Some("demo"));
        assert_eq!(
            frame_crate("<demo::Foo as core::fmt::Display>::fmt"),
            Some("demo")
        );
        assert_eq!(frame_crate("<&mut shop::Cart as Drop>::drop"), Some("shop"));
        assert_eq!(frame_crate(""), None);
        assert_eq!(
            frame_crate("<usize as core::slice::index::SliceIndex<[T]>>::index"),
            Some("core")
        );
        assert_eq!(frame_crate("<[T] as shop::Sum>::sum"), Some("shop"));
        assert_eq!(frame_crate("main"), Some("main"));
    }

    #[test]
    fn shortens_filenames() {
        assert_eq!(
            short_filename("/home/u/shop/src/routes.rs"),
            "src/routes.rs"
        );
        assert_eq!(short_filename("routes.rs"), "routes.rs");
    }
}
