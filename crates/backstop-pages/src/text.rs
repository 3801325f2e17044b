//! The words on the pages, replaceable for translation.

/// The title and message of one status's page.
///
/// ```
/// use backstop_pages::{ErrorPages, PageText};
/// use http::StatusCode;
///
/// let pages = ErrorPages::default().text(
///     StatusCode::NOT_FOUND,
///     PageText::new("Seite nicht gefunden", "Diese Seite gibt es nicht."),
/// );
/// # let _ = pages;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageText {
    /// The `h1`.
    pub title: String,
    /// The short message under it.
    pub message: String,
}

impl PageText {
    /// A title and a message.
    pub fn new(title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            message: message.into(),
        }
    }
}

/// The words shared by every page: the language, the buttons and the small print.
///
/// Replace them all to translate the pages (with [`PageText`] for each status's title
/// and message).
///
/// ```
/// use backstop_pages::{ErrorPages, Labels};
///
/// let mut labels = Labels::default();
/// labels.lang = "de".into();
/// labels.go_home = "Zur Startseite".into();
/// let pages = ErrorPages::default().labels(labels);
/// # let _ = pages;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Labels {
    /// The page's `lang` attribute.
    pub lang: String,
    /// The "Go home" button.
    pub go_home: String,
    /// The "Try again" button on 5xx, 408 and 429 pages.
    pub try_again: String,
    /// The "Sign in" button on 401 pages.
    pub sign_in: String,
    /// Said on a 500 page, and on other 5xx pages when an event was recorded.
    pub notified: String,
    /// Precedes the event's reference id.
    pub reference: String,
    /// Shown on 429 and 503 pages when the response says when to retry; `{seconds}`
    /// is replaced by the number.
    pub retry_after: String,
    /// Precedes the path on a 404 page.
    pub requested_path: String,
    /// Precedes the methods from `Allow` on a 405 page.
    pub allowed_methods: String,
    /// Precedes the support link.
    pub need_help: String,
    /// The support link's text.
    pub contact_support: String,
    /// The debug page's warning banner.
    pub debug_banner: String,
}

impl Default for Labels {
    fn default() -> Self {
        Self {
            lang: "en".into(),
            go_home: "Go home".into(),
            try_again: "Try again".into(),
            sign_in: "Sign in".into(),
            notified: "Our team has been notified and is looking into it.".into(),
            reference: "Reference".into(),
            retry_after: "You can try again in {seconds} seconds.".into(),
            requested_path: "You asked for".into(),
            allowed_methods: "This page accepts".into(),
            need_help: "Need help?".into(),
            contact_support: "Contact support".into(),
            debug_banner: "Debug page: shown because debug is on. Visitors in production see the normal page without these details.".into(),
        }
    }
}
