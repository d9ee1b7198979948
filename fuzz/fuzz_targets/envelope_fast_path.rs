//! The envelope's strict fast path against sonic-rs: whatever the fast path
//! accepts, sonic-rs must parse too, to the same envelope. Half the inputs are used
//! as they are; the other half become the message of an envelope in AWS's exact
//! shape, so string handling (escapes, control characters, UTF-8) is hit densely.
#![no_main]

use kinesis_collector::decode::envelope::{parse_fast, parse_generic};
use libfuzzer_sys::fuzz_target;

fn check(text: &str) {
    if let Some(fast) = parse_fast(text) {
        match parse_generic(text) {
            Ok(generic) => assert_eq!(fast, generic, "{text:?}"),
            Err(err) => panic!("fast path accepted what sonic-rs rejects ({err}): {text:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode % 2 == 0 {
        check(text);
    } else {
        check(&format!(
            r#"{{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{{"id":"1","timestamp":1,"message":"{text}"}}]}}"#
        ));
    }
});
