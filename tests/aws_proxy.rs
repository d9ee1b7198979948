//! `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` for the collector's AWS calls: the
//! `kinesis-collector run` binary, with the variables set in its environment,
//! reads a stream from kinesis-local with its leases in moto, and a recording
//! forward proxy of the test's own shows which calls went through it.
//!
//! The SDK picks the proxy by the endpoint's scheme, as curl does: `http://`
//! endpoints (the emulators) use `HTTP_PROXY`, sent in absolute form, and
//! `https://` endpoints (AWS) use `HTTPS_PROXY`, tunnelled with CONNECT; the
//! HTTPS case runs against a TLS front of the test's own (a CA made at test time,
//! trusted through `SSL_CERT_FILE`) before kinesis-local. `NO_PROXY` entries
//! bypass the proxy; 127.0.0.1 is not bypassed unless listed. A user and password
//! in the proxy URL (percent-encoded) become Basic proxy authorization.

mod common {
    pub mod aws;
    pub mod collector;
    pub mod collector_process;
    pub mod forward_proxy;
}

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::aws;
use common::collector::{assert_each_once, publish, Receiver};
use common::collector_process::{config_text, CollectorProcess};
use common::forward_proxy::ForwardProxy;
use hyper::Method;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

const WAIT: Duration = Duration::from_secs(45);

/// The port of an `AWS_ENDPOINT_URL_*` the emulators' settings export.
fn endpoint_port(variable: &str) -> u16 {
    let url = std::env::var(variable).unwrap();
    url.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A stream with `shards` shards, a receiver, and the config to read the stream.
async fn stream_setup(shards: i32) -> (aws_sdk_kinesis::Client, String, Receiver, String) {
    let kinesis = aws::kinesis().await;
    let stream = aws::create_stream(&kinesis, shards).await;
    let (receiver, port) = Receiver::start().await;
    let config = config_text(
        &aws::unique_name("proxy-app"),
        &format!("[[streams]]\nname = \"{stream}\"\n"),
        port,
    );
    (kinesis, stream, receiver, config)
}

/// Starts the collector with `env`, waits until `want` is delivered, stops it
/// cleanly.
async fn run_until_delivered(
    config: &str,
    env: &[(&str, &str)],
    receiver: &Receiver,
    want: &BTreeSet<u64>,
) {
    CollectorProcess::start(config, env)
        .deliver_and_stop(receiver, want, WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_endpoints_use_http_proxy_and_no_proxy_bypasses_it() {
    let (kinesis, stream, receiver, config) = stream_setup(2).await;
    let (kinesis_port, moto_port) = (
        endpoint_port("AWS_ENDPOINT_URL_KINESIS"),
        endpoint_port("AWS_ENDPOINT_URL_DYNAMODB"),
    );
    let proxy = ForwardProxy::start().await;
    let url = proxy.url();

    // HTTP_PROXY: every call to both emulators goes through the proxy, with the
    // URL's user and password as Basic proxy authorization.
    let first = publish(&kinesis, &stream, 0, 4, 5).await;
    let with_user = url.replace("http://", "http://collector:s3cret%21@");
    run_until_delivered(&config, &[("HTTP_PROXY", &with_user)], &receiver, &first).await;
    let through = proxy.exchanges();
    let operations = |port: u16| -> BTreeSet<String> {
        through
            .iter()
            .filter(|e| e.port() == Some(port))
            .filter_map(|e| e.operation())
            .collect()
    };
    let kinesis_calls = operations(kinesis_port);
    for op in ["ListShards", "GetShardIterator", "GetRecords"] {
        assert!(
            kinesis_calls.contains(&format!("Kinesis_20131202.{op}")),
            "{op} not proxied: {kinesis_calls:?}"
        );
    }
    let dynamodb_calls = operations(moto_port);
    for op in ["Scan", "UpdateItem"] {
        assert!(
            dynamodb_calls.contains(&format!("DynamoDB_20120810.{op}")),
            "{op} not proxied: {dynamodb_calls:?}"
        );
    }
    for exchange in &through {
        assert_eq!(exchange.method, Method::POST, "{exchange:?}");
        assert!(
            exchange.port() == Some(kinesis_port) || exchange.port() == Some(moto_port),
            "{exchange:?}"
        );
        assert!(!exchange.status.is_server_error(), "{exchange:?}");
        assert_eq!(
            exchange.headers.get("proxy-authorization").unwrap(),
            &basic_auth("collector:s3cret!"),
            "{exchange:?}"
        );
    }
    eprintln!(
        "through the proxy: {} calls ({} to kinesis-local)",
        through.len(),
        through
            .iter()
            .filter(|e| e.port() == Some(kinesis_port))
            .count()
    );

    // HTTPS_PROXY alone is for https:// endpoints: the emulators are reached
    // directly.
    let second = publish(&kinesis, &stream, 1000, 4, 5).await;
    run_until_delivered(&config, &[("HTTPS_PROXY", &url)], &receiver, &second).await;
    assert_eq!(
        proxy.exchanges().len(),
        through.len(),
        "HTTPS_PROXY took http://"
    );

    // NO_PROXY covering the endpoints' host: no call goes through the proxy.
    let third = publish(&kinesis, &stream, 2000, 4, 5).await;
    run_until_delivered(
        &config,
        &[("HTTP_PROXY", &url), ("NO_PROXY", "localhost,127.0.0.1")],
        &receiver,
        &third,
    )
    .await;
    assert_eq!(proxy.exchanges().len(), through.len(), "NO_PROXY ignored");

    let all: BTreeSet<u64> = first.iter().chain(&second).chain(&third).copied().collect();
    assert_each_once(&receiver, &all);
    aws::delete_stream(&kinesis, &stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_are_tunnelled_through_https_proxy_unless_no_proxy() {
    let (kinesis, stream, receiver, config) = stream_setup(1).await;
    let dir = tempfile::tempdir().unwrap();
    let front = TlsFront::start(dir.path(), endpoint_port("AWS_ENDPOINT_URL_KINESIS")).await;
    let endpoint = format!("https://127.0.0.1:{}", front.port);
    let ca = front.ca.display().to_string();
    let proxy = ForwardProxy::start().await;
    let url = proxy.url().replace("http://", "http://collector:s3cret@");
    let https = [
        ("AWS_ENDPOINT_URL_KINESIS", endpoint.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
        ("HTTPS_PROXY", url.as_str()),
    ];

    // Kinesis over HTTPS through a CONNECT tunnel; DynamoDB (http://, no
    // HTTP_PROXY) directly.
    let first = publish(&kinesis, &stream, 0, 3, 5).await;
    run_until_delivered(&config, &https, &receiver, &first).await;
    let through = proxy.exchanges();
    assert!(!through.is_empty(), "nothing went through the proxy");
    let target = format!("127.0.0.1:{}", front.port);
    for exchange in &through {
        assert_eq!(exchange.method, Method::CONNECT, "{exchange:?}");
        assert_eq!(exchange.authority, target, "{exchange:?}");
        // A tunnel: the proxy never sees the signed request.
        assert!(exchange.access_key_id().is_none(), "{exchange:?}");
        assert_eq!(
            exchange.headers.get("proxy-authorization").unwrap(),
            &basic_auth("collector:s3cret"),
            "{exchange:?}"
        );
    }
    let tls_connections = front.accepted();
    assert!(tls_connections >= through.len(), "{tls_connections}");
    eprintln!(
        "{} tunnels, {tls_connections} TLS connections",
        through.len()
    );

    // NO_PROXY: the same HTTPS endpoint, reached directly.
    let second = publish(&kinesis, &stream, 1000, 3, 5).await;
    let mut direct = https.to_vec();
    direct.push(("NO_PROXY", "127.0.0.1"));
    run_until_delivered(&config, &direct, &receiver, &second).await;
    assert_eq!(proxy.exchanges().len(), through.len(), "NO_PROXY ignored");
    assert!(front.accepted() > tls_connections, "not read over TLS");

    let all: BTreeSet<u64> = first.union(&second).copied().collect();
    assert_each_once(&receiver, &all);
    aws::delete_stream(&kinesis, &stream).await;
}

/// The `Proxy-Authorization` value for `user:password`.
fn basic_auth(user_password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
    format!("Basic {encoded}")
}

/// A TLS endpoint before a plain-TCP origin on 127.0.0.1 (kinesis-local), with a
/// certificate for 127.0.0.1 from a CA made here (`ca`, PEM).
struct TlsFront {
    port: u16,
    ca: PathBuf,
    accepted: Arc<AtomicUsize>,
}

impl TlsFront {
    async fn start(dir: &Path, origin_port: u16) -> TlsFront {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "aws_proxy test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = TlsFront {
            port: listener.local_addr().unwrap().port(),
            ca,
            accepted: Arc::default(),
        };
        let accepted = front.accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let accepted = accepted.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut origin) =
                        tokio::net::TcpStream::connect(("127.0.0.1", origin_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut origin).await;
                });
            }
        });
        front
    }

    /// TLS handshakes completed so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}
