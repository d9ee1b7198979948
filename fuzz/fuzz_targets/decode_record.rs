//! Any bytes a Kinesis record may carry: the decoder and both body formats must
//! never panic, and every event they produce must format to one line.
#![no_main]

use std::sync::{Arc, OnceLock};

use kinesis_collector::classify::{Classifier, VpcFlowConfig, VpcFormatConfig};
use kinesis_collector::decode::{DecodeConfig, Decoder};
use kinesis_collector::format::{BodyFormat, Formatter};
use libfuzzer_sys::fuzz_target;

fn classifier() -> Arc<Classifier> {
    static C: OnceLock<Arc<Classifier>> = OnceLock::new();
    C.get_or_init(|| {
        let config = VpcFlowConfig {
            formats: vec![VpcFormatConfig {
                log_groups: vec!["custom*".into()],
                format: "${version} ${vpc-id} ${srcaddr} ${dstaddr} ${action} ${log-status}".into(),
            }],
        };
        Arc::new(Classifier::new(&config).unwrap())
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let classifier = classifier();
    let config = DecodeConfig { max_record_bytes: 1 << 20 };
    let mut decoder = Decoder::new(&config, Arc::clone(&classifier));
    let mut fsm = Formatter::new(BodyFormat::Fsm);
    let mut json = Formatter::new(BodyFormat::Json);
    let mut out = Vec::new();
    decoder.decode_record(data, Some(0), |event| {
        out.clear();
        fsm.write_body(event, &classifier, true, &mut out);
        assert!(!out.contains(&b'\n') && !out.contains(&b'\r'));
        out.clear();
        json.write_body(event, &classifier, true, &mut out);
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    });
});
