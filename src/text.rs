//! Text for people: the small helpers every message and help text uses, so that lists and
//! quoted values read the same everywhere. Pure.
//!
//! **Messages are one line.** A message names the input, the value and the rule it broke; the
//! value came from outside and may hold anything, so it goes through [`show`] (escaped,
//! bounded: `"a\nb"` is shown as `a\nb`). Whole lines that may still carry such a value (a
//! log record, a problem in the context, a status error) go through [`one_line`] on their
//! way out, so no value can split a log line or forge one.
#![deny(clippy::arithmetic_side_effects)]

/// `a`, `a or b`, `a, b or c`.
pub fn or_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Most characters of a value [`show`] prints before it cuts (`…`).
pub const SHOW_MAX: usize = 80;

/// A value from outside, for a message: control characters, quotes and backslashes escaped
/// as Rust writes them (`\n`, `\"`, `\u{1b}`), cut after [`SHOW_MAX`] characters with `…`.
/// The caller puts it in quotes: `"{}"`.
pub fn show(value: &str) -> String {
    let mut out = String::new();
    for (n, c) in value.chars().enumerate() {
        if n >= SHOW_MAX {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// Would this character break a line, or make the terminal or the journal show something
/// else than what is there (control characters, line and paragraph separators, the bidi
/// overrides and isolates)?
fn breaks_a_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// A message as one line: every character that breaks a line escaped (`\n`, `\r`,
/// `\u{1b}`); everything else, quotes included, as it is. For whole lines whose parts were
/// not all shown with [`show`].
pub fn one_line(text: &str) -> String {
    if !text.chars().any(breaks_a_line) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if breaks_a_line(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        for (names, want) in [
            (&[][..], ""),
            (&["a"][..], "a"),
            (&["a", "b"][..], "a or b"),
            (&["a", "b", "c"][..], "a, b or c"),
        ] {
            assert_eq!(or_list(names), want, "case {names:?}");
        }
    }

    #[test]
    fn values_and_lines() {
        for (value, want) in [
            ("eth0", "eth0"),
            ("a\nb", "a\\nb"),
            ("say \"hi\"", "say \\\"hi\\\""),
            ("\u{1b}[31m", "\\u{1b}[31m"),
        ] {
            assert_eq!(show(value), want, "case {value:?}");
        }
        let long = "x".repeat(SHOW_MAX + 5);
        assert_eq!(show(&long), format!("{}…", "x".repeat(SHOW_MAX)));
        for (line, want) in [
            ("plain \"quoted\" line", "plain \"quoted\" line"),
            ("10.0.0.5\nrm -rf /", "10.0.0.5\\nrm -rf /"),
            ("a\r\nforged: line", "a\\r\\nforged: line"),
            ("tab\there", "tab\\there"),
            ("bidi \u{202e}txt", "bidi \\u{202e}txt"),
            ("sep\u{2028}x", "sep\\u{2028}x"),
        ] {
            assert_eq!(one_line(line), want, "case {line:?}");
            assert!(!one_line(line).contains('\n'));
        }
    }
}
