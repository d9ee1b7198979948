//! Sink throughput: ~150-byte fsm events encoded and delivered over loopback TCP
//! to a reader that discards (both framings), acknowledged by the peer's TCP stack;
//! the same over TLS (rustls on both ends); and over RELP to a real rsyslog that
//! drops them (when rsyslogd is installed).
//! The sink and the submitter share one thread (a current-thread runtime); the
//! reader runs on another.
//!
//! Run: `cargo bench --bench sink`

#[path = "../tests/common/rsyslog.rs"]
#[allow(dead_code)]
mod rsyslog;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kinesis_collector::classify::Classifier;
use kinesis_collector::event::{Classification, Event, Origin};
use kinesis_collector::sink::{Batch, Encoder, Sink, SinkConfig};
use tokio_util::sync::CancellationToken;

/// Events per batch (about one Kinesis record's worth) and per measured iteration.
const PER_BATCH: usize = 100;
const BATCHES: usize = 200;

/// A VPC flow line: with the fsm prefix about 150 bytes per event.
const LINE: &str = "2 311111777194 eni-054c755e644dcf32d 10.0.1.25 10.0.2.17 22898 443 6 12 4280 1619538050 1619538102 ACCEPT OK";

fn discarding_reader() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    address
}

/// A TLS server on another thread that discards what it reads; returns its
/// address and the CA file that signs its certificate.
fn discarding_tls_reader(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    use tokio::io::AsyncReadExt;
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 1 << 20];
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
    });
    (address, ca_file)
}

fn config(text: &str) -> SinkConfig {
    toml::from_str(text).unwrap()
}

/// Encodes and submits `BATCHES` batches, then waits for every acknowledgement.
async fn run_once(handle: &kinesis_collector::sink::SinkHandle, encoder: &mut Encoder) {
    let origin = Origin::default();
    let classifier = Classifier::default();
    let mut acks = VecDeque::with_capacity(BATCHES);
    let mut ts = 1_619_538_050_000;
    for _ in 0..BATCHES {
        let mut batch = Batch::with_capacity(PER_BATCH * 160);
        for _ in 0..PER_BATCH {
            ts += 1;
            let event = Event {
                origin: &origin,
                id: None,
                timestamp_ms: ts,
                message: Cow::Borrowed(LINE),
                subsequence: None,
                classification: Classification::OTHER,
            };
            encoder.encode(&event, &classifier, &mut batch);
        }
        acks.push_back(handle.submit(batch).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

fn bench_transport(c: &mut Criterion, name: &str, sink_config: SinkConfig) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sink = rt.block_on(async { Sink::start(&sink_config, CancellationToken::new()).unwrap() });
    let handle = sink.handle();
    let mut encoder = Encoder::new(&sink_config, "bench", Arc::new(BTreeMap::new()));
    let mut group = c.benchmark_group("sink");
    group.throughput(Throughput::Elements((PER_BATCH * BATCHES) as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                rt.block_on(run_once(&handle, &mut encoder));
            }
            start.elapsed()
        })
    });
    group.finish();
    rt.block_on(async { sink.close(Duration::from_secs(5)).await.unwrap() });
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("sink_encode");
    group.throughput(Throughput::Elements(PER_BATCH as u64));
    for (name, text) in [
        ("newline_pri", "header = \"pri\"\nframing = \"newline\""),
        (
            "octet_counting_pri",
            "header = \"pri\"\nframing = \"octet-counting\"",
        ),
        (
            "octet_counting_rfc5424",
            "header = \"rfc5424\"\nframing = \"octet-counting\"",
        ),
    ] {
        let cfg = config(text);
        let mut encoder = Encoder::new(&cfg, "bench", Arc::new(BTreeMap::new()));
        let origin = Origin::default();
        let classifier = Classifier::default();
        let mut batch = Batch::with_capacity(PER_BATCH * 200);
        group.bench_function(name, |b| {
            b.iter(|| {
                batch = Batch::with_capacity(PER_BATCH * 200);
                for i in 0..PER_BATCH {
                    let event = Event {
                        origin: &origin,
                        id: None,
                        timestamp_ms: 1_619_538_050_000 + i as i64,
                        message: Cow::Borrowed(LINE),
                        subsequence: None,
                        classification: Classification::OTHER,
                    };
                    encoder.encode(&event, &classifier, &mut batch);
                }
                batch.len_bytes()
            })
        });
    }
    group.finish();
}

fn bench_tcp(c: &mut Criterion) {
    for framing in ["newline", "octet-counting"] {
        let address = discarding_reader();
        let cfg = config(&format!(
            "transport = \"tcp\"\naddresses = [\"{address}\"]\nframing = \"{framing}\""
        ));
        bench_transport(c, &format!("tcp_{framing}"), cfg);
    }
}

fn bench_tls(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (address, ca_file) = discarding_tls_reader(dir.path());
    let cfg = config(&format!(
        "transport = \"tls\"\naddresses = [\"{address}\"]\n[tls]\nca_file = \"{}\"",
        ca_file.display()
    ));
    bench_transport(c, "tls_octet-counting", cfg);
}

fn bench_relp(c: &mut Criterion) {
    if !["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
    {
        eprintln!("sink/relp_rsyslog skipped: rsyslogd not installed (scripts/setup-test-deps)");
        return;
    }
    let rs = rsyslog::Rsyslog::start_discarding(rsyslog::Input::Relp);
    let cfg = config(&format!(
        "transport = \"relp\"\naddresses = [\"{}\"]",
        rs.address()
    ));
    bench_transport(c, "relp_rsyslog", cfg);
    drop(rs);
}

criterion_group!(benches, bench_encode, bench_tcp, bench_tls, bench_relp);
criterion_main!(benches);
