//! `--help`, made from the declaration ([`super::decl`]) and the kernel command line and
//! preroot.conf key tables: the general help lists every command and option, `preroot CMD
//! --help` one command's. Lists of names come from the code's enums ([`fill`]). Pure: returns
//! text.

use super::decl::{self, Cmd, CommandDecl, OptDecl};
use crate::context::Phase;
use crate::netformat::NetFormat;
use crate::platform::Platform;

const WIDTH: usize = 80;

/// `text` with its list placeholders replaced by the names they stand for.
pub fn fill(text: &str) -> String {
    let urls = {
        let mut urls: Vec<&str> = Vec::new();
        for p in Platform::ALL {
            if let Some(url) = p.service().url() {
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
        }
        urls.join(", ")
    };
    let endpoints = {
        let mut out: Vec<String> = Vec::new();
        for p in Platform::ALL {
            for e in p.endpoints() {
                out.push(format!("{} of {p} ({})", e.name, e.default));
            }
        }
        out.join("; ")
    };
    let urls6: Vec<&str> = Platform::ALL
        .iter()
        .filter_map(|p| p.service_v6())
        .collect();
    text.replace("{platforms-on-media}", &Platform::list(Platform::on_medium))
        .replace("{endpoints}", &endpoints)
        .replace("{platforms-served}", &Platform::list(Platform::serves))
        .replace("{platforms}", &Platform::list(|_| true))
        .replace("{formats}", &NetFormat::list())
        .replace("{phases}", &Phase::list())
        .replace("{urls}", &urls)
        .replace("{urls6}", &urls6.join(", "))
}

/// Words of `text` filled into lines of [`WIDTH`], the first after `first` (already on the
/// line, `first_width` columns), the rest indented by `indent`. Paragraphs (blank lines) kept.
fn wrap(out: &mut String, first_width: usize, indent: usize, text: &str) {
    let mut col = first_width;
    for (n, para) in fill(text).split("\n\n").enumerate() {
        if n > 0 {
            out.push_str("\n\n");
            out.push_str(&" ".repeat(indent));
            col = indent;
        }
        let mut line_start = true;
        for word in para.split_whitespace() {
            let len = word.chars().count();
            if !line_start && col.saturating_add(1).saturating_add(len) > WIDTH {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                col = indent;
                line_start = true;
            }
            if !line_start {
                out.push(' ');
                col = col.saturating_add(1);
            }
            out.push_str(word);
            col = col.saturating_add(len);
            line_start = false;
        }
    }
    out.push('\n');
}

/// `--long VALUE` (with `-s, ` in front when it has a short name).
fn option_name(o: &OptDecl) -> String {
    let short = o.short.map(|c| format!("-{c}, ")).unwrap_or_default();
    match o.value {
        Some(v) => format!("{short}--{} {v}", o.long),
        None => format!("{short}--{}", o.long),
    }
}

/// `preroot NAME [--x X] ... [OPERAND]`, made from the options it takes.
pub fn synopsis(c: &CommandDecl) -> String {
    let mut s = format!("{} {}", decl::PROGRAM, c.name);
    for o in decl::options_of(c.cmd) {
        if matches!(o.opt, decl::Opt::Help | decl::Opt::Version) {
            continue;
        }
        let name = match (o.short, o.value) {
            (Some(c), None) => format!("-{c}"),
            (_, Some(v)) => format!("--{} {v}", o.long),
            (None, None) => format!("--{}", o.long),
        };
        s.push(' ');
        s.push_str(&match (o.required, o.repeat) {
            (true, _) => name,
            (false, true) => format!("[{name}]..."),
            (false, false) => format!("[{name}]"),
        });
    }
    if let Some(operand) = c.operand {
        s.push_str(&format!(" [{operand}]"));
    }
    s
}

/// A two-column list: names padded to a common width, help wrapped beside them.
fn table(out: &mut String, rows: &[(String, &str)]) {
    let name_width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    for (name, help) in rows {
        let len = name.chars().count();
        out.push_str("  ");
        out.push_str(name);
        let col = if len > name_width {
            out.push('\n');
            out.push_str(&" ".repeat(name_width.saturating_add(4)));
            name_width.saturating_add(4)
        } else {
            out.push_str(&" ".repeat(name_width.saturating_sub(len).saturating_add(2)));
            name_width.saturating_add(4)
        };
        wrap(out, col, col, help);
    }
}

/// The kernel command line keys, as `name=VALUE` and help.
fn kernel_keys(out: &mut String) {
    let rows: Vec<(String, &str)> = crate::cmdline::KEYS
        .iter()
        .map(|k| {
            let name = match k.value {
                Some(v) => format!("{}={v}", k.name),
                None => format!("{}[=0|1]", k.name),
            };
            (name, k.help)
        })
        .collect();
    table(out, &rows);
}

/// `preroot --help`: every command and option.
pub fn general() -> String {
    let mut out = String::new();
    wrap(
        &mut out,
        0,
        0,
        &format!("{} - {}", decl::PROGRAM, decl::ABOUT),
    );
    out.push_str(&format!(
        "\nUsage: {} [-v] COMMAND [OPTIONS]\n       {} COMMAND --help\n\nCommands:\n",
        decl::PROGRAM,
        decl::PROGRAM
    ));
    let rows: Vec<(String, &str)> = decl::COMMANDS
        .iter()
        .map(|c| (c.name.to_string(), c.about))
        .collect();
    table(&mut out, &rows);
    out.push_str("\nOptions (the commands that take them in parentheses):\n");
    let helps: Vec<String> = decl::OPTIONS
        .iter()
        .map(|o| {
            let names: Vec<&str> = o
                .commands
                .iter()
                .filter_map(|c| decl::declaration(*c).map(|d| d.name))
                .collect();
            if names.is_empty() {
                o.help.to_string()
            } else {
                format!("({}) {}", names.join(", "), o.help)
            }
        })
        .collect();
    let rows: Vec<(String, &str)> = decl::OPTIONS
        .iter()
        .zip(&helps)
        .map(|(o, h)| (option_name(o), h.as_str()))
        .collect();
    table(&mut out, &rows);
    out.push_str("\nKernel command line (read by context, run, grow and net):\n");
    kernel_keys(&mut out);
    out.push_str("\nExit status: ");
    wrap(&mut out, 13, 0, decl::EXIT_STATUS);
    out
}

/// `preroot CMD --help`: the command's synopsis, what it does, its options, and what it reads.
pub fn command(cmd: Cmd) -> String {
    let Some(c) = decl::declaration(cmd) else {
        return general();
    };
    let mut out = String::from("Usage: ");
    wrap(&mut out, 7, 7, &synopsis(c));
    out.push('\n');
    wrap(&mut out, 0, 0, c.help);
    out.push_str("\nOptions:\n");
    let rows: Vec<(String, &str)> = decl::options_of(cmd)
        .map(|o| (option_name(o), o.help))
        .collect();
    table(&mut out, &rows);
    if matches!(cmd, Cmd::Context | Cmd::Run | Cmd::Grow | Cmd::Net) {
        out.push_str("\nKernel command line:\n");
        kernel_keys(&mut out);
    }
    if cmd == Cmd::Apply {
        out.push_str(&format!("\n/{} (key = value lines):\n", crate::conf::CONF));
        let rows: Vec<(String, String)> = crate::conf::KEYS
            .iter()
            .map(|k| {
                (
                    format!("{} = {}", k.name, k.value),
                    format!("{} [{}]", k.help, k.default),
                )
            })
            .collect();
        let rows: Vec<(String, &str)> = rows.iter().map(|(n, h)| (n.clone(), h.as_str())).collect();
        table(&mut out, &rows);
    }
    out.push_str("\nExit status: ");
    wrap(&mut out, 13, 0, decl::EXIT_STATUS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_help_names_every_command_option_and_key() {
        let text = general();
        for c in decl::COMMANDS {
            assert!(text.contains(&format!("  {}", c.name)), "case {}", c.name);
        }
        for o in decl::OPTIONS {
            assert!(text.contains(&format!("--{}", o.long)), "case --{}", o.long);
        }
        for k in crate::cmdline::KEYS {
            assert!(text.contains(k.name), "case {}", k.name);
        }
        for p in Platform::ALL {
            assert!(text.contains(p.name()), "case {p}");
        }
        assert!(!text.contains("{platforms"), "placeholders filled");
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "line too long: {line:?}");
        }
    }

    #[test]
    fn each_command_help_is_complete() {
        for c in decl::COMMANDS {
            let text = command(c.cmd);
            assert!(
                text.starts_with(&format!("Usage: preroot {}", c.name)),
                "case {}",
                c.name
            );
            for o in decl::options_of(c.cmd) {
                assert!(
                    text.contains(&format!("--{}", o.long)),
                    "case {}: --{}",
                    c.name,
                    o.long
                );
            }
            for o in decl::OPTIONS.iter().filter(|o| !o.takes(c.cmd)) {
                assert!(
                    !text.contains(&format!("--{} ", o.long))
                        || decl::options_of(c.cmd).any(|m| m.long == o.long),
                    "case {}: shows --{}, which it does not take",
                    c.name,
                    o.long
                );
            }
            for line in text.lines() {
                assert!(line.chars().count() <= WIDTH, "case {}: {line:?}", c.name);
            }
        }
        assert!(command(Cmd::Apply).contains("default_user"));
        assert!(command(Cmd::Grow).contains("[ROOTSPEC]"));
        assert!(command(Cmd::Run).contains("--phase PHASE"));
    }

    #[test]
    fn wraps_words_and_keeps_paragraphs() {
        let mut out = String::new();
        wrap(&mut out, 0, 2, &"word ".repeat(40));
        assert!(out.lines().all(|l| l.len() <= WIDTH));
        assert!(out.lines().skip(1).all(|l| l.starts_with("  word")));
        let mut out = String::new();
        wrap(&mut out, 0, 0, "a\n\nb");
        assert_eq!(out, "a\n\nb\n");
    }
}
