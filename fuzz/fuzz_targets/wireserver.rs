#![no_main]
//! The wire-server exchange (sans I/O) fed a conversation: answers split at `\n--8<--\n`,
//! each a status selector byte (0: no answer; else one of 200, 201, 400, 403, 408, 410, 429,
//! 500, 503) and the body. The first document is also parsed alone as a goal state, and its
//! Ready and NotReady reports must be well-formed XML that names the same incarnation.
use libfuzzer_sys::fuzz_target;
use preroot::providers::azure::{wireserver as ws, xml};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;

const STATUS: [u16; 9] = [200, 201, 400, 403, 408, 410, 429, 500, 503];

fuzz_target!(|data: &[u8]| {
    let docs = common::documents(data, 16);
    if let Some(first) = docs.first() {
        if let Ok(gs) = ws::parse_goal_state(first) {
            for h in [ws::Health::Ready, ws::Health::failed(String::from_utf8_lossy(first))] {
                let report = ws::health_report(&gs, &h);
                let root = xml::parse(report.as_bytes()).expect("our report is well-formed");
                let inc = root.children_named(None, "GoalStateIncarnation").next().unwrap();
                assert_eq!(inc.text, gs.incarnation);
            }
        }
    }
    let mut now = Instant::now();
    let mut x = ws::Exchange::new(ws::Health::Ready, now, ws::RetryConfig::default());
    let mut reported = 0;
    for doc in docs {
        let Some((&sel, body)) = doc.split_first() else { continue };
        if let Some(at) = x.poll_at() {
            now = now.max(at);
        }
        if x.poll_transmit(now).is_none() {
            break;
        }
        let answer = match sel as usize % (STATUS.len() + 1) {
            0 => ws::Answer::Transport,
            i => ws::Answer::Http { status: STATUS[i - 1], body },
        };
        if let ws::Event::Done(ws::Outcome::Reported(_)) = x.process(answer, now) {
            reported += 1;
        }
        now += Duration::from_millis(10);
    }
    assert!(reported <= 1, "more than one report acknowledged");
    if x.outcome().is_some() {
        assert_eq!(x.poll_transmit(now + Duration::from_secs(3600)), None);
    }
});
