//! The pages as the request lifecycle renders them (`backstop_core::adapter::Exchange`).

use backstop_core::adapter::{PageDebug, PageRenderer, PageRequest};
use http::Method;

use crate::{DebugDetails, ErrorPages, PageContext, PageFormat};

impl PageRenderer for ErrorPages {
    fn debug_page(&self) -> bool {
        self.is_debug()
    }

    fn with_debug_page(self, on: bool) -> Self {
        self.debug(on)
    }

    fn render_page(&self, page: &PageRequest<'_>) -> http::Response<String> {
        let request = page.request;
        let mut context = PageContext::new(request.method.clone(), request.path_and_query());
        if let Some(id) = page.event_id {
            context = context.with_event_id(id.to_string());
        }
        // A 5xx page's detail is a debug detail: only for a visitor who may see those.
        let detail = page.detail.as_ref();
        if let Some(detail) = detail.filter(|_| page.shows_debug || page.status.is_client_error()) {
            context = context.with_detail(detail.clone());
        }
        if let Some(debug) = page.debug {
            context = context.with_debug(match debug {
                PageDebug::Panic(panic) => DebugDetails::from_panic(panic),
                PageDebug::Error(error) => {
                    DebugDetails::new(error.to_string()).with_chain_of(error)
                }
                PageDebug::Message(message) => DebugDetails::new(message.to_string()),
                _ => DebugDetails::default(),
            });
        }
        for name in crate::status_headers(page.status) {
            for value in page.response_headers.get_all(name) {
                context = context.with_header(name.clone(), value.clone());
            }
        }
        let accept = request
            .flat
            .header("accept")
            .and_then(|v| std::str::from_utf8(v).ok());
        let format = PageFormat::negotiate_str(accept);
        self.render_as(
            page.status,
            &context,
            format,
            request.method == Method::HEAD,
        )
    }
}
