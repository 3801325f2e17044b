//! Runs the overhead bench's requests in a plain loop, for counting what one request
//! costs under valgrind, where wall-clock timing is too noisy to compare small
//! changes:
//!
//! ```text
//! cargo build --release -p backstop-tower --example request_loop
//! valgrind --tool=callgrind --separate-threads=yes \
//!     target/release/examples/request_loop transactions /hello 5000
//! valgrind --tool=dhat target/release/examples/request_loop errors /query 5000
//! ```
//!
//! Arguments: the stack (`bare`, `errors` or `transactions`), the route (`/hello` or
//! `/query`, as in `middleware_overhead`) and how many requests to time. Both stacks
//! are warmed up first with 1,000 requests each. Run two counts (say 5,000 and 15,000)
//! and divide the difference by 10,000: that is one request's instructions (or
//! blocks), with start-up and warm-up cancelled out.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use backstop_bench_support::{LoopArgs, hello, overhead_client, query};
use backstop_tower::BackstopLayer;
use http::Request;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

fn routes() -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/query", get(query))
}

fn main() {
    let LoopArgs {
        stack,
        path,
        n,
        rate,
    } = LoopArgs::from_env();

    let subscriber = tracing_subscriber::registry().with(backstop_core::tracing::layer());
    let _tracing = tracing::subscriber::set_default(subscriber);
    let client = overhead_client(rate);
    // As the bench (and `axum::serve`) do: handlers become services once.
    let backstop: Router = routes().layer(BackstopLayer::new(&client)).with_state(());
    let bare: Router = routes().with_state(());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let run = |app: &Router, n: u32| {
        rt.block_on(async {
            for _ in 0..n {
                let request = Request::get(path.as_str())
                    .header("user-agent", "bench/1.0")
                    .header("accept", "*/*")
                    .body(Body::empty())
                    .expect("a request");
                std::hint::black_box(app.clone().oneshot(request).await.expect("a response"));
            }
        })
    };
    run(&backstop, 1000);
    client.flush(Duration::from_secs(10));
    run(&bare, 1000);
    match stack.as_str() {
        "bare" => run(&bare, n),
        _ => run(&backstop, n),
    }
    client.flush(Duration::from_secs(60));
}
