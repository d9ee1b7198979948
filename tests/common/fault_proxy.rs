//! A fault-injecting reverse proxy in front of kinesis-local, for the reader-fault
//! tests: it forwards every request unchanged and, by a plan the test controls,
//! answers chosen GetRecords calls itself with the error Kinesis sends
//! (`ProvisionedThroughputExceededException`, `ExpiredIteratorException`), since
//! kinesis-local never throttles GetRecords and its iterators live a fixed 300 s.
//! The plan: [`Rule`]s (the next N calls on a shard, now or once it has returned
//! records) and per-shard read limits ([`FaultProxy::limit`]).
//!
//! It learns which shard each iterator reads (from GetShardIterator and GetRecords
//! answers) so faults target a shard, and records every call it saw: when, the
//! operation (`X-Amz-Target`), the JSON body, the SDK's attempt number
//! (`amz-sdk-request`) and the fault it answered with, if any.
//!
//! Use from a test file with `mod common { pub mod fault_proxy; }`.
#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// An error Kinesis answers GetRecords with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `ProvisionedThroughputExceededException`: over the shard's read limits.
    Throttled,
    /// `ExpiredIteratorException`: the iterator is older than 300 s.
    ExpiredIterator,
    /// `ResourceInUseException`: the stream is not ACTIVE (being deleted, or
    /// created).
    NotActive,
}

impl Fault {
    fn code(self) -> &'static str {
        match self {
            Fault::Throttled => "ProvisionedThroughputExceededException",
            Fault::ExpiredIterator => "ExpiredIteratorException",
            Fault::NotActive => "ResourceInUseException",
        }
    }

    /// The answer Kinesis gives (awsJson1_1: HTTP 400, the error code in
    /// `x-amzn-ErrorType` and in the body's `__type`, its usual message).
    fn response(self, shard_id: &str) -> Response<Full<Bytes>> {
        let message = match self {
            Fault::Throttled => {
                format!("Rate exceeded for Shard - 000000000000/fault-proxy/{shard_id}")
            }
            Fault::ExpiredIterator => "Iterator expired. The iterator was created at time \
                 Thu Jan 01 00:00:00 UTC 1970 while right now it is Thu Jan 01 00:05:01 UTC 1970 \
                 which is further in the future than the tolerated delay of 300000 milliseconds."
                .to_owned(),
            Fault::NotActive => format!(
                "Stream fault-proxy under account 000000000000 not ACTIVE, instead in state \
                 DELETING (shard {shard_id})"
            ),
        };
        let body = serde_json::json!({ "__type": self.code(), "message": message }).to_string();
        Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header(CONTENT_TYPE, "application/x-amz-json-1.1")
            .header("x-amzn-ErrorType", self.code())
            .header("x-amzn-RequestId", "00000000-0000-0000-0000-fa017fa017fa")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    }
}

/// When a rule starts answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// From the shard's next GetRecords call on.
    Now,
    /// From the call after the shard's first GetRecords answer with records (the
    /// reader has handed that batch on).
    AfterRecords,
}

/// Answers `times` GetRecords calls on `shard_id` with `fault`, from `trigger` on.
#[derive(Debug, Clone)]
pub struct Rule {
    pub shard_id: String,
    pub fault: Fault,
    pub times: usize,
    pub trigger: Trigger,
}

impl Rule {
    /// The next `times` GetRecords calls of `shard_id` are throttled.
    pub fn throttle(shard_id: &str, times: usize) -> Rule {
        Rule {
            shard_id: shard_id.to_owned(),
            fault: Fault::Throttled,
            times,
            trigger: Trigger::Now,
        }
    }
}

/// One call the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Since the proxy started.
    pub at: Duration,
    /// e.g. `GetRecords` (from `X-Amz-Target: Kinesis_20131202.GetRecords`).
    pub operation: String,
    /// The request body (JSON).
    pub body: Value,
    /// The shard it reads: from the body (GetShardIterator) or the iterator.
    pub shard_id: Option<String>,
    /// The SDK's attempt number (`amz-sdk-request: attempt=N; max=M`).
    pub attempt: Option<u32>,
    /// The fault the proxy answered with, instead of forwarding.
    pub fault: Option<Fault>,
    /// Records in a forwarded GetRecords answer.
    pub records: usize,
    /// Sequence numbers of those records.
    pub sequence_numbers: Vec<String>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Iterator → the shard it reads.
    iterators: HashMap<String, String>,
    rules: Vec<Rule>,
    /// Shard → the least time between two GetRecords it serves, and when it
    /// last served one.
    limits: HashMap<String, (Duration, Option<Instant>)>,
    /// Shards that answered at least one GetRecords with records.
    had_records: HashMap<String, bool>,
}

struct Shared {
    upstream: String,
    started: Instant,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

impl FaultProxy {
    /// Starts on a random 127.0.0.1 port, forwarding to `upstream` (e.g.
    /// `http://127.0.0.1:4568`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            started: Instant::now(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            state: Mutex::new(State::default()),
        });
        let mut tasks = JoinSet::new();
        let accept_shared = Arc::clone(&shared);
        tasks.spawn(async move {
            // Connections live in this set, so they end with the proxy.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&accept_shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(shared.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        FaultProxy {
            addr,
            shared,
            tasks,
        }
    }

    /// The URL for `AWS_ENDPOINT_URL_KINESIS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule; rules on one shard apply in the order added.
    pub fn add(&self, rule: Rule) {
        self.shared.state.lock().unwrap().rules.push(rule);
    }

    /// A read limit on `shard_id`, as Kinesis has one (5 calls/s) but lower: a
    /// GetRecords arriving sooner than `min_gap` after the last one served is
    /// answered throttled. Rules come first.
    pub fn limit(&self, shard_id: &str, min_gap: Duration) {
        let mut state = self.shared.state.lock().unwrap();
        state.limits.insert(shard_id.to_owned(), (min_gap, None));
    }

    /// Every call seen so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.state.lock().unwrap().seen.clone()
    }

    /// The calls of `operation` on `shard_id`, in arrival order.
    pub fn calls(&self, operation: &str, shard_id: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.operation == operation && s.shard_id.as_deref() == Some(shard_id))
            .collect()
    }

    /// How many faults were answered so far.
    pub fn faults(&self, fault: Fault) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.fault == Some(fault))
            .count()
    }
}

impl Shared {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) => return error(StatusCode::BAD_REQUEST, &err.to_string()),
        };
        let operation = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit_once('.'))
            .map(|(_, op)| op.to_owned())
            .unwrap_or_default();
        let attempt = parts
            .headers
            .get("amz-sdk-request")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';')
                    .find_map(|kv| kv.trim().strip_prefix("attempt="))
            })
            .and_then(|n| n.parse().ok());
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut seen = Seen {
            at: self.started.elapsed(),
            operation: operation.clone(),
            body: json.clone(),
            shard_id: None,
            attempt,
            fault: None,
            records: 0,
            sequence_numbers: Vec::new(),
        };
        let index = {
            let mut state = self.state.lock().unwrap();
            seen.shard_id = match operation.as_str() {
                "GetShardIterator" => text("ShardId"),
                "GetRecords" => {
                    text("ShardIterator").and_then(|i| state.iterators.get(&i).cloned())
                }
                _ => None,
            };
            if operation == "GetRecords" {
                if let Some(shard) = &seen.shard_id {
                    seen.fault = state.take_fault(shard);
                }
            }
            state.seen.push(seen.clone());
            state.seen.len() - 1
        };
        if let (Some(fault), Some(shard)) = (seen.fault, &seen.shard_id) {
            return fault.response(shard);
        }

        let uri = format!(
            "{}{}",
            self.upstream,
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let mut forward = Request::builder().method(parts.method).uri(uri);
        for (name, value) in &parts.headers {
            if name != CONNECTION && name != TRANSFER_ENCODING && name != CONTENT_LENGTH {
                forward = forward.header(name, value);
            }
        }
        let forward = forward.body(Full::new(body)).expect("a valid request");
        let answer = match self.client.request(forward).await {
            Ok(answer) => answer,
            Err(err) => return error(StatusCode::BAD_GATEWAY, &err.to_string()),
        };
        let (parts, body) = answer.into_parts();
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(err) => return error(StatusCode::BAD_GATEWAY, &err.to_string()),
        };
        if parts.status.is_success() {
            let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut state = self.state.lock().unwrap();
            state.learn(&operation, seen.shard_id.as_deref(), &answer, index);
        }
        let mut response = Response::builder().status(parts.status);
        for (name, value) in &parts.headers {
            if name != CONNECTION && name != TRANSFER_ENCODING && name != CONTENT_LENGTH {
                response = response.header(name, value);
            }
        }
        response
            .header(CONTENT_LENGTH, HeaderValue::from(body.len()))
            .body(Full::new(body))
            .expect("a valid response")
    }
}

impl State {
    /// The fault for the next GetRecords call on `shard`, if a rule or the
    /// shard's limit says so.
    fn take_fault(&mut self, shard: &str) -> Option<Fault> {
        let had_records = self.had_records.get(shard).copied().unwrap_or(false);
        let rule = self.rules.iter_mut().find(|r| {
            r.shard_id == shard && r.times > 0 && (r.trigger == Trigger::Now || had_records)
        });
        if let Some(rule) = rule {
            rule.times -= 1;
            return Some(rule.fault);
        }
        let (min_gap, last) = self.limits.get_mut(shard)?;
        let now = Instant::now();
        if last.is_some_and(|at| now - at < *min_gap) {
            return Some(Fault::Throttled);
        }
        *last = Some(now);
        None
    }

    /// Maps the iterators in a forwarded answer to their shard; counts records.
    fn learn(&mut self, operation: &str, shard: Option<&str>, answer: &Value, index: usize) {
        let Some(shard) = shard else { return };
        let key = match operation {
            "GetShardIterator" => "ShardIterator",
            "GetRecords" => "NextShardIterator",
            _ => return,
        };
        if let Some(iterator) = answer.get(key).and_then(Value::as_str) {
            self.iterators.insert(iterator.to_owned(), shard.to_owned());
        }
        if operation == "GetRecords" {
            let sequence_numbers: Vec<String> = answer
                .get("Records")
                .and_then(Value::as_array)
                .map(|records| {
                    records
                        .iter()
                        .filter_map(|r| r.get("SequenceNumber")?.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if !sequence_numbers.is_empty() {
                self.had_records.insert(shard.to_owned(), true);
            }
            let seen = &mut self.seen[index];
            seen.records = sequence_numbers.len();
            seen.sequence_numbers = sequence_numbers;
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(format!("fault proxy: {message}"))))
        .expect("a valid response")
}
