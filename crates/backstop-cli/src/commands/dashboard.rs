//! `backstop dashboard`: the dashboard over a store file, with no app running.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use backstop_alerts::Alerts;
use backstop_dashboard::{Dashboard, DashboardConfig};
use backstop_store::AlertHistory;

use super::note;
use crate::error::CliError;
use crate::store::Store;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to listen. Loopback by default: anyone who can reach it and has the token
    /// reads every event.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    addr: SocketAddr,
}

pub(crate) fn run(db: &Path, args: &Args) -> Result<(), CliError> {
    let reader = Store::open(db)?.into_reader();
    // With BACKSTOP_ALERT_* set, the Alerts page can send a test notification.
    let button = Alerts::from_env()?.test_button(AlertHistory::open(db)?);
    let reader = reader.with_alert_test(button);
    // Opened as in development: with no `BACKSTOP_DASHBOARD_TOKEN`, a random token is
    // made and the login URL printed, as Jupyter does.
    let mut config = DashboardConfig::from_env().environment("development");
    let ip = args.addr.ip();
    if !ip.is_loopback() && !ip.is_unspecified() {
        config = config.allowed_host(ip.to_string());
    }
    let dashboard = Dashboard::new(reader, config);
    // Bound here, so a port taken is this command's error and `--addr 127.0.0.1:0`
    // prints the port it got.
    let listener = TcpListener::bind(args.addr).map_err(|e| CliError::Bind(args.addr, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Bind(args.addr, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| CliError::Bind(args.addr, e))?;
    if let Some(login) = dashboard.login_url() {
        println!("Backstop dashboard: http://{local}{login}");
    }
    if ip.is_unspecified() {
        note("Listening on every interface: keep the token secret.");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Serve)?;
    runtime
        .block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            backstop_dashboard::serve_listener(dashboard, listener).await
        })
        .map_err(CliError::Serve)
}
