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
use backstop_bench_support::{LoopArgs, hello, overhead_client, query};
use tracing_subscriber::layer::SubscriberExt;

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/hello", web::get().to(hello))
        .route("/query", web::get().to(query));
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
