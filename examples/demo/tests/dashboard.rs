//! The dashboard's bar on the real demo binary: closed without the token, open with it,
//! the demo's issues and N+1 on its pages, a script payload shown escaped.

const TOKEN: &str = "demo-dashboard-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_closed_open_with_the_token_and_shows_the_demo() {
    let demo = backstop_parity::start_demo(
        env!("CARGO_BIN_EXE_backstop-demo"),
        &[
            ("BACKSTOP_ENVIRONMENT", "production"),
            ("BACKSTOP_DASHBOARD_TOKEN", TOKEN),
        ],
    );
    backstop_parity::check_demo_dashboard("axum", demo.addr, TOKEN).await;
}
