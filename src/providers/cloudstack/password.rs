//! The password server of CloudStack's virtual router (and of Exoscale, which runs on
//! CloudStack): `GET http://<server>:8080/` with the header `DomU_Request: send_my_password`
//! answers the instance's new password as the body, or `saved_password` (already taken),
//! `bad_request` (refused), or nothing (no password set). After a password was taken and
//! stored, `DomU_Request: saved_password` tells the server, so it is not served again.
//!
//! Spec: CloudStack's `systemvm/debian/opt/cloud/bin/passwd_server_ip.py` and the
//! administration guide ("Password management"); cloud-init's
//! `CloudStackPasswordServerClient`, Exoscale's `get_password`. [`parse`] is pure; the
//! exchange ([`Server::take`]) has a budget of its own ([`BUDGET`]) inside the caller's
//! deadline, since a CloudStack without password support has no server on port 8080 and
//! must not cost the boot its whole deadline. Not supported: the pre-4.x server that answers
//! without an HTTP status line (`serve_password.sh` over socat).
//!
//! Panic contract: [`parse`] never panics on any bytes (no indexing, no arithmetic).
#![deny(clippy::arithmetic_side_effects)]

use crate::deadline::Deadline;
use crate::http::{Client, Url};
use std::time::Duration;

/// Longest a password exchange may take, both requests together.
pub const BUDGET: Duration = Duration::from_secs(3);
/// Longest password accepted (the server sends a short one; anything longer is not one).
pub const PASSWORD_MAX: usize = 1024;
/// The request header and its two values.
pub const HEADER: &str = "DomU_Request";
pub const SEND: &str = "send_my_password";
pub const SAVED: &str = "saved_password";

/// What the server answered to `send_my_password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A new password (trimmed).
    Password(String),
    /// None to give: `saved_password` (taken before) or an empty body.
    Nothing(&'static str),
    /// `bad_request`: the server refused this instance.
    Refused,
    /// Not a password: binary, control characters or over [`PASSWORD_MAX`] bytes.
    Garbage(String),
}

/// Reads the body of an answer to `send_my_password`.
pub fn parse(body: &[u8]) -> Answer {
    let Ok(text) = std::str::from_utf8(body) else {
        return Answer::Garbage("not UTF-8".into());
    };
    let text = text.trim();
    match text {
        "" => Answer::Nothing("no password set"),
        SAVED => Answer::Nothing("the password was taken before (saved_password)"),
        "bad_request" => Answer::Refused,
        _ if text.len() > PASSWORD_MAX => {
            Answer::Garbage(format!("longer than {PASSWORD_MAX} bytes"))
        }
        _ if text.chars().any(char::is_control) => Answer::Garbage("control characters".into()),
        _ => Answer::Password(text.to_string()),
    }
}

/// A password server at `url`, asked with a client of the caller's.
pub struct Server {
    pub url: Url,
    pub client: Client,
}

impl Server {
    /// `url`, within [`BUDGET`] of `client`'s deadline.
    pub fn new(url: Url, client: &Client) -> Server {
        let mut client = client.clone();
        client.deadline = Deadline::after(client.deadline.remaining().min(BUDGET));
        client.headers.clear();
        client.source_ports = None;
        Server { url, client }
    }

    /// Asks for the password: the answer, or one line on why it could not be asked.
    pub fn ask(&self) -> Result<Answer, String> {
        match self.client.request(
            "GET",
            &self.url,
            &[(HEADER, SEND)],
            b"",
            PASSWORD_MAX.saturating_add(1024),
        ) {
            Ok(r) if r.status == 200 => Ok(parse(&r.body)),
            Ok(r) if r.status == 404 => Ok(Answer::Nothing("no password server here (HTTP 404)")),
            Ok(r) => Err(format!("HTTP status {}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Tells the server the password is stored (`saved_password`).
    pub fn acknowledge(&self) -> Result<(), String> {
        match self
            .client
            .request("GET", &self.url, &[(HEADER, SAVED)], b"", 4096)
        {
            Ok(r) if (200..300).contains(&r.status) => Ok(()),
            Ok(r) => Err(format!("HTTP status {}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let long = "x".repeat(PASSWORD_MAX + 1);
        let cases: &[(&[u8], Answer)] = &[
            (b"SekritSquirrel", Answer::Password("SekritSquirrel".into())),
            (b"p@ssw0rd\n", Answer::Password("p@ssw0rd".into())),
            (b"", Answer::Nothing("no password set")),
            (b"  \n", Answer::Nothing("no password set")),
            (
                b"saved_password",
                Answer::Nothing("the password was taken before (saved_password)"),
            ),
            (b"bad_request\n", Answer::Refused),
            (b"\xff\xfe", Answer::Garbage("not UTF-8".into())),
            (b"a\x00b", Answer::Garbage("control characters".into())),
            (
                long.as_bytes(),
                Answer::Garbage(format!("longer than {PASSWORD_MAX} bytes")),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse(body),
                *want,
                "case {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_fixtures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/platforms");
        for (file, password) in [
            (
                "cloudstack/password-server/send_my_password",
                Some("SekritSquirrel"),
            ),
            ("cloudstack/password-server/send_my_password.saved", None),
            ("cloudstack/password-server/send_my_password.empty", None),
            (
                "exoscale/password-server/send_my_password",
                Some("p@ssw0rd"),
            ),
            ("exoscale/password-server/send_my_password.saved", None),
        ] {
            let body = std::fs::read(format!("{dir}/{file}")).unwrap();
            let got = match parse(&body) {
                Answer::Password(p) => Some(p),
                _ => None,
            };
            assert_eq!(got.as_deref(), password, "case {file}");
        }
        let refused = std::fs::read(format!(
            "{dir}/cloudstack/password-server/send_my_password.bad_request"
        ))
        .unwrap();
        assert_eq!(parse(&refused), Answer::Refused);
    }
}
