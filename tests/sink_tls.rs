//! TLS against rsyslog (gtls and ossl drivers) with a CA made at test time.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::rsyslog::{Input, Rsyslog};
use common::*;
use kinesis_collector::sink::Sink;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// A CA, a server certificate for `localhost` / 127.0.0.1 and a client
/// certificate, written as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let mut client_params = CertificateParams::new(vec!["collector-1".to_owned()]).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "collector-1");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
        client_cert: dir.join(format!("{name}-client-cert.pem")),
        client_key: dir.join(format!("{name}-client-key.pem")),
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    std::fs::write(&pki.client_cert, client.pem()).unwrap();
    std::fs::write(&pki.client_key, client_key.serialize_pem()).unwrap();
    pki
}

fn tls_config(address: &str, ca: &Path, extra: &str) -> String {
    transport_config("tls", address, ca, extra)
}

fn transport_config(transport: &str, address: &str, ca: &Path, extra: &str) -> String {
    format!(
        "transport = \"{transport}\"\naddresses = [\"{address}\"]\nreconnect_min = \"50ms\"\nreconnect_max = \"200ms\"\n[tls]\nca_file = \"{}\"\n{extra}",
        ca.display()
    )
}

async fn deliver(config_text: &str, message: &str) {
    let config = sink_config(config_text);
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let ack = handle
        .submit(batch_of(&mut encoder(&config), &[message]))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, ack)
        .await
        .expect("acknowledged in time")
        .unwrap();
    sink.close(Duration::from_secs(5)).await.unwrap();
}

/// The sink keeps failing to connect with `expect` in its error, and acknowledges
/// nothing.
async fn refused(config_text: &str, expect: &str) {
    let config = sink_config(config_text);
    let sink = Sink::start(&config, CancellationToken::new()).unwrap();
    let handle = sink.handle();
    let mut ack = handle
        .submit(batch_of(&mut encoder(&config), &[VPC_SEED]))
        .await
        .unwrap();
    let status = wait_status(&handle, WAIT, "two failed handshakes", |s| {
        s.connect_failures >= 2
    })
    .await;
    let error = status.last_error.unwrap();
    assert!(
        error.contains("tls handshake failed") && error.contains(expect),
        "{error}"
    );
    assert!(ack.try_result().is_none());
    let report = sink.close(Duration::from_millis(100)).await.unwrap();
    assert_eq!(report.unacknowledged_batches, 1);
    assert!(ack.await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_delivers_to_rsyslog_and_refuses_a_wrong_ca_or_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = make_pki(dir.path(), "good");
    let other = make_pki(dir.path(), "other");
    for driver in ["gtls", "ossl"] {
        let rs = Rsyslog::start(Input::Tls {
            driver,
            auth_mode: "anon",
            ca: good.ca.clone(),
            cert: good.cert.clone(),
            key: good.key.clone(),
        });
        let addr = rs.address();
        let by_ip = format!("{driver} by ip");
        deliver(&tls_config(&addr, &good.ca, ""), &by_ip).await;
        let by_name = format!("{driver} by server_name");
        deliver(
            &tls_config(&addr, &good.ca, "server_name = \"localhost\""),
            &by_name,
        )
        .await;
        let insecure = format!("{driver} insecure");
        deliver(
            &tls_config(&addr, &other.ca, "insecure_skip_verify = true"),
            &insecure,
        )
        .await;
        let lines = tokio::task::block_in_place(|| rs.wait_raw(3, WAIT));
        for (line, body) in lines.iter().zip([&by_ip, &by_name, &insecure]) {
            assert_eq!(
                line,
                &format!("<134>2021-04-27T15:40:50.000Z [FSM-AWSKinesis] {body}")
            );
        }
        refused(&tls_config(&addr, &other.ca, ""), "UnknownIssuer").await;
        refused(
            &tls_config(&addr, &good.ca, "server_name = \"siem.example.com\""),
            "certificate not valid for name \"siem.example.com\"",
        )
        .await;
        assert_eq!(
            rs.raw_lines().len(),
            3,
            "{driver}: nothing arrives over a refused handshake"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_over_mutual_tls_delivers_to_rsyslog_and_refuses_a_wrong_ca() {
    let dir = tempfile::tempdir().unwrap();
    let good = make_pki(dir.path(), "good");
    let other = make_pki(dir.path(), "other");
    for tls_lib in ["gnutls", "openssl"] {
        let rs = Rsyslog::start(Input::RelpTls {
            tls_lib,
            ca: good.ca.clone(),
            cert: good.cert.clone(),
            key: good.key.clone(),
        });
        let addr = rs.address();
        let body = format!("relp over {tls_lib}");
        let client = format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"",
            good.client_cert.display(),
            good.client_key.display()
        );
        deliver(
            &transport_config("relp-tls", &addr, &good.ca, &client),
            &body,
        )
        .await;
        let lines = tokio::task::block_in_place(|| rs.wait_raw(1, WAIT));
        assert_eq!(
            lines,
            [format!(
                "<134>2021-04-27T15:40:50.000Z [FSM-AWSKinesis] {body}"
            )]
        );
        refused(
            &transport_config("relp-tls", &addr, &other.ca, &client),
            "UnknownIssuer",
        )
        .await;
        assert_eq!(
            rs.raw_lines().len(),
            1,
            "{tls_lib}: nothing arrives over a refused handshake"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "m");
    for driver in ["gtls", "ossl"] {
        let rs = Rsyslog::start(Input::Tls {
            driver,
            auth_mode: "x509/certvalid",
            ca: pki.ca.clone(),
            cert: pki.cert.clone(),
            key: pki.key.clone(),
        });
        let body = format!("{driver} mutual tls");
        let extra = format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"",
            pki.client_cert.display(),
            pki.client_key.display()
        );
        deliver(&tls_config(&rs.address(), &pki.ca, &extra), &body).await;
        let lines = tokio::task::block_in_place(|| rs.wait_raw(1, WAIT));
        assert!(lines[0].ends_with(&body), "{driver}: {lines:?}");

        // Without the client certificate the receiver refuses the connection.
        let config = sink_config(&tls_config(&rs.address(), &pki.ca, ""));
        let sink = Sink::start(&config, CancellationToken::new()).unwrap();
        let handle = sink.handle();
        let mut ack = handle
            .submit(batch_of(&mut encoder(&config), &["no client cert"]))
            .await
            .unwrap();
        let status = wait_status(&handle, WAIT, "refused connections", |s| {
            s.connect_failures + s.disconnects >= 2
        })
        .await;
        assert!(ack.try_result().is_none(), "{driver}: {status:?}");
        let report = sink.close(Duration::from_millis(100)).await.unwrap();
        assert_eq!(report.unacknowledged_batches, 1);
        assert_eq!(rs.raw_lines().len(), 1, "{driver}");
    }
}

#[tokio::test]
async fn unusable_certificate_files_fail_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("not-a-ca.pem");
    std::fs::write(&ca, "hello").unwrap();
    let config = sink_config(&tls_config("127.0.0.1:6514", &ca, ""));
    let err = Sink::start(&config, CancellationToken::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not-a-ca.pem") && err.contains("no certificate"),
        "{err}"
    );
}
