//! [`AdapterConfig`]: how both adapters are configured (the client, the HTTP options,
//! the pages, `user_from` and what is mounted beside the app), with the builder they
//! share, and [`PageRenderer`], through which the lifecycle renders a page without
//! depending on a page format.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::RequestHead;
use crate::capture::panic::PanicDetails;
use crate::client::Client;
use crate::http::{HttpOptions, HttpRequest, IpNet, PagePolicy};
use crate::protocol::{EventId, User};

/// Resolves the user of a request from the framework's view of it (its parts in tower,
/// its `HttpRequest` in actix).
pub type UserFrom<R> = Arc<dyn Fn(&R) -> Option<User> + Send + Sync>;

/// How both adapters are configured: the client, the HTTP options, the pages, how a
/// request's user is found, and what is mounted beside the app. `R` is what
/// `user_from` reads; `P` renders the pages; `M` is the mount (the dashboard's, from
/// its own crate, which core does not know; `()` mounts nothing).
pub struct AdapterConfig<R: ?Sized, P, M = ()> {
    pub(super) client: Client,
    pub(super) http: HttpOptions,
    pub(super) pages: P,
    pub(super) user_from: Option<UserFrom<R>>,
    debug_for_everyone: bool,
    mount: M,
}

/// What an adapter mounts beside the app, answering its own paths before the request's
/// lifecycle starts (the dashboard). `()` mounts nothing.
pub trait AppMount: Clone {
    /// The default mount for an app reporting to `client`.
    fn for_client(client: &Client) -> Self;

    /// Called when the adapter wraps the app (a layer's `layer`, a middleware's
    /// `new_transform`): the dashboard is made then, so a generated token's login URL
    /// is printed before the first request rather than at it.
    fn at_start(&self) {}
}

impl AppMount for () {
    fn for_client(_: &Client) -> Self {}
}

impl<R: ?Sized, P: Clone, M: Clone> Clone for AdapterConfig<R, P, M> {
    fn clone(&self) -> Self {
        AdapterConfig {
            client: self.client.clone(),
            http: self.http.clone(),
            pages: self.pages.clone(),
            user_from: self.user_from.clone(),
            debug_for_everyone: self.debug_for_everyone,
            mount: self.mount.clone(),
        }
    }
}

impl<R: ?Sized, P: fmt::Debug, M: fmt::Debug> fmt::Debug for AdapterConfig<R, P, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdapterConfig")
            .field("client", &self.client)
            .field("http", &self.http)
            .field("pages", &self.pages)
            .field("user_from", &self.user_from.is_some())
            .field("debug_for_everyone", &self.debug_for_everyone)
            .field("mount", &self.mount)
            .finish()
    }
}

impl<R: ?Sized, P: PageRenderer, M> AdapterConfig<R, P, M> {
    /// Reports to `client`, with the default HTTP options, `pages` with the debug
    /// page on when the client's environment is `development` (shown to visitors on
    /// the same machine only; see [`debug_for_everyone`](Self::debug_for_everyone)),
    /// and the mount's default for the client.
    pub fn new(client: &Client, pages: P) -> Self
    where
        M: AppMount,
    {
        let debug = client.environment() == "development";
        AdapterConfig {
            client: client.clone(),
            http: HttpOptions::new(),
            pages: pages.with_debug_page(debug),
            user_from: None,
            debug_for_everyone: false,
            mount: M::for_client(client),
        }
    }

    /// Whether a visitor at `client_ip` sees debug details: only with the debug page
    /// on, and only from this machine (the peer, or the client a trusted proxy names,
    /// is a loopback address) unless [`debug_for_everyone`](Self::debug_for_everyone).
    pub fn shows_debug_to(&self, client_ip: Option<IpAddr>) -> bool {
        let local = || {
            client_ip.is_some_and(|ip| match ip {
                IpAddr::V6(v6) => v6
                    .to_ipv4_mapped()
                    .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
                IpAddr::V4(v4) => v4.is_loopback(),
            })
        };
        self.pages.debug_page() && (self.debug_for_everyone || local())
    }
}

impl<R: ?Sized, P, M> AdapterConfig<R, P, M> {
    /// The client records go to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The HTTP options.
    pub fn http_options(&self) -> &HttpOptions {
        &self.http
    }

    /// The pages.
    pub fn page_renderer(&self) -> &P {
        &self.pages
    }

    /// The client's address and whether its request came over https, behind trusted
    /// proxies, as the lifecycle would find them: for an answer made beside it (the
    /// dashboard's).
    pub fn client_of(&self, head: &impl RequestHead) -> (Option<IpAddr>, bool) {
        let (client_ip, scheme) = self
            .http
            .client_and_scheme(head.peer(), head.is_tls(), |name| head.header(name));
        (client_ip, scheme == "https")
    }

    /// What is mounted beside the app.
    pub fn mount(&self) -> &M {
        &self.mount
    }

    /// Changes what is mounted beside the app.
    #[must_use]
    pub fn map_mount(mut self, f: impl FnOnce(M) -> M) -> Self {
        self.mount = f(self.mount);
        self
    }

    /// Replaces all HTTP options at once.
    #[must_use]
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }

    /// The pages visitors see (theme, overrides, debug page).
    #[must_use]
    pub fn pages(mut self, pages: P) -> Self {
        self.pages = pages;
        self
    }

    /// Resolves the user per request. A panic in `f` is contained: the request goes on
    /// without a user.
    #[must_use]
    pub fn user_from(mut self, f: impl Fn(&R) -> Option<User> + Send + Sync + 'static) -> Self {
        self.user_from = Some(Arc::new(f));
        self
    }

    /// Shows the debug page's details to every visitor, not only to those on this
    /// machine. For a staging service behind a VPN, say; never in production.
    #[must_use]
    pub fn debug_for_everyone(mut self, everyone: bool) -> Self {
        self.debug_for_everyone = everyone;
        self
    }

    /// Which statuses are recorded as errors (default: all 5xx).
    #[must_use]
    pub fn capture_statuses(
        mut self,
        ranges: impl IntoIterator<Item = RangeInclusive<u16>>,
    ) -> Self {
        self.http = self.http.capture_statuses(ranges);
        self
    }

    /// Which error responses become branded pages (default: empty and plain-text ones).
    #[must_use]
    pub fn page_policy(mut self, policy: PagePolicy) -> Self {
        self.http = self.http.page_policy(policy);
        self
    }

    /// Trusts a proxy's `X-Forwarded-For` / `Forwarded` / `X-Forwarded-Proto` (an
    /// address or a network).
    #[must_use]
    pub fn trust_proxy(mut self, net: impl Into<IpNet>) -> Self {
        self.http = self.http.trust_proxy(net);
        self
    }

    /// Trusts a single proxy address.
    #[must_use]
    pub fn trust_proxy_ip(self, ip: IpAddr) -> Self {
        self.trust_proxy(ip)
    }

    /// Captures JSON and form request bodies up to `max_bytes`, scrubbed. The handler
    /// still receives the body intact.
    #[must_use]
    pub fn capture_bodies(mut self, max_bytes: usize) -> Self {
        self.http = self.http.capture_bodies(max_bytes);
        self
    }
}

/// The builder methods both adapters share, written once: expands, inside an adapter
/// type's `impl` block, to methods that hand each setting to its [`AdapterConfig`]
/// through the type's own `fn configure(self, f) -> Self`. `user_from` takes the
/// adapter's own docs, with an example in its framework's terms.
#[doc(hidden)]
#[macro_export]
macro_rules! adapter_builder {
    (pages: $pages:ty, $(#[$user_from_doc:meta])* user_from: $request:ty $(,)?) => {
        $(#[$user_from_doc])*
        #[must_use]
        pub fn user_from(
            self,
            f: impl Fn(&$request) -> Option<$crate::User> + Send + Sync + 'static,
        ) -> Self {
            self.configure(|c| c.user_from(f))
        }

        /// Replaces all HTTP options at once.
        #[must_use]
        pub fn http(self, http: $crate::adapter::HttpOptions) -> Self {
            self.configure(|c| c.http(http))
        }

        /// The pages visitors see (theme, overrides, debug page).
        #[must_use]
        pub fn pages(self, pages: $pages) -> Self {
            self.configure(|c| c.pages(pages))
        }

        /// Shows the debug page's details to every visitor, not only to those on this
        /// machine (the default). For a staging service behind a VPN, say; never in
        /// production.
        #[must_use]
        pub fn debug_for_everyone(self, everyone: bool) -> Self {
            self.configure(|c| c.debug_for_everyone(everyone))
        }

        /// Which statuses are recorded as errors (default: all 5xx).
        #[must_use]
        pub fn capture_statuses(
            self,
            ranges: impl IntoIterator<Item = ::std::ops::RangeInclusive<u16>>,
        ) -> Self {
            self.configure(|c| c.capture_statuses(ranges))
        }

        /// Which error responses become branded pages (default: empty and plain-text
        /// ones).
        #[must_use]
        pub fn page_policy(self, policy: $crate::adapter::PagePolicy) -> Self {
            self.configure(|c| c.page_policy(policy))
        }

        /// Trusts a proxy's `X-Forwarded-For` / `Forwarded` / `X-Forwarded-Proto` (an
        /// address or a network).
        #[must_use]
        pub fn trust_proxy(self, net: impl Into<$crate::adapter::IpNet>) -> Self {
            self.configure(|c| c.trust_proxy(net))
        }

        /// Trusts a single proxy address.
        #[must_use]
        pub fn trust_proxy_ip(self, ip: ::std::net::IpAddr) -> Self {
            self.configure(|c| c.trust_proxy_ip(ip))
        }

        /// Captures JSON and form request bodies up to `max_bytes`, scrubbed. The
        /// handler still receives the body intact.
        #[must_use]
        pub fn capture_bodies(self, max_bytes: usize) -> Self {
            self.configure(|c| c.capture_bodies(max_bytes))
        }
    };
}

/// Renders the page that replaces an error response. `backstop-pages`' `ErrorPages`
/// implements it; the lifecycle stays free of any page format.
pub trait PageRenderer {
    /// Whether the debug page is on.
    fn debug_page(&self) -> bool;

    /// The same pages with the debug page turned on or off.
    #[must_use]
    fn with_debug_page(self, on: bool) -> Self;

    /// The page for a request, in the format its `Accept` header asks for.
    fn render_page(&self, page: &PageRequest<'_>) -> http::Response<String>;
}

/// What a page is rendered from.
#[derive(Debug)]
#[non_exhaustive]
pub struct PageRequest<'a> {
    /// The response's status.
    pub status: http::StatusCode,
    /// The request's facts (method, path, `Accept`).
    pub request: &'a HttpRequest,
    /// The event recorded for this response, if any.
    pub event_id: Option<EventId>,
    /// The text of a plain-text error body, shown as the page's detail.
    pub detail: Option<String>,
    /// Whether this visitor may see debug details (the debug page is on, and the
    /// visitor is on this machine or the team opted in for everyone). Without it, a
    /// 5xx page shows no detail either.
    pub shows_debug: bool,
    /// What the debug page shows; only there when `shows_debug`.
    pub debug: Option<PageDebug<'a>>,
    /// The original response's headers: the page keeps those of its status.
    pub response_headers: &'a http::HeaderMap,
}

/// What went wrong, for the debug page.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum PageDebug<'a> {
    /// A caught panic.
    Panic(&'a PanicDetails),
    /// An error, with its `source()` chain.
    Error(&'a (dyn std::error::Error + 'static)),
    /// An error known only by its message.
    Message(&'a dyn fmt::Display),
}

impl fmt::Debug for PageDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageDebug::Panic(details) => f.debug_tuple("Panic").field(details).finish(),
            PageDebug::Error(error) => f.debug_tuple("Error").field(&error.to_string()).finish(),
            PageDebug::Message(message) => f
                .debug_tuple("Message")
                .field(&message.to_string())
                .finish(),
        }
    }
}
