//! The HTTP endpoints for Prometheus and orchestrators: `/metrics` (Prometheus
//! text), `/healthz` (the process runs) and `/readyz` (the lease table answered
//! within the failover time and the sink is connected; 503 with the reasons
//! otherwise). A small hyper HTTP/1 server; it stops when its token is cancelled.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::prometheus;
use super::snapshot::Sources;

/// Longest a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
}

struct State {
    sources: Sources,
    registry: Registry,
}

impl HttpServer {
    /// Binds `listen` (port 0 picks a free port; see [`HttpServer::local_addr`]).
    pub async fn bind(listen: SocketAddr) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(listen).await.map_err(|err| {
            std::io::Error::new(err.kind(), format!("cannot listen on {listen}: {err}"))
        })?;
        Ok(HttpServer { listener })
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `cancel`; open connections are closed then.
    pub async fn serve(self, sources: Sources, cancel: CancellationToken) {
        let state = Arc::new(State {
            registry: prometheus::registry(sources.clone()),
            sources,
        });
        if let Ok(addr) = self.listener.local_addr() {
            info!(%addr, "http endpoints /metrics /healthz /readyz listening");
        }
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = connections.join_next() => {
                    if let Err(err) = done {
                        if err.is_panic() {
                            warn!(error = %err, "http connection task panicked");
                        }
                    }
                }
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            // Out of file descriptors and the like: wait, do not spin.
                            warn!(error = %err, "http accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let state = Arc::clone(&state);
                    let cancel = cancel.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let state = Arc::clone(&state);
                            async move { Ok::<_, Infallible>(respond(&state, &req)) }
                        });
                        let conn = http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            result = conn => {
                                if let Err(err) = result {
                                    debug!(%peer, error = %err, "http connection ended");
                                }
                            }
                        }
                    });
                }
            }
        }
        connections.shutdown().await;
    }
}

/// Binds `listen` and serves until `cancel` (the one call `run` makes).
pub async fn serve_http(
    listen: SocketAddr,
    sources: Sources,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    HttpServer::bind(listen).await?.serve(sources, cancel).await;
    Ok(())
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn respond(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "only GET and HEAD\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            prometheus::CONTENT_TYPE,
            prometheus::render(&state.registry),
        ),
        "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => {
            let reasons = state
                .sources
                .snapshot()
                .unready_reasons(state.sources.failover);
            if reasons.is_empty() {
                text(StatusCode::OK, PLAIN, "ready\n".into())
            } else {
                let body = format!("not ready: {}\n", reasons.join("; "));
                text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, body)
            }
        }
        path => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            format!("no {path}: try /metrics, /healthz or /readyz\n"),
        ),
    }
}
