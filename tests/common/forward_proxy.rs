//! A recording forward proxy for the tests: what a corporate HTTP proxy does for
//! the collector's AWS calls. Plain-HTTP requests arrive in absolute form
//! (`POST http://127.0.0.1:4568/ HTTP/1.1`) and are forwarded; HTTPS arrives as
//! `CONNECT host:port` and is tunnelled byte for byte. Every exchange is recorded:
//! for plain HTTP with its headers and both bodies (the `Authorization` header
//! shows which access key signed it), for a tunnel only its target.
//!
//! It listens on 127.0.0.1 (random port) and forwards only to 127.0.0.1: a
//! request for any other host is answered 403 and recorded, never sent on.
//!
//! Use from a test file with `mod common { pub mod forward_proxy; }`.
#![allow(dead_code)] // each test binary uses a different part of it

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// One request that reached the proxy.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `CONNECT` for a tunnel, else the forwarded request's method.
    pub method: Method,
    /// `host:port` the client asked for.
    pub authority: String,
    /// The request's headers (for a tunnel: the CONNECT request's).
    pub headers: HeaderMap,
    /// The request body (empty for a tunnel).
    pub request_body: Bytes,
    /// The status the proxy answered with (the origin's, or its own 403 / 502).
    pub status: StatusCode,
    /// The response body (empty for a tunnel).
    pub response_body: Bytes,
}

impl Exchange {
    /// The access key id of the SigV4 `Authorization` header, if any
    /// (`AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...`).
    pub fn access_key_id(&self) -> Option<String> {
        let auth = self.headers.get("authorization")?.to_str().ok()?;
        let credential = auth.split("Credential=").nth(1)?;
        credential.split('/').next().map(str::to_owned)
    }

    /// The SigV4 credential scope's region.
    pub fn signing_region(&self) -> Option<String> {
        let auth = self.headers.get("authorization")?.to_str().ok()?;
        let credential = auth.split("Credential=").nth(1)?;
        credential.split('/').nth(2).map(str::to_owned)
    }

    /// The AWS JSON protocol's operation (`x-amz-target`, e.g.
    /// `Kinesis_20131202.GetRecords`), or the query protocol's `Action=` (STS).
    pub fn operation(&self) -> Option<String> {
        if let Some(target) = self.headers.get("x-amz-target") {
            return target.to_str().ok().map(str::to_owned);
        }
        let body = std::str::from_utf8(&self.request_body).ok()?;
        body.split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .map(str::to_owned)
    }

    /// The port the client asked for.
    pub fn port(&self) -> Option<u16> {
        self.authority.rsplit_once(':')?.1.parse().ok()
    }
}

/// A running proxy; it stops when the test's runtime ends.
#[derive(Clone)]
pub struct ForwardProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl ForwardProxy {
    /// Listens on 127.0.0.1, on a random port.
    pub async fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = ForwardProxy {
            port: listener.local_addr().unwrap().port(),
            log: Arc::default(),
        };
        let log = proxy.log.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, log.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        proxy
    }

    /// The proxy's URL, for `HTTP_PROXY` / `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every exchange so far, in arrival order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode) -> Answer {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The origin's port when `authority` is 127.0.0.1 (the only host the tests may
/// reach), else `None`.
fn local_port(host: Option<&str>, port: Option<u16>) -> Option<u16> {
    let ip: IpAddr = host?.parse().ok()?;
    (ip == IpAddr::V4(Ipv4Addr::LOCALHOST)).then_some(port?)
}

async fn handle(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Exchange>>>,
) -> Result<Answer, Infallible> {
    let uri = req.uri().clone();
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let mut exchange = Exchange {
        method: req.method().clone(),
        authority,
        headers: req.headers().clone(),
        request_body: Bytes::new(),
        status: StatusCode::OK,
        response_body: Bytes::new(),
    };
    let default_port = if req.method() == Method::CONNECT {
        None
    } else {
        Some(80)
    };
    let Some(port) = local_port(uri.host(), uri.port_u16().or(default_port)) else {
        exchange.status = StatusCode::FORBIDDEN;
        log.lock().unwrap().push(exchange);
        return Ok(answer(StatusCode::FORBIDDEN));
    };

    if req.method() == Method::CONNECT {
        let origin = match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(origin) => origin,
            Err(_) => {
                exchange.status = StatusCode::BAD_GATEWAY;
                log.lock().unwrap().push(exchange);
                return Ok(answer(StatusCode::BAD_GATEWAY));
            }
        };
        log.lock().unwrap().push(exchange);
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let mut client = TokioIo::new(upgraded);
                let mut origin = origin;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut origin).await;
            }
        });
        return Ok(answer(StatusCode::OK));
    }

    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        exchange.status = StatusCode::BAD_REQUEST;
        log.lock().unwrap().push(exchange);
        return Ok(answer(StatusCode::BAD_REQUEST));
    };
    exchange.request_body = body.clone();
    match forward(&mut parts, body, port).await {
        Ok(response) => {
            let (parts, body) = response;
            exchange.status = parts.status;
            exchange.response_body = body.clone();
            log.lock().unwrap().push(exchange);
            Ok(Response::from_parts(parts, Full::new(body)))
        }
        Err(_) => {
            exchange.status = StatusCode::BAD_GATEWAY;
            log.lock().unwrap().push(exchange);
            Ok(answer(StatusCode::BAD_GATEWAY))
        }
    }
}

/// Sends the request to 127.0.0.1:`port` in origin form on a new connection;
/// returns the whole response.
async fn forward(
    parts: &mut hyper::http::request::Parts,
    body: Bytes,
    port: u16,
) -> Result<(hyper::http::response::Parts, Bytes), Box<dyn std::error::Error + Send + Sync>> {
    let origin = TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(origin)).await?;
    tokio::spawn(connection);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = path;
    *request.headers_mut() = parts.headers.clone();
    request.headers_mut().remove("proxy-authorization");
    request.headers_mut().remove("proxy-connection");
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((parts, body))
}
