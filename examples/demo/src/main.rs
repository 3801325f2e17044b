//! The Backstop demo.
//!
//! Until the axum demo lands, this records what a service would: a request that
//! panics, and one whose handler returns an error with a source chain. The console
//! sink prints one line per event; the full JSON of each follows.

use std::time::Duration;

use backstop::{Breadcrumb, Level, Options, RequestScope, User};

#[derive(Debug)]
struct CheckoutError(std::num::ParseIntError);

impl std::fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not read the quantity")
    }
}

impl std::error::Error for CheckoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn checkout(quantity: &str) -> Result<u32, CheckoutError> {
    quantity.parse().map_err(CheckoutError)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sink = backstop::test::TestSink::new();
    let backstop = backstop::init(
        Options::from_env()
            .release(concat!("backstop-demo@", env!("CARGO_PKG_VERSION")))
            .traces_sample_rate(1.0)
            .console(true)
            .sink(sink.clone()),
    )?;

    // A request whose handler panics, caught the way the adapters catch it.
    let request = RequestScope::builder(&backstop, "GET /panic")
        .op("http.server")
        .start();
    let outcome = request.run(|| {
        backstop::set_user(Some(User::with_id("42").username("ann")));
        backstop::add_breadcrumb(Breadcrumb::new("ui", "opened the cart"));
        std::panic::catch_unwind(|| {
            let basket: Vec<u32> = Vec::new();
            basket[3]
        })
    });
    if let Err(payload) = outcome {
        let id = request.capture_panic(&*payload);
        println!("the panic was recorded as event {id}");
    }
    request.finish_http(500);

    // A request whose handler returns an error with a source chain.
    let request = RequestScope::builder(&backstop, "POST /checkout")
        .op("http.server")
        .start();
    request.run(|| {
        backstop::set_tag("payment", "card");
        if let Err(error) = checkout("three") {
            let id = backstop::capture_error(&error);
            println!("the error was recorded as event {id}");
        }
        backstop::capture_message("checkout retried", Level::Warning);
    });
    request.finish_http(500);

    backstop.flush(Duration::from_secs(5));
    for event in sink.events() {
        println!("{}", serde_json::to_string_pretty(&event)?);
    }
    println!("stats: {:?}", backstop.stats());
    Ok(())
}
