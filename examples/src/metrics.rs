//! The pods' metrics in Prometheus text format over HTTP, for the binaries
//! (the `metrics` facade, rendered by `metrics-exporter-prometheus`, served
//! by actix-web).

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// A running metrics endpoint; stopped when dropped.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub address: SocketAddr,
    handle: ServerHandle,
}

impl Drop for Served {
    fn drop(&mut self) {
        // Not awaited: the System may be stopping already.
        drop(self.handle.stop(false));
    }
}

/// Installs the process's metrics recorder and serves `GET /metrics` on
/// `listen`. Call it inside an actix `System`, before any pod starts.
///
/// # Errors
///
/// The recorder was already installed, or `listen` cannot be bound.
pub fn serve(listen: &str) -> std::io::Result<Served> {
    let recorder = install()?;
    let listener = TcpListener::bind(listen)?;
    let address = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(recorder.clone()))
            .route("/metrics", web::get().to(render))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok(Served { address, handle })
}

/// Installs the process's metrics recorder and enables the pods' metrics;
/// pods started afterwards record into it.
///
/// # Errors
///
/// A recorder was already installed.
pub fn install() -> std::io::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(std::io::Error::other)?;
    pod_actor::metrics::enable();
    Ok(handle)
}

/// `GET /metrics`: the recorder's metrics in Prometheus text format (the
/// app holds the [`PrometheusHandle`] as `web::Data`).
pub async fn render(recorder: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(recorder.render())
}
