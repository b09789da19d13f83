//! The ready report's I/O: drives [`wireserver::Exchange`] (the protocol, without I/O) with
//! one HTTP request at a time ([`crate::http::Client::once`]) until the wire server took a
//! report or the deadline passed. Called by `preroot apply` ([`crate::apply`]).
//!
//! **Why `preroot apply`, in the booted system.** Azure's `Ready` says the VM is provisioned:
//! its user exists with its keys and password. preroot writes those in `apply`, after the
//! switch root, so a report from the initramfs would say `Ready` before that work was done,
//! or had failed, and would need a second DHCP bring-up there (the fetch's links are put
//! back). Afterburn (`afterburn-checkin.service`) and azure-init also report from the booted
//! system. `apply` reports after host keys, users, passwords and the hostname, before user
//! data's files and scripts: those are the user's work, and may take longer than Azure waits.
//!
//! **What is reported** ([`health`]): `NotReady` (`ProvisioningFailed`) with the first error,
//! when the context holds any (fetch, grow, sysroot: preroot's own work in the initramfs) or
//! apply's provisioning steps failed; else `Ready`. Never `Ready` after a failure. A
//! pre-provisioned pool VM is not reported at all (see `azure/mod.rs`).
//!
//! **Where:** the context's `extra.azure.wireserver`, recorded at fetch time (DHCP option 245,
//! the fixed address, or `--endpoint wireserver=URL`); a context without it is not reported to.
//! **Once:** `apply` records the acknowledged report per instance and never sends another;
//! an exchange that ends without one (deadline, a refusal) is an apply error and is tried
//! again at the next boot. Within one exchange a report whose answer was lost is sent again
//! (the wire server takes the same report twice without harm; none is acknowledged twice).
//!
//! Panic contract: nothing here panics; every wait is bounded by the caller's deadline.

use super::wireserver::{self, Answer, Event, Exchange, Health, Outcome, RetryConfig};
use crate::context::Context;
use crate::deadline::Deadline;
use crate::http::{Client, Url};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long `preroot apply` gives the whole exchange.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the context says to report, if anywhere; an unusable URL is an error.
pub fn endpoint(ctx: &Context) -> Option<Result<Url, String>> {
    let url = ctx.extra.get("azure")?.get("wireserver")?.as_str()?;
    Some(Url::parse(url))
}

/// Is this a pre-provisioned pool VM (not reported)?
pub fn preprovisioned(ctx: &Context) -> bool {
    ctx.extra
        .get("azure")
        .and_then(|a| a.get("preprovisioned_vm"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// What to report: `NotReady` naming the first of the context's errors or of `apply_errors`
/// (with how many more there were), else `Ready`.
pub fn health(ctx: &Context, apply_errors: &[String]) -> Health {
    let mut all: Vec<String> = ctx
        .errors
        .iter()
        .map(|p| format!("{}: {}: {}", p.stage, p.object, p.message))
        .collect();
    all.extend(apply_errors.iter().map(|e| format!("apply: {e}")));
    match all.split_first() {
        None => Health::Ready,
        Some((first, [])) => Health::failed(format!("preroot: {first}")),
        Some((first, rest)) => {
            Health::failed(format!("preroot: {first} (and {} more errors)", rest.len()))
        }
    }
}

/// Runs one exchange against the wire server at `base` before `deadline`: the outcome, or
/// why none came (the last failure seen).
pub fn send(base: &Url, health: Health, deadline: Deadline) -> Result<Outcome, String> {
    let client = Client::new(deadline);
    let mut x = Exchange::new(health, Instant::now(), RetryConfig::default());
    let mut last = String::from("nothing sent");
    loop {
        if let Some(outcome) = x.outcome() {
            return Ok(outcome.clone());
        }
        if deadline.passed() {
            return Err(format!("no report taken before the deadline; last: {last}"));
        }
        let Some(req) = x.poll_transmit(Instant::now()) else {
            let wait = x
                .poll_at()
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100));
            std::thread::sleep(wait.min(deadline.remaining()));
            continue;
        };
        let url = base.join(req.path);
        let result = client.once(
            req.method,
            &url,
            &req.headers,
            &req.body,
            wireserver::MAX_GOAL_STATE_BYTES,
        );
        let answer = match &result {
            Ok(r) => Answer::Http {
                status: r.status,
                body: &r.body,
            },
            Err(e) => {
                last = format!("{} {url}: {e}", req.method);
                Answer::Transport
            }
        };
        match x.process(answer, Instant::now()) {
            Event::GoalState(gs) => log::info!(
                "azure: goal state incarnation {}, container {}",
                gs.incarnation,
                gs.container_id
            ),
            Event::Retry(_, why) | Event::Refetch(why) => {
                log::info!("azure: {why}; trying again");
                last = why;
            }
            Event::Done(_) | Event::Ignored => {}
        }
    }
}

/// One line for the status: what was reported and how it ended.
pub fn describe(outcome: &Outcome, health: &Health) -> Result<String, String> {
    let what = match health {
        Health::Ready => "Ready".to_string(),
        Health::NotReady { description, .. } => format!("NotReady ({description})"),
    };
    match outcome {
        Outcome::Reported(gs) => Ok(format!(
            "{what} reported for incarnation {} (container {}, instance {})",
            gs.incarnation, gs.container_id, gs.instance_id
        )),
        Outcome::Refused { path, status } => Err(format!(
            "the wire server refused {path} with HTTP {status}; {what} not reported"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Access, Platform, Source, SourceKind};

    fn ctx() -> Context {
        Context::new(
            Some(Platform::Azure),
            Source {
                kind: SourceKind::AzureOvf,
                medium: Access::Udf,
                location: "/dev/sr0".into(),
                partition_of: None,
            },
        )
    }

    #[test]
    fn health_is_never_ready_after_a_failure() {
        let mut failed = ctx();
        failed.error("datasource", "IMDS", "timed out");
        let mut two = failed.clone();
        two.error("sysroot", "/sysroot", "read-only");
        let cases: Vec<(&str, Context, Vec<String>, Option<&str>)> = vec![
            ("clean", ctx(), vec![], None),
            (
                "warnings only",
                {
                    let mut c = ctx();
                    c.warn("datasource", "x", "odd");
                    c
                },
                vec![],
                None,
            ),
            (
                "context error",
                failed.clone(),
                vec![],
                Some("preroot: datasource: IMDS: timed out"),
            ),
            (
                "two context errors",
                two,
                vec![],
                Some("timed out (and 1 more errors)"),
            ),
            (
                "apply error",
                ctx(),
                vec!["useradd: exit 1".into()],
                Some("preroot: apply: useradd: exit 1"),
            ),
            (
                "both",
                failed,
                vec!["x".into()],
                Some("(and 1 more errors)"),
            ),
        ];
        for (case, c, errs, want) in cases {
            match (health(&c, &errs), want) {
                (Health::Ready, None) => {}
                (
                    Health::NotReady {
                        substatus,
                        description,
                    },
                    Some(w),
                ) => {
                    assert_eq!(substatus, "ProvisioningFailed", "case {case}");
                    assert!(description.contains(w), "case {case}: {description}");
                }
                (h, w) => panic!("case {case}: {h:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn endpoint_only_when_recorded() {
        let mut c = ctx();
        assert!(endpoint(&c).is_none(), "nothing recorded");
        c.extra.insert(
            "azure".into(),
            serde_json::json!({"wireserver": "http://127.0.0.1:9/", "preprovisioned_vm": true}),
        );
        assert_eq!(
            endpoint(&c).unwrap().unwrap().addr.to_string(),
            "127.0.0.1:9"
        );
        assert!(preprovisioned(&c));
        c.extra.insert(
            "azure".into(),
            serde_json::json!({"wireserver": "https://x/"}),
        );
        assert!(endpoint(&c).unwrap().is_err(), "https refused");
    }

    #[test]
    fn nothing_listening_ends_at_the_deadline() {
        // A port nobody listens on (bound, then closed) on loopback.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let t0 = Instant::now();
        let e = send(
            &base,
            Health::Ready,
            Deadline::after(Duration::from_millis(1200)),
        )
        .expect_err("no server");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "bounded: {:?}",
            t0.elapsed()
        );
        assert!(e.contains("before the deadline"), "{e}");
    }
}
