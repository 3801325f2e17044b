//! Runs the actix overhead bench's requests in a plain loop, for counting what one
//! request costs under valgrind (see backstop-tower's `request_loop` example, which
//! this mirrors):
//!
//! ```text
//! cargo build --release -p backstop-actix --example actix_request_loop
//! valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/actix_request_loop transactions /hello 5000
//! ```
//!
//! Arguments: the stack (`bare`, `errors` or `transactions`), the route (`/hello` or
//! `/query`) and how many requests to time, after 1,000 warm-up requests on each
//! stack.

use std::time::Duration;

use actix_web::dev::Service;
use actix_web::{App, test, web};
use backstop_actix::Backstop;
use backstop_core::test::DiscardSink;
use backstop_core::{Client, Options};
use tracing_subscriber::layer::SubscriberExt;

async fn hello() -> &'static str {
    "hello"
}

/// The query route: five sqlx-style query events inside a span.
async fn query() -> &'static str {
    backstop_core::test::sqlx_style_queries();
    "queried"
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/hello", web::get().to(hello))
        .route("/query", web::get().to(query));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let stack = args.next().unwrap_or_else(|| "transactions".into());
    let path = args.next().unwrap_or_else(|| "/hello".into());
    let n: u32 = args.next().map_or(10_000, |n| n.parse().expect("a count"));
    let rate = match stack.as_str() {
        "bare" | "transactions" => 1.0,
        "errors" => 0.0,
        other => panic!("unknown stack {other}: bare, errors or transactions"),
    };

    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    let _tracing = tracing::subscriber::set_default(subscriber);
    let client = Client::start(
        Options::new()
            .traces_sample_rate(rate)
            .queue_capacity(1 << 16)
            .install_panic_hook(false)
            .sink(DiscardSink),
    )
    .expect("the client starts");
    let system = actix_web::rt::System::new();
    let backstop = system.block_on(test::init_service(
        App::new().wrap(Backstop::new(&client)).configure(routes),
    ));
    let bare = system.block_on(test::init_service(App::new().configure(routes)));
    let request = || {
        test::TestRequest::get()
            .uri(&path)
            .insert_header(("user-agent", "bench/1.0"))
            .insert_header(("accept", "*/*"))
            .to_request()
    };
    system.block_on(async {
        for _ in 0..1000 {
            std::hint::black_box(backstop.call(request()).await.ok());
        }
        client.flush(Duration::from_secs(10));
        for _ in 0..1000 {
            std::hint::black_box(bare.call(request()).await.ok());
        }
        for _ in 0..n {
            match stack.as_str() {
                "bare" => std::hint::black_box(bare.call(request()).await.ok().map(drop)),
                _ => std::hint::black_box(backstop.call(request()).await.ok().map(drop)),
            };
        }
    });
    client.flush(Duration::from_secs(60));
}
