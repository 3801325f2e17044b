//! The building blocks of the default pages, as maud functions returning [`Markup`].
//!
//! An override reuses them: wrap [`content`] in your own layout, or build a page from
//! [`hero`], [`actions`] and [`support`] inside the default [`layout`].
//!
//! ```
//! use backstop_pages::{ErrorPages, PageContext, markup};
//! use http::{Method, StatusCode};
//! use maud::{DOCTYPE, html};
//!
//! let pages = ErrorPages::default().layout(|page, content| html! {
//!     (DOCTYPE)
//!     html lang=(page.labels().lang) {
//!         head { (markup::head(page)) }
//!         body {
//!             nav.site-nav { a href="/" { "Acme" } " · " a href="/docs" { "Docs" } }
//!             main.bs-main { (content) }
//!         }
//!     }
//! });
//! let html = pages.html(StatusCode::FORBIDDEN, &PageContext::new(Method::GET, "/admin"));
//! assert!(html.0.contains("site-nav"));
//! assert!(html.0.contains("Access denied"));
//! ```

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::pages::ErrorPage;
use crate::theme::Support;

/// At most this many characters of the path are echoed on a 404 page.
const MAX_SHOWN_PATH: usize = 160;

/// The default document: `<head>`, the site header, the content in `<main>`, and the
/// footer.
pub fn layout(page: &ErrorPage<'_>, content: Markup) -> Markup {
    let debug = page.debug_details().is_some();
    html! {
        (DOCTYPE)
        html lang=(page.labels().lang) {
            head { (head(page)) }
            body class=[debug.then_some("bs-debug")] {
                (site_header(page))
                main.bs-main { (content) }
                (site_footer(page))
            }
        }
    }
}

/// What goes inside `<head>`: charset, viewport, title and [`styles`].
pub fn head(page: &ErrorPage<'_>) -> Markup {
    let brand = &page.theme().brand_name;
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        meta name="color-scheme" content="light dark";
        meta name="robots" content="noindex";
        title {
            (page.status().as_u16()) " · " (page.title())
            @if !brand.is_empty() { " · " (brand) }
        }
        (styles(page))
    }
}

/// The theme's inline stylesheet, coloured for the page's status. Computed once per
/// theme; no outside asset is requested.
pub fn styles(page: &ErrorPage<'_>) -> Markup {
    let (base, status) = page.css();
    html! { style { (PreEscaped(base)) (PreEscaped(status)) } }
}

/// The header with the logo and brand name, linking home. Empty when the theme has
/// neither.
pub fn site_header(page: &ErrorPage<'_>) -> Markup {
    let theme = page.theme();
    if theme.brand_name.is_empty() && theme.logo.is_none() {
        return html! {};
    }
    html! {
        header.bs-site {
            a.bs-brand href=(theme.home_url) {
                @if let Some(logo) = &theme.logo {
                    // With a brand name beside it, the logo is decoration.
                    img.bs-logo src=(logo.src()) alt=(if theme.brand_name.is_empty() { page.labels().go_home.as_str() } else { "" });
                }
                @if !theme.brand_name.is_empty() { span { (theme.brand_name) } }
            }
        }
    }
}

/// The footer with the theme's links. Empty when there are none.
pub fn site_footer(page: &ErrorPage<'_>) -> Markup {
    let links = &page.theme().footer_links;
    if links.is_empty() {
        return html! {};
    }
    html! {
        footer.bs-footer {
            nav {
                @for link in links { a href=(link.href) { (link.label) } }
            }
        }
    }
}

/// The default content of a status's page: the coloured [`hero`], the `h1`, the
/// message, [`notes`], the detail, [`actions`] and [`support`].
pub fn content(page: &ErrorPage<'_>) -> Markup {
    html! {
        div.bs-card {
            (hero(page))
            div.bs-body {
                h1 { (page.title()) }
                p.bs-message { (page.message()) }
                (notes(page))
                @if let Some(detail) = page.detail() { p.bs-detail { (detail) } }
                (actions(page))
                (support(page))
            }
        }
    }
}

/// The coloured band with the status code.
pub fn hero(page: &ErrorPage<'_>) -> Markup {
    html! {
        div.bs-hero { p.bs-code { (page.status().as_u16()) } }
    }
}

/// The small print under the message: the path on a 404, the allowed methods on a
/// 405, when to retry on 429 and 503, "the team has been notified" on a 500, and the
/// event's [`reference()`].
pub fn notes(page: &ErrorPage<'_>) -> Markup {
    let labels = page.labels();
    let status = page.status();
    let path = &page.context().path;
    html! {
        @if status == http::StatusCode::NOT_FOUND && !path.is_empty() {
            p.bs-note { (labels.requested_path) " " code { (shorten(path, MAX_SHOWN_PATH)) } }
        }
        @if let Some(methods) = page.allowed_methods() {
            p.bs-note { (labels.allowed_methods) " " code { (methods) } }
        }
        @if let Some(seconds) = page.retry_after_seconds() {
            p.bs-note { (labels.retry_after.replace("{seconds}", &seconds.to_string())) }
        }
        @if status == http::StatusCode::INTERNAL_SERVER_ERROR
            || (status.is_server_error() && page.context().event_id.is_some())
        {
            p.bs-note { (labels.notified) }
        }
        (reference(page))
    }
}

/// The event's reference id, when an event was recorded.
pub fn reference(page: &ErrorPage<'_>) -> Markup {
    html! {
        @if let Some(id) = &page.context().event_id {
            p.bs-note.bs-ref { (page.labels().reference) ": " code { (id) } }
        }
    }
}

/// The buttons: "Sign in" on 401, "Try again" on 5xx, 408 and 429, and "Go home"
/// everywhere. The first is the primary one.
pub fn actions(page: &ErrorPage<'_>) -> Markup {
    let labels = page.labels();
    let theme = page.theme();
    let home_is_primary = !page.offers_sign_in() && !page.offers_retry();
    html! {
        div.bs-actions {
            @if page.offers_sign_in() {
                a.bs-button.bs-button-primary href=(theme.sign_in_url) { (labels.sign_in) }
            }
            @if page.offers_retry() {
                a.bs-button.bs-button-primary href=(retry_href(&page.context().path)) { (labels.try_again) }
            }
            a.bs-button.bs-button-primary[home_is_primary] href=(theme.home_url) { (labels.go_home) }
        }
    }
}

/// How to reach support, when the theme says.
pub fn support(page: &ErrorPage<'_>) -> Markup {
    let labels = page.labels();
    html! {
        @match &page.theme().support {
            Some(Support::Email(email)) => p.bs-support {
                (labels.need_help) " " a href={ "mailto:" (email) } { (labels.contact_support) }
            },
            Some(Support::Url(url)) => p.bs-support {
                (labels.need_help) " " a href=(url) { (labels.contact_support) }
            },
            None => {}
        }
    }
}

/// The debug page's content: the default heading, then the message, the error chain,
/// the backtrace with the application's frames highlighted, and the request. Empty
/// unless debug is on and the context has details.
pub fn debug_content(page: &ErrorPage<'_>) -> Markup {
    let Some(details) = page.debug_details() else {
        return html! {};
    };
    let ctx = page.context();
    html! {
        div.bs-card {
            (hero(page))
            div.bs-body {
                p.bs-banner role="note" { (page.labels().debug_banner) }
                h1 { (page.title()) }
                p.bs-message { (page.message()) }
                (notes(page))
                @if let Some(detail) = page.detail() { p.bs-detail { (detail) } }
                section.bs-section {
                    h2 { "Error" }
                    pre.bs-panic { (details.message) }
                }
                @if !details.chain.is_empty() {
                    section.bs-section {
                        h2 { "Caused by" }
                        ol.bs-chain { @for cause in &details.chain { li { (cause) } } }
                    }
                }
                @if !details.frames.is_empty() {
                    section.bs-section {
                        h2 { "Backtrace" }
                        ol.bs-frames.bs-mono {
                            @for frame in &details.frames {
                                li.bs-frame.bs-frame-app[frame.in_app] {
                                    (frame.function)
                                    @if let Some(file) = &frame.file {
                                        span.bs-frame-file {
                                            (file)
                                            @if let Some(line) = frame.line { ":" (line) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section.bs-section {
                    h2 { "Request" }
                    table.bs-request {
                        tbody {
                            tr { th scope="row" { "Method" } td.bs-mono { (ctx.method) } }
                            tr { th scope="row" { "Path" } td.bs-mono { (ctx.path) } }
                            @for (name, value) in &details.request {
                                tr { th scope="row" { (name) } td.bs-mono { (value) } }
                            }
                        }
                    }
                }
                (actions(page))
            }
        }
    }
}

/// Where "Try again" points: the request's own path, unless it could lead off-site.
fn retry_href(path: &str) -> &str {
    let local = path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\");
    if local { path } else { "" }
}

/// The first `max` characters of `text`, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}…", &text[..end]).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_never_leaves_the_site() {
        assert_eq!(retry_href("/orders?page=2"), "/orders?page=2");
        assert_eq!(retry_href("//evil.example/x"), "");
        assert_eq!(retry_href("/\\evil.example"), "");
        assert_eq!(retry_href("javascript:alert(1)"), "");
        assert_eq!(retry_href(""), "");
    }

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("ééééé", 2), "éé…");
    }
}
