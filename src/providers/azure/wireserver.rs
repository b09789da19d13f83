//! Azure's ready report to the wire server, as a state machine without I/O (the shape of
//! `dhcp/client.rs`): the caller passes `now`, asks [`Exchange::poll_transmit`] for the
//! request due, sends it with its own HTTP client, feeds the answer (or the transport
//! failure) to [`Exchange::process`], and sleeps until [`Exchange::poll_at`]. Tests drive it
//! with made-up instants and answers.
//!
//! The exchange (what WALinuxAgent, cloud-init's `azure.py` helper, Afterburn's
//! `providers/microsoft/azure` and azure-init do, each in its own words):
//! 1. `GET /machine/?comp=goalstate` with `x-ms-version: 2012-11-30` and `x-ms-agent-name`;
//!    the GoalState document gives `Incarnation`, `Container/ContainerId` and
//!    `Container/RoleInstanceList/RoleInstance/InstanceId` ([`parse_goal_state`]).
//! 2. `POST /machine?comp=health` with a Health document ([`health_report`]) for that
//!    incarnation, container and instance: `Ready`, or `NotReady` with a substatus
//!    (`ProvisioningFailed`) and a description when preroot's own work failed, so Azure marks
//!    the VM failed with our reason instead of timing out after 20 minutes.
//!
//! Retry rules (the deadline belongs to the caller, as for DHCP): a transport failure, a
//! 5xx, 408 or 429 retries the same request after a back-off ([`RetryConfig`]: doubling from
//! `initial` to `max`); a 410 Gone to the report means the goal state moved on (a new
//! incarnation), so the goal state is fetched again and the report re-addressed to it; a
//! goal state that does not parse is fetched again too (the wire server answers with a
//! partial document while the host agent starts). Another 4xx is final
//! ([`Outcome::Refused`]): retrying cannot fix it. At most one report is acknowledged per
//! exchange: after [`Outcome::Reported`] nothing more is sent.
//!
//! The wire server's address: DHCP option 245 ([`wireserver_from_option`]) when the lease
//! has it, else [`DEFAULT_WIRESERVER`] (168.63.129.16, the address Azure documents as fixed).
//!
//! Does not support: the certificates and the extensions config of the goal state (an
//! agent's business), `?comp=versions` negotiation (2012-11-30 is what every agent sends),
//! the KVP telemetry cloud-init writes beside the report.
//!
//! Panic contract: nothing here panics on any input.
#![deny(clippy::arithmetic_side_effects)]

use super::xml;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The wire server's documented fixed address.
pub const DEFAULT_WIRESERVER: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);
/// The DHCP option that carries the wire server's address on Azure (a private-use code).
pub const DHCP_OPTION_WIRESERVER: u8 = 245;
/// The protocol version every agent sends.
pub const MS_VERSION: &str = "2012-11-30";
/// Who we say we are (`x-ms-agent-name`).
pub const AGENT_NAME: &str = "preroot";
/// Where the goal state and the health report go.
pub const GOAL_STATE_PATH: &str = "/machine/?comp=goalstate";
pub const HEALTH_PATH: &str = "/machine?comp=health";
/// Largest goal state read (the real ones are 2–4 KiB).
pub const MAX_GOAL_STATE_BYTES: usize = 64 * 1024;
/// Longest description sent in a NotReady report, in characters (cloud-init trims to 512).
pub const MAX_DESCRIPTION_CHARS: usize = 512;
/// Longest incarnation, container id or instance id accepted.
const MAX_ID_LEN: usize = 256;

/// The wire server's address from the payload of DHCP option 245: exactly four bytes, a
/// unicast address (not 0.0.0.0, broadcast, multicast or loopback).
#[cfg_attr(feature = "nopanic", no_panic::no_panic)]
pub fn wireserver_from_option(payload: &[u8]) -> Option<Ipv4Addr> {
    let octets: [u8; 4] = payload.try_into().ok()?;
    let ip = Ipv4Addr::from(octets);
    let unusable =
        ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback();
    (!unusable).then_some(ip)
}

/// What the report needs from the goal state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalState {
    pub incarnation: String,
    pub container_id: String,
    pub instance_id: String,
}

/// Why a goal state was refused; `element` names the element concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalStateError {
    pub element: &'static str,
    pub why: String,
}

impl fmt::Display for GoalStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "goal state: {}: {}", self.element, self.why)
    }
}

impl std::error::Error for GoalStateError {}

/// Parses the GoalState document (no namespace on its elements).
pub fn parse_goal_state(doc: &[u8]) -> Result<GoalState, GoalStateError> {
    let bad = |element: &'static str, why: String| GoalStateError { element, why };
    if doc.len() > MAX_GOAL_STATE_BYTES {
        return Err(bad(
            "GoalState",
            format!("{} bytes, more than {MAX_GOAL_STATE_BYTES}", doc.len()),
        ));
    }
    let root = xml::parse(doc).map_err(|e| bad("GoalState", e.to_string()))?;
    if root.name != "GoalState" || root.ns.is_some() {
        return Err(bad("GoalState", format!("root element is <{}>", root.name)));
    }
    let child = |el: &'static str, parent: &xml::Element, name: &str| {
        parent
            .children_named(None, name)
            .next()
            .ok_or_else(|| bad(el, "missing".into()))
            .cloned()
    };
    let id = |el: &'static str, e: &xml::Element| {
        let t = e.text.trim();
        if t.is_empty() {
            Err(bad(el, "empty".into()))
        } else if t.chars().count() > MAX_ID_LEN || t.chars().any(char::is_control) {
            Err(bad(
                el,
                format!("not an identifier ({} characters)", t.chars().count()),
            ))
        } else {
            Ok(t.to_string())
        }
    };
    let incarnation = id("Incarnation", &child("Incarnation", &root, "Incarnation")?)?;
    let container = child("Container", &root, "Container")?;
    let container_id = id(
        "Container/ContainerId",
        &child("Container/ContainerId", &container, "ContainerId")?,
    )?;
    let list = child("Container/RoleInstanceList", &container, "RoleInstanceList")?;
    let role = child(
        "Container/RoleInstanceList/RoleInstance",
        &list,
        "RoleInstance",
    )?;
    const INSTANCE: &str = "Container/RoleInstanceList/RoleInstance/InstanceId";
    let instance_id = id(INSTANCE, &child(INSTANCE, &role, "InstanceId")?)?;
    Ok(GoalState {
        incarnation,
        container_id,
        instance_id,
    })
}

/// What to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// preroot's own work failed: `substatus` is Azure's code (`ProvisioningFailed`), the
    /// description says why (trimmed to [`MAX_DESCRIPTION_CHARS`]).
    NotReady {
        substatus: String,
        description: String,
    },
}

impl Health {
    /// `NotReady` with the substatus cloud-init and azure-init send.
    pub fn failed(description: impl Into<String>) -> Health {
        Health::NotReady {
            substatus: "ProvisioningFailed".into(),
            description: description.into(),
        }
    }
}

/// Escapes text for XML character data.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped from free text.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The Health document for `gs`.
pub fn health_report(gs: &GoalState, health: &Health) -> String {
    let (state, details) = match health {
        Health::Ready => ("Ready", String::new()),
        Health::NotReady {
            substatus,
            description,
        } => {
            let d: String = description.chars().take(MAX_DESCRIPTION_CHARS).collect();
            (
                "NotReady",
                format!(
                    "\n          <Details>\n            <SubStatus>{}</SubStatus>\n            \
                     <Description>{}</Description>\n          </Details>",
                    escape(substatus),
                    escape(&d)
                ),
            )
        }
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <GoalStateIncarnation>{}</GoalStateIncarnation>
  <Container>
    <ContainerId>{}</ContainerId>
    <RoleInstanceList>
      <Role>
        <InstanceId>{}</InstanceId>
        <Health>
          <State>{state}</State>{details}
        </Health>
      </Role>
    </RoleInstanceList>
  </Container>
</Health>
"#,
        escape(&gs.incarnation),
        escape(&gs.container_id),
        escape(&gs.instance_id),
    )
}

/// An HTTP request for the caller to send to the wire server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query ([`GOAL_STATE_PATH`] or [`HEALTH_PATH`]).
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
}

/// What came back: a status and a body (already capped by the caller's client), or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    Http {
        status: u16,
        body: &'a [u8],
    },
    /// Connection refused, reset, timed out: the request may not have arrived.
    Transport,
}

/// Back-off between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
        }
    }
}

/// How the exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The wire server took our report for this goal state.
    Reported(GoalState),
    /// A 4xx other than 408/410/429: which request and status.
    Refused { path: &'static str, status: u16 },
}

/// What [`Exchange::process`] made of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A goal state was taken; the report is due now.
    GoalState(GoalState),
    /// The same request is tried again at this instant (why).
    Retry(Instant, String),
    /// The goal state is fetched again (why: 410, or a new incarnation).
    Refetch(String),
    Done(Outcome),
    /// An answer when no request was outstanding: ignored.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// `GET` goal state due at `at`.
    Fetch {
        at: Instant,
        sent: bool,
    },
    /// `POST` health due at `at`, for `gs`.
    Report {
        gs: GoalState,
        at: Instant,
        sent: bool,
    },
    Done(Outcome),
}

/// One ready report, from goal state to acknowledgement.
#[derive(Debug, Clone)]
pub struct Exchange {
    health: Health,
    retry: RetryConfig,
    interval: Duration,
    state: State,
    /// The incarnation of the last goal state seen (to tell a changed one in messages).
    last_incarnation: Option<String>,
}

impl Exchange {
    pub fn new(health: Health, now: Instant, retry: RetryConfig) -> Exchange {
        Exchange {
            health,
            retry,
            interval: retry.initial,
            state: State::Fetch {
                at: now,
                sent: false,
            },
            last_incarnation: None,
        }
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.state {
            State::Done(o) => Some(o),
            _ => None,
        }
    }

    /// When a request is next due; `None` when one is outstanding or the exchange is over.
    pub fn poll_at(&self) -> Option<Instant> {
        match &self.state {
            State::Fetch { at, sent: false }
            | State::Report {
                at, sent: false, ..
            } => Some(*at),
            _ => None,
        }
    }

    /// The request to send now, if one is due (and none outstanding).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Request> {
        let base = vec![
            ("x-ms-agent-name", AGENT_NAME),
            ("x-ms-version", MS_VERSION),
        ];
        match &mut self.state {
            State::Fetch { at, sent } if !*sent && now >= *at => {
                *sent = true;
                Some(Request {
                    method: "GET",
                    path: GOAL_STATE_PATH,
                    headers: base,
                    body: Vec::new(),
                })
            }
            State::Report { gs, at, sent } if !*sent && now >= *at => {
                *sent = true;
                let mut headers = base;
                headers.push(("Content-Type", "text/xml; charset=utf-8"));
                Some(Request {
                    method: "POST",
                    path: HEALTH_PATH,
                    headers,
                    body: health_report(gs, &self.health).into_bytes(),
                })
            }
            _ => None,
        }
    }

    fn backoff(&mut self, now: Instant) -> Instant {
        let at = now.checked_add(self.interval).unwrap_or(now);
        self.interval = self.interval.saturating_mul(2).min(self.retry.max);
        at
    }

    fn refetch(&mut self, now: Instant, why: String) -> Event {
        self.interval = self.retry.initial;
        self.state = State::Fetch {
            at: now,
            sent: false,
        };
        Event::Refetch(why)
    }

    /// Feeds the answer to the outstanding request.
    pub fn process(&mut self, answer: Answer<'_>, now: Instant) -> Event {
        let retryable = |status: u16| status >= 500 || status == 408 || status == 429;
        match (self.state.clone(), answer) {
            (State::Fetch { sent: true, .. }, Answer::Http { status: 200, body }) => {
                match parse_goal_state(body) {
                    Ok(gs) => {
                        self.last_incarnation = Some(gs.incarnation.clone());
                        self.interval = self.retry.initial;
                        self.state = State::Report {
                            gs: gs.clone(),
                            at: now,
                            sent: false,
                        };
                        Event::GoalState(gs)
                    }
                    Err(e) => {
                        let at = self.backoff(now);
                        self.state = State::Fetch { at, sent: false };
                        Event::Retry(at, e.to_string())
                    }
                }
            }
            (State::Fetch { sent: true, .. }, Answer::Http { status, .. })
                if !retryable(status) && status != 410 =>
            {
                let outcome = Outcome::Refused {
                    path: GOAL_STATE_PATH,
                    status,
                };
                self.state = State::Done(outcome.clone());
                Event::Done(outcome)
            }
            (State::Fetch { sent: true, .. }, a) => {
                let at = self.backoff(now);
                self.state = State::Fetch { at, sent: false };
                Event::Retry(at, why(GOAL_STATE_PATH, a))
            }
            (
                State::Report { gs, sent: true, .. },
                Answer::Http {
                    status: 200..=202, ..
                },
            ) => {
                let outcome = Outcome::Reported(gs);
                self.state = State::Done(outcome.clone());
                Event::Done(outcome)
            }
            (State::Report { gs, sent: true, .. }, Answer::Http { status: 410, .. }) => self
                .refetch(
                    now,
                    format!(
                        "the wire server says incarnation {} is gone (410)",
                        gs.incarnation
                    ),
                ),
            (State::Report { gs, sent: true, .. }, a)
                if matches!(a, Answer::Transport)
                    || matches!(a, Answer::Http { status, .. } if retryable(status)) =>
            {
                let at = self.backoff(now);
                let reason = why(HEALTH_PATH, a);
                self.state = State::Report {
                    gs,
                    at,
                    sent: false,
                };
                Event::Retry(at, reason)
            }
            (State::Report { sent: true, .. }, Answer::Http { status, .. }) => {
                let outcome = Outcome::Refused {
                    path: HEALTH_PATH,
                    status,
                };
                self.state = State::Done(outcome.clone());
                Event::Done(outcome)
            }
            _ => Event::Ignored,
        }
    }

    /// The incarnation of the last goal state taken, if any.
    pub fn incarnation(&self) -> Option<&str> {
        self.last_incarnation.as_deref()
    }
}

fn why(path: &str, a: Answer<'_>) -> String {
    match a {
        Answer::Http { status, .. } => format!("{path}: HTTP {status}"),
        Answer::Transport => format!("{path}: no answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/platforms/azure")
                .join(name),
        )
        .unwrap()
    }

    fn gs(incarnation: &str) -> GoalState {
        GoalState {
            incarnation: incarnation.into(),
            container_id: "a511aa6d-29e7-4f53-8788-55655dfe848f".into(),
            instance_id: "f6cd1d7ef1644557b9059345e5ba890c.lars-test-1".into(),
        }
    }

    #[test]
    fn option_245() {
        let cases: &[(&str, &[u8], Option<Ipv4Addr>)] = &[
            ("the usual", &[168, 63, 129, 16], Some(DEFAULT_WIRESERVER)),
            ("another", &[10, 1, 2, 3], Some(Ipv4Addr::new(10, 1, 2, 3))),
            ("short", &[168, 63, 129], None),
            ("long", &[168, 63, 129, 16, 0], None),
            ("zero", &[0, 0, 0, 0], None),
            ("broadcast", &[255; 4], None),
            ("loopback", &[127, 0, 0, 1], None),
            ("multicast", &[224, 0, 0, 1], None),
            ("empty", &[], None),
        ];
        for (case, payload, want) in cases {
            assert_eq!(wireserver_from_option(payload), *want, "case {case}");
        }
    }

    #[test]
    fn goal_states() {
        assert_eq!(
            parse_goal_state(&fixture("goalstate.xml")).unwrap(),
            gs("42"),
            "afterburn's"
        );
        let g = parse_goal_state(&fixture("goalstate-incarnation-2.xml")).unwrap();
        assert_eq!(g.incarnation, "2", "second fixture");
        let ok = String::from_utf8(fixture("goalstate.xml")).unwrap();
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "no incarnation",
                ok.replace("<Incarnation>42</Incarnation>", ""),
                "Incarnation: missing",
            ),
            (
                "empty container",
                ok.replace(
                    "a511aa6d-29e7-4f53-8788-55655dfe848f</ContainerId>",
                    "</ContainerId>",
                ),
                "ContainerId: empty",
            ),
            (
                "no role",
                ok.replace("RoleInstance>", "Other>"),
                "RoleInstance: missing",
            ),
            (
                "other root",
                "<Versions/>".into(),
                "root element is <Versions>",
            ),
            ("not xml", "<GoalState>".into(), "ends inside"),
            ("dtd", format!("<!DOCTYPE g>{ok}"), "document type"),
            ("huge", " ".repeat(MAX_GOAL_STATE_BYTES + 1), "more than"),
        ];
        for (case, doc, want) in cases {
            let e = parse_goal_state(doc.as_bytes())
                .expect_err(case)
                .to_string();
            assert!(e.contains(want), "case {case}: {e:?} does not say {want:?}");
        }
    }

    #[test]
    fn reports() {
        let ready = health_report(&gs("42"), &Health::Ready);
        let root = xml::parse(ready.as_bytes()).unwrap();
        assert_eq!(
            root.children_named(None, "GoalStateIncarnation")
                .next()
                .unwrap()
                .text,
            "42",
            "incarnation"
        );
        assert!(ready.contains("<State>Ready</State>\n"), "ready: {ready}");
        assert!(!ready.contains("Details"), "no details when ready");
        let long = format!("disk <grow> & \"net\" {}", "x".repeat(600));
        let nr = health_report(&gs("7"), &Health::failed(long));
        let root = xml::parse(nr.as_bytes()).expect("well-formed NotReady");
        let health = root.children[1].children[1].children[0].children[1].clone();
        let details = health.children_named(None, "Details").next().unwrap();
        let desc = &details
            .children_named(None, "Description")
            .next()
            .unwrap()
            .text;
        assert!(
            desc.starts_with("disk <grow> & \"net\" x"),
            "escaped and read back: {desc}"
        );
        assert_eq!(desc.chars().count(), MAX_DESCRIPTION_CHARS, "trimmed");
        assert_eq!(details.children[0].text, "ProvisioningFailed", "substatus");
        // The report for the fixture goal state equals the fixture report byte for byte.
        assert_eq!(
            ready.as_bytes(),
            fixture("health-ready.xml"),
            "golden Ready"
        );
    }

    /// Runs an exchange against scripted answers; returns the requests sent and the events.
    fn run(health: Health, answers: &[Answer<'_>]) -> (Exchange, Vec<Request>, Vec<Event>) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut x = Exchange::new(health, now, RetryConfig::default());
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        for a in answers {
            if let Some(at) = x.poll_at() {
                now = now.max(at);
            }
            let Some(req) = x.poll_transmit(now) else {
                break;
            };
            sent.push(req);
            events.push(x.process(*a, now));
        }
        (x, sent, events)
    }

    #[test]
    fn exchanges() {
        let g42 = fixture("goalstate.xml");
        let g2 = fixture("goalstate-incarnation-2.xml");
        let ok = |body: &'static [u8]| Answer::Http { status: 200, body };
        let st = |status: u16| Answer::Http { status, body: b"" };
        let leak = |v: &Vec<u8>| -> &'static [u8] { Box::leak(v.clone().into_boxed_slice()) };
        let (g42, g2) = (leak(&g42), leak(&g2));
        struct Case {
            name: &'static str,
            answers: Vec<Answer<'static>>,
            paths: Vec<&'static str>,
            outcome: Option<Outcome>,
        }
        let (get, post) = (GOAL_STATE_PATH, HEALTH_PATH);
        let cases = vec![
            Case {
                name: "straight",
                answers: vec![ok(g42), ok(b"")],
                paths: vec![get, post],
                outcome: Some(Outcome::Reported(gs("42"))),
            },
            Case {
                name: "5xx and no answer on the goal state",
                answers: vec![st(503), Answer::Transport, ok(g42), st(200)],
                paths: vec![get, get, get, post],
                outcome: Some(Outcome::Reported(gs("42"))),
            },
            Case {
                name: "partial goal state",
                answers: vec![ok(b"<GoalState>"), ok(g42), st(201)],
                paths: vec![get, get, post],
                outcome: Some(Outcome::Reported(gs("42"))),
            },
            Case {
                name: "410 moves to the new incarnation",
                answers: vec![ok(g42), st(410), ok(g2), st(200)],
                paths: vec![get, post, get, post],
                outcome: Some(Outcome::Reported(GoalState {
                    incarnation: "2".into(),
                    ..gs("42")
                })),
            },
            Case {
                name: "5xx on the report retries it",
                answers: vec![ok(g42), st(500), Answer::Transport, st(200)],
                paths: vec![get, post, post, post],
                outcome: Some(Outcome::Reported(gs("42"))),
            },
            Case {
                name: "403 on the goal state is final",
                answers: vec![st(403)],
                paths: vec![get],
                outcome: Some(Outcome::Refused {
                    path: get,
                    status: 403,
                }),
            },
            Case {
                name: "400 on the report is final",
                answers: vec![ok(g42), st(400)],
                paths: vec![get, post],
                outcome: Some(Outcome::Refused {
                    path: post,
                    status: 400,
                }),
            },
        ];
        for c in cases {
            let (x, sent, _) = run(Health::Ready, &c.answers);
            let paths: Vec<&str> = sent.iter().map(|r| r.path).collect();
            assert_eq!(paths, c.paths, "case {}: requests", c.name);
            assert_eq!(x.outcome(), c.outcome.as_ref(), "case {}: outcome", c.name);
            assert!(
                sent.iter()
                    .all(|r| r.headers.contains(&("x-ms-version", MS_VERSION))),
                "case {}: version header",
                c.name
            );
            let mut x = x;
            assert_eq!(x.poll_at(), None, "case {}: nothing more due", c.name);
            assert_eq!(
                x.poll_transmit(Instant::now() + Duration::from_secs(3600)),
                None,
                "case {}: nothing more sent",
                c.name
            );
        }
        // The 410 case's second report names incarnation 2.
        let (_, sent, _) = run(Health::Ready, &[ok(g42), st(410), ok(g2), st(200)]);
        let last = String::from_utf8(sent[3].body.clone()).unwrap();
        assert!(
            last.contains("<GoalStateIncarnation>2</GoalStateIncarnation>"),
            "re-addressed: {last}"
        );
        assert_eq!(sent[1].method, "POST", "report is a POST");
        assert!(
            sent[1]
                .headers
                .contains(&("Content-Type", "text/xml; charset=utf-8")),
            "content type"
        );
    }

    #[test]
    fn backoff_and_no_double_send() {
        let t0 = Instant::now();
        let mut x = Exchange::new(Health::failed("grow failed"), t0, RetryConfig::default());
        assert!(x.poll_transmit(t0).is_some(), "first GET");
        assert_eq!(
            x.poll_transmit(t0),
            None,
            "no second GET while one is outstanding"
        );
        assert_eq!(x.poll_at(), None, "nothing due while outstanding");
        let mut gaps = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            let Event::Retry(at, _) = x.process(Answer::Transport, now) else {
                panic!("retry")
            };
            gaps.push(at - now);
            assert_eq!(x.poll_transmit(now), None, "not before the back-off");
            now = at;
            assert!(x.poll_transmit(now).is_some(), "after the back-off");
        }
        let ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [500, 1000, 2000, 4000, 5000, 5000],
            "doubling to the cap"
        );
        let e = x.process(
            Answer::Http {
                status: 200,
                body: b"junk",
            },
            now,
        );
        assert!(
            matches!(&e, Event::Retry(_, m) if m.contains("content outside the root element")),
            "junk goal state: {e:?}"
        );
        let mut fresh = Exchange::new(Health::Ready, t0, RetryConfig::default());
        assert_eq!(
            fresh.process(Answer::Transport, t0),
            Event::Ignored,
            "answer with nothing sent"
        );
    }
}
