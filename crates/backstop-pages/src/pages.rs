//! [`ErrorPages`]: the configured pages, and the one call that renders a response.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use maud::Markup;

use crate::context::PageContext;
use crate::css::ThemeCss;
use crate::negotiate::PageFormat;
use crate::status::{DEFAULTS, defaults_index, offers_retry, offers_sign_in};
use crate::text::{Labels, PageText};
use crate::theme::Theme;
use crate::{markup, problem};

type PageFn = Arc<dyn Fn(&ErrorPage<'_>) -> Markup + Send + Sync>;
type LayoutFn = Arc<dyn Fn(&ErrorPage<'_>, Markup) -> Markup + Send + Sync>;

/// The error pages of a service: a [`Theme`], overrides and texts, and the one call
/// that turns a status into a response, [`ErrorPages::render`].
///
/// Cheap to clone: everything sits behind one `Arc`. Builder methods take `self`.
///
/// ```
/// use backstop_pages::{ErrorPages, PageContext, Theme};
/// use http::{HeaderValue, Method, StatusCode};
///
/// let pages = ErrorPages::new(Theme::new("Acme"));
/// let ctx = PageContext::new(Method::GET, "/missing");
/// let accept = HeaderValue::from_static("text/html");
/// let response = pages.render(StatusCode::NOT_FOUND, &ctx, Some(&accept), false);
/// assert_eq!(response.status(), StatusCode::NOT_FOUND);
/// assert!(response.body().contains("<h1>Page not found</h1>"));
/// ```
#[derive(Clone)]
pub struct ErrorPages {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) theme: Theme,
    pub(crate) css: ThemeCss,
    pub(crate) labels: Labels,
    texts: Vec<(StatusCode, PageText)>,
    pages: Vec<(StatusCode, PageFn)>,
    layout: Option<LayoutFn>,
    debug: bool,
}

impl Default for ErrorPages {
    fn default() -> Self {
        Self::new(Theme::default())
    }
}

impl fmt::Debug for ErrorPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overridden: Vec<u16> = self.inner.pages.iter().map(|(s, _)| s.as_u16()).collect();
        let texts: Vec<u16> = self.inner.texts.iter().map(|(s, _)| s.as_u16()).collect();
        f.debug_struct("ErrorPages")
            .field("theme", &self.inner.theme)
            .field("labels", &self.inner.labels)
            .field("texts", &texts)
            .field("pages", &overridden)
            .field("layout", &self.inner.layout.is_some())
            .field("debug", &self.inner.debug)
            .finish()
    }
}

impl ErrorPages {
    /// Pages with a theme and the default content.
    pub fn new(theme: Theme) -> Self {
        Self {
            inner: Arc::new(Inner {
                css: ThemeCss::new(&theme),
                theme,
                labels: Labels::default(),
                texts: Vec::new(),
                pages: Vec::new(),
                layout: None,
                debug: false,
            }),
        }
    }

    fn edit(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Replaces the theme.
    #[must_use]
    pub fn theme(mut self, theme: Theme) -> Self {
        let inner = self.edit();
        inner.css = ThemeCss::new(&theme);
        inner.theme = theme;
        self
    }

    /// Turns the debug page on or off (off by default). With it on, pages show the
    /// context's [`DebugDetails`](crate::DebugDetails): never turn it on in production.
    #[must_use]
    pub fn debug(mut self, debug: bool) -> Self {
        self.edit().debug = debug;
        self
    }

    /// Replaces a status's whole HTML page with your own maud function. It receives the
    /// [`ErrorPage`], and can reuse the building blocks in [`markup`](crate::markup).
    ///
    /// The debug page, when on, still wins, so developers keep the details.
    ///
    /// ```
    /// use backstop_pages::{ErrorPages, markup};
    /// use http::StatusCode;
    /// use maud::html;
    ///
    /// let pages = ErrorPages::default().page(StatusCode::NOT_FOUND, |page| {
    ///     markup::layout(page, html! {
    ///         h1 { "Lost in space" }
    ///         (markup::actions(page))
    ///     })
    /// });
    /// # let _ = pages;
    /// ```
    #[must_use]
    pub fn page<F>(mut self, status: StatusCode, page: F) -> Self
    where
        F: Fn(&ErrorPage<'_>) -> Markup + Send + Sync + 'static,
    {
        let pages = &mut self.edit().pages;
        pages.retain(|(s, _)| *s != status);
        pages.push((status, Arc::new(page)));
        self
    }

    /// Wraps the default content of every page in your own site layout. The function
    /// receives the page and its content (see [`markup::content`](crate::markup::content)),
    /// and returns the whole document; include [`markup::head`](crate::markup::head) so
    /// the content keeps its styles.
    #[must_use]
    pub fn layout<F>(mut self, layout: F) -> Self
    where
        F: Fn(&ErrorPage<'_>, Markup) -> Markup + Send + Sync + 'static,
    {
        self.edit().layout = Some(Arc::new(layout));
        self
    }

    /// Replaces a status's title and message, for example to translate them.
    #[must_use]
    pub fn text(mut self, status: StatusCode, text: PageText) -> Self {
        let texts = &mut self.edit().texts;
        texts.retain(|(s, _)| *s != status);
        texts.push((status, text));
        self
    }

    /// Replaces the words shared by every page, and the `lang` attribute.
    #[must_use]
    pub fn labels(mut self, labels: Labels) -> Self {
        self.edit().labels = labels;
        self
    }

    /// Whether the debug page is on.
    pub fn is_debug(&self) -> bool {
        self.inner.debug
    }

    /// The page for a status and a request, without rendering it.
    pub fn page_for<'a>(&'a self, status: StatusCode, context: &'a PageContext) -> ErrorPage<'a> {
        let inner = &*self.inner;
        let index = defaults_index(status);
        let defaults = &DEFAULTS[index];
        let (title, message) = match inner.texts.iter().find(|(s, _)| *s == status) {
            Some((_, text)) => (text.title.as_str(), text.message.as_str()),
            None => match (index >= crate::STATUSES.len(), status.canonical_reason()) {
                (true, Some(reason)) => (reason, defaults.message),
                _ => (defaults.title, defaults.message),
            },
        };
        ErrorPage {
            status,
            context,
            inner,
            index,
            title,
            message,
        }
    }

    /// Renders the error page for a status as a response, in the format the `Accept`
    /// header asks for (see [`PageFormat::negotiate`]). With `is_head`, the body is
    /// empty and the headers are the same.
    ///
    /// The response carries `Content-Type` with a charset, `X-Content-Type-Options:
    /// nosniff`, `Cache-Control: no-store`, `Vary: Accept`, and those of the context's
    /// headers that belong to the status ([`status_headers`](crate::status_headers)).
    pub fn render(
        &self,
        status: StatusCode,
        context: &PageContext,
        accept: Option<&HeaderValue>,
        is_head: bool,
    ) -> Response<String> {
        self.render_as(status, context, PageFormat::negotiate(accept), is_head)
    }

    /// Like [`render`](Self::render), with the format already chosen.
    pub fn render_as(
        &self,
        status: StatusCode,
        context: &PageContext,
        format: PageFormat,
        is_head: bool,
    ) -> Response<String> {
        let body = if is_head {
            String::new()
        } else {
            let body = |pages: &ErrorPages| {
                let page = pages.page_for(status, context);
                match format {
                    PageFormat::Html => page.html().into_string(),
                    PageFormat::ProblemJson => problem::json(&page),
                    PageFormat::PlainText => problem::text(&page),
                }
            };
            // A team's override or layout is its own code: if it panics, the visitor
            // still gets a page, the default one.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(self)))
                .unwrap_or_else(|_| body(&ErrorPages::default()))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::VARY, HeaderValue::from_static("accept"));
        for name in crate::status_headers(status) {
            for value in context.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        response
    }

    /// The HTML document for a status, as [`render`](Self::render) would send it.
    pub fn html(&self, status: StatusCode, context: &PageContext) -> Markup {
        self.page_for(status, context).html()
    }
}

/// One page being rendered: the status, the request's [`PageContext`], and the
/// configuration. Overrides receive it, and the building blocks in
/// [`markup`](crate::markup) take it.
pub struct ErrorPage<'a> {
    status: StatusCode,
    context: &'a PageContext,
    inner: &'a Inner,
    index: usize,
    title: &'a str,
    message: &'a str,
}

impl fmt::Debug for ErrorPage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorPage")
            .field("status", &self.status)
            .field("title", &self.title)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl<'a> ErrorPage<'a> {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The request's context.
    pub fn context(&self) -> &'a PageContext {
        self.context
    }

    /// The theme.
    pub fn theme(&self) -> &'a Theme {
        &self.inner.theme
    }

    /// The shared words.
    pub fn labels(&self) -> &'a Labels {
        &self.inner.labels
    }

    /// The title (the `h1`), after text overrides.
    pub fn title(&self) -> &'a str {
        self.title
    }

    /// The message under the title, after text overrides.
    pub fn message(&self) -> &'a str {
        self.message
    }

    /// The detail text, when this page may show it: on 4xx pages, or with debug on.
    pub fn detail(&self) -> Option<&'a str> {
        let shown = self.status.is_client_error() || self.inner.debug;
        self.context.detail.as_deref().filter(|_| shown)
    }

    /// The debug details, when the debug page is on and there are some.
    pub fn debug_details(&self) -> Option<&'a crate::DebugDetails> {
        self.context.debug.as_ref().filter(|_| self.inner.debug)
    }

    /// Whether the page offers "Try again": 5xx, 408 and 429.
    pub fn offers_retry(&self) -> bool {
        offers_retry(self.status)
    }

    /// Whether the page offers "Sign in": 401.
    pub fn offers_sign_in(&self) -> bool {
        offers_sign_in(self.status)
    }

    /// The seconds from a `Retry-After` header that belongs to the status, if it gives
    /// a number.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        if !crate::status_headers(self.status).contains(&header::RETRY_AFTER) {
            return None;
        }
        let value = self
            .context
            .headers
            .get(header::RETRY_AFTER)?
            .to_str()
            .ok()?;
        value.trim().parse().ok()
    }

    /// The methods from an `Allow` header on a 405 page.
    pub fn allowed_methods(&self) -> Option<&'a str> {
        if self.status != StatusCode::METHOD_NOT_ALLOWED {
            return None;
        }
        let value = self
            .context
            .headers
            .get(header::ALLOW)?
            .to_str()
            .ok()?
            .trim();
        (!value.is_empty()).then_some(value)
    }

    /// The theme's stylesheet for this status.
    pub(crate) fn css(&self) -> (&'a str, &'a str) {
        let css = &self.inner.css;
        (&css.base, css.status_vars(self.status, self.index))
    }

    /// The whole HTML document: the debug page when on, else the status's override,
    /// else the default content in the layout (yours, or the default one).
    pub fn html(&self) -> Markup {
        if self.debug_details().is_some() {
            return markup::layout(self, markup::debug_content(self));
        }
        if let Some((_, page)) = self.inner.pages.iter().find(|(s, _)| *s == self.status) {
            return page(self);
        }
        let content = markup::content(self);
        match &self.inner.layout {
            Some(layout) => layout(self, content),
            None => markup::layout(self, content),
        }
    }
}
