//! A real `HttpServer` on loopback, on its own thread and actix system.

use std::net::SocketAddr;

use actix_web::{App, HttpServer, web};
use backstop_actix::Backstop;

/// A running server; stopped when dropped.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl Server {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopping is async; the server's thread ends on its own.
        drop(self.handle.stop(false));
    }
}

/// Serves `routes` behind `middleware` on 127.0.0.1 with an ephemeral port.
pub(crate) fn serve(
    middleware: Backstop,
    routes: fn(&mut web::ServiceConfig),
    workers: usize,
) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server =
                HttpServer::new(move || App::new().wrap(middleware.clone()).configure(routes))
                    .workers(workers)
                    .bind(("127.0.0.1", 0))
                    .expect("bind loopback");
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).expect("test is waiting");
            server.await.expect("server ran");
        });
    });
    let (addr, handle) = rx.recv().expect("server started");
    Server { addr, handle }
}
