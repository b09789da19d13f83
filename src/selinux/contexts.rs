//! `file_contexts` and its path substitutions: parse the specs and answer "which label does
//! this path get", with libselinux's precedence.
//!
//! Owns the text formats of `contexts/files/file_contexts` (and `.homedirs`, `.local`: the
//! same format) and `file_contexts.subs_dist` / `.subs`, and the lookup rules of libselinux's
//! file backend as of 3.4 (Debian 12; `libselinux/src/label_file.c`, `label_file.h`,
//! `label_support.c`), which is the version the tests compare with:
//! - a line is `REGEX [TYPE] CONTEXT`, whitespace separated; `#` first means a comment; more
//!   than three fields: the rest is ignored; one field, a TYPE other than `--` `-d` `-l` `-b`
//!   `-c` `-p` `-s`, or a non-ASCII byte in a field is an error for the whole file (libselinux
//!   then fails `selabel_open`, and so does [`FileContexts::new`]);
//! - specs are loaded base, then `.homedirs`, then `.local`; then every spec whose regex has
//!   no meta character (`.^$?*+|[({`, a `\` hiding the next byte) is moved behind all the
//!   others, order kept (`sort_specs`): an exact path beats any regex wherever it stands;
//! - a lookup collapses `//`, drops one trailing `/`, applies the substitutions (one `.subs`
//!   rule, then one `.subs_dist` rule on the result; within a file the last line is tried first;
//!   a rule's source must end at a `/` or the path's end), then tries the specs from the last
//!   to the first: the first whose file type fits (either side unknown fits) and whose regex
//!   matches wins; `<<none>>` winning means "no label";
//! - a spec whose regex starts with a plain first component (`/etc/...`) is only tried for
//!   paths with that first component (libselinux's "stem"; it compares the raw text, so a
//!   `\` there keeps the spec from ever matching, as in libselinux).
//!
//! libselinux 3.8 and later (Fedora 41+) store the specs in a tree, but keep the rules above
//! for real policies; they differ only for an exact-looking regex with an escape outside
//! their curated list (`\d` in an otherwise literal path), which 3.8 treats as a regex, and in
//! that `]`, `)`, `}` also count as meta characters. Not read: `file_contexts.bin` (see
//! `selinux/mod.rs`), `SELABEL_OPT_SUBSET`/`BASEONLY`, context validation against the policy.
//!
//! Bounds: [`MAX_SPECS`] specs, paths of at most [`MAX_PATH`] bytes, [`LOOKUP_FUEL`]
//! matcher steps per lookup, [`MAX_INSTRUCTIONS`] compiled instructions in all. Regexes are
//! compiled when a lookup first reaches them, as libselinux does, so a policy that exceeds the
//! instruction budget fails the lookups that reach specs past it, in the order reached. A spec
//! whose regex cannot be compiled (invalid, unsupported, too large) fails the lookups that
//! reach it ([`LookupError::Regex`]), as libselinux's lookup fails on a regex PCRE2 rejects.
//! Speed: specs are indexed by stem, and a spec whose plain leading text the path does not
//! start with is skipped uncompiled; so, unlike libselinux, a broken regex fails only lookups
//! of paths that start with its plain text (a real policy has none: semodule checks them).
//!
//! Panic contract: nothing here panics on any input (no indexing, checked arithmetic).
#![deny(clippy::arithmetic_side_effects)]

use super::regex::{self, Program, Threads};
use std::cell::{Cell, OnceCell};
use std::collections::HashMap;

/// Most specs across the three files (Debian's refpolicy has 5,621, Fedora's about 7,000).
pub const MAX_SPECS: usize = 100_000;
/// Most compiled matcher instructions across all specs (about 12 bytes each).
pub const MAX_INSTRUCTIONS: usize = 4_000_000;
/// Longest path looked up (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Matcher steps one lookup may take. Debian's full policy needs at most about 20,000 for the
/// paths preroot writes; this is far above that and still well under a second.
pub const LOOKUP_FUEL: u64 = 20_000_000;
/// `fgets` buffer of libselinux 3.4's substitution reader, less the NUL: longer lines are
/// read in pieces, each piece taken as a line.
const SUBS_CHUNK: usize = 1022;

/// The file type field of a spec (`--` regular file, `-d` directory, ...), and the type of
/// the file being labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileKind {
    /// The type field's spelling (`--`, `-d`, ...).
    pub fn field(self) -> &'static str {
        match self {
            FileKind::Regular => "--",
            FileKind::Directory => "-d",
            FileKind::Symlink => "-l",
            FileKind::CharDevice => "-c",
            FileKind::BlockDevice => "-b",
            FileKind::Fifo => "-p",
            FileKind::Socket => "-s",
        }
    }

    fn from_field(field: &[u8]) -> Option<FileKind> {
        Some(match field {
            b"--" => FileKind::Regular,
            b"-d" => FileKind::Directory,
            b"-l" => FileKind::Symlink,
            b"-c" => FileKind::CharDevice,
            b"-b" => FileKind::BlockDevice,
            b"-p" => FileKind::Fifo,
            b"-s" => FileKind::Socket,
            _ => return None,
        })
    }
}

/// Which of the three spec files a spec came from, in load order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Input {
    Base,
    Homedirs,
    Local,
}

impl Input {
    /// The file name's suffix after `file_contexts`.
    pub fn suffix(self) -> &'static str {
        match self {
            Input::Base => "",
            Input::Homedirs => ".homedirs",
            Input::Local => ".local",
        }
    }
}

/// A file that cannot be used at all (libselinux's `selabel_open` fails on the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub input: Input,
    /// 1-based; 0 when the error is about the whole file.
    pub line: u32,
    pub what: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "file_contexts{} line {}: {}",
            self.input.suffix(),
            self.line,
            self.what
        )
    }
}

/// A lookup that has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// An empty path (libselinux: EINVAL).
    Empty,
    /// Longer than [`MAX_PATH`].
    TooLong,
    /// The lookup reached a spec whose regex was not compiled.
    Regex {
        input: Input,
        line: u32,
        error: regex::Error,
    },
    /// The matcher took more than [`LOOKUP_FUEL`] steps.
    OutOfFuel,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::Empty => write!(f, "empty path"),
            LookupError::TooLong => write!(f, "path longer than {MAX_PATH} bytes"),
            LookupError::Regex { input, line, error } => {
                write!(f, "file_contexts{} line {line}: {error}", input.suffix())
            }
            LookupError::OutOfFuel => write!(f, "lookup took more than {LOOKUP_FUEL} steps"),
        }
    }
}

/// One line of a spec file.
#[derive(Debug)]
pub struct Spec {
    pub regex: String,
    pub kind: Option<FileKind>,
    /// `None` for `<<none>>`.
    pub context: Option<String>,
    pub input: Input,
    pub line: u32,
    /// The regex has a meta character (libselinux `hasMetaChars`).
    meta: bool,
    /// Byte length of the regex's stem (its plain first component), if it has one.
    stem: Option<usize>,
    /// Byte length of the regex's plain start that every match begins with ([`literal_prefix`]).
    prefix: usize,
    /// Compiled when a lookup first reaches the spec, as libselinux compiles (`compile_regex`
    /// from `lookup_all`): opening a policy parses 5,000 lines but compiles none.
    program: OnceCell<Result<Program, regex::Error>>,
}

impl Spec {
    /// libselinux's stem of the regex: its first component when that is plain text.
    pub fn stem(&self) -> Option<&[u8]> {
        self.regex.as_bytes().get(..self.stem?)
    }

    /// Text every path this spec matches starts with (empty when not known).
    pub fn prefix(&self) -> &[u8] {
        self.regex.as_bytes().get(..self.prefix).unwrap_or_default()
    }
}

/// C's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits one line into at most three fields as `read_spec_entries` does; `Ok(None)` for a
/// blank or comment line.
fn fields(line: &[u8]) -> Result<Option<[&[u8]; 3]>, &'static str> {
    // A C string ends at the first NUL.
    let line = match line.iter().position(|b| *b == 0) {
        Some(nul) => line.get(..nul).unwrap_or_default(),
        None => line,
    };
    let start = line.iter().position(|b| !is_space(*b));
    let Some(start) = start else {
        return Ok(None);
    };
    let rest = line.get(start..).unwrap_or_default();
    if rest.first() == Some(&b'#') {
        return Ok(None);
    }
    let mut out: [&[u8]; 3] = [&[]; 3];
    for (slot, field) in out
        .iter_mut()
        .zip(rest.split(|b| is_space(*b)).filter(|f| !f.is_empty()))
    {
        if !field.is_ascii() {
            return Err("Non-ASCII characters found");
        }
        *slot = field;
    }
    Ok(Some(out))
}

/// libselinux's `spec_hasMetaChars`.
fn has_meta(regex: &[u8]) -> bool {
    let mut it = regex.iter();
    while let Some(c) = it.next() {
        match c {
            b'.' | b'^' | b'$' | b'?' | b'*' | b'+' | b'|' | b'[' | b'(' | b'{' => return true,
            b'\\' => {
                it.next();
            }
            _ => {}
        }
    }
    false
}

/// libselinux's `get_stem_from_spec`: the text before the second `/`-search position, if it
/// has no meta character.
fn spec_stem(regex: &[u8]) -> Option<usize> {
    let len = path_stem(regex)?;
    let stem = regex.get(..len)?;
    (!stem.iter().any(|c| b".^$?*+|[({".contains(c))).then_some(len)
}

/// Does the regex have a `|` outside any group? Then libselinux's `^...$` anchors only the
/// first and last branch, and no prefix is certain. Errs towards yes: `[:` in a class, or an
/// unbalanced `)`, count as yes.
fn top_level_alternation(regex: &[u8]) -> bool {
    let mut depth = 0u32;
    let mut it = regex.iter().peekable();
    while let Some(c) = it.next() {
        match c {
            b'\\' => {
                it.next();
            }
            b'[' => {
                // A class: `]` first (after `^`) is a member; it ends at the next `]`.
                it.next_if_eq(&&b'^');
                it.next_if_eq(&&b']');
                loop {
                    match it.next() {
                        None => return true,
                        Some(b']') => break,
                        Some(b'\\') => {
                            it.next();
                        }
                        Some(b'[') if it.peek() == Some(&&b':') => return true,
                        Some(_) => {}
                    }
                }
            }
            b'(' => depth = depth.saturating_add(1),
            b')' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            b'|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// How many leading bytes of `regex` every match starts with, read from the text alone: the
/// plain bytes before the first meta character or `\`, less the last one when a quantifier
/// that allows zero (`*`, `?`, `{`) follows it; none with a top-level `|`. A lookup skips a
/// spec whose prefix the path lacks without compiling its regex (unit tests and the fuzz
/// target check that the compiled program agrees).
fn literal_prefix(regex: &[u8]) -> usize {
    if top_level_alternation(regex) {
        return 0;
    }
    let plain = regex
        .iter()
        .take_while(|c| !b".^$?*+|[({)\\".contains(c))
        .count();
    match regex.get(plain) {
        Some(b'*' | b'?' | b'{') => plain.saturating_sub(1),
        _ => plain,
    }
}

/// libselinux's `get_stem_from_file_name`: up to the first `/` after the first byte.
fn path_stem(path: &[u8]) -> Option<usize> {
    let tail = path.get(1..)?;
    let at = tail.iter().position(|b| *b == b'/')?;
    at.checked_add(1)
}

/// A path substitution rule: a path starting with `src` (up to a `/` or its end) is looked up
/// as `dst` + the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
}

/// Parses a `file_contexts.subs` / `.subs_dist` file (libselinux 3.4 `selabel_subs_init`):
/// `SRC DST` per line, `#` comments, lines without both fields skipped. Returned in the order
/// rules are tried: last line first.
pub fn parse_subs(text: &[u8]) -> Vec<Sub> {
    let mut subs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |n| n.saturating_add(1));
        let take = line_end.min(SUBS_CHUNK);
        let (chunk, tail) = rest.split_at_checked(take).unwrap_or((rest, &[]));
        rest = tail;
        let chunk = match chunk.iter().position(|b| *b == 0) {
            Some(nul) => chunk.get(..nul).unwrap_or_default(),
            None => chunk,
        };
        let mut words = chunk.split(|b| is_space(*b)).filter(|w| !w.is_empty());
        let Some(src) = words.next() else { continue };
        if src.first() == Some(&b'#') {
            continue;
        }
        let Some(dst) = words.next() else { continue };
        subs.push(Sub {
            src: src.to_vec(),
            dst: dst.to_vec(),
        });
    }
    subs.reverse();
    subs
}

/// The first rule of `subs` that applies to `key` (libselinux `selabel_sub`).
fn substitute(subs: &[Sub], key: &[u8]) -> Option<Vec<u8>> {
    for sub in subs {
        let Some(rest) = key.strip_prefix(sub.src.as_slice()) else {
            continue;
        };
        match rest.first() {
            None | Some(b'/') => {}
            Some(_) => continue,
        }
        // `/x` → `/`: keep one slash, not two.
        let rest = if sub.dst == b"/" && rest.first() == Some(&b'/') {
            rest.get(1..).unwrap_or_default()
        } else {
            rest
        };
        let mut out = sub.dst.clone();
        out.extend_from_slice(rest);
        return Some(out);
    }
    None
}

/// The specs and substitutions of one policy, ready for lookups.
pub struct FileContexts {
    /// In libselinux's order after `sort_specs`; lookups go from the back.
    specs: Vec<Spec>,
    /// Indexes into `specs`, ascending: the specs with no stem, and those of each stem. A
    /// lookup walks the two lists that can match, merged from the back, instead of every spec.
    stemless: Vec<u32>,
    by_stem: HashMap<Vec<u8>, Vec<u32>>,
    subs: Vec<Sub>,
    dist_subs: Vec<Sub>,
    /// Scratch space for the matcher, grown to the largest program met; taken during a lookup.
    threads: Cell<Option<Threads>>,
    /// Instructions the specs compiled so far may still use ([`MAX_INSTRUCTIONS`] in all).
    budget: Cell<usize>,
}

impl std::fmt::Debug for FileContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContexts")
            .field("specs", &self.specs.len())
            .field("stems", &self.by_stem.len())
            .field("subs", &self.subs)
            .field("dist_subs", &self.dist_subs)
            .finish()
    }
}

/// The texts of one policy's `contexts/files/` directory.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sources<'a> {
    pub base: &'a [u8],
    pub homedirs: Option<&'a [u8]>,
    pub local: Option<&'a [u8]>,
    pub subs_dist: Option<&'a [u8]>,
    pub subs: Option<&'a [u8]>,
}

/// Walks two ascending index lists together from the back (largest index first).
struct MergeBack<'a> {
    a: &'a [u32],
    b: &'a [u32],
}

impl Iterator for MergeBack<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let take_a = match (self.a.last(), self.b.last()) {
            (Some(x), Some(y)) => x > y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (last, rest) = list.split_last()?;
        *list = rest;
        Some(*last)
    }
}

impl FileContexts {
    /// Parses the files (libselinux `init`: base, `.homedirs`, `.local`; then `sort_specs`).
    pub fn new(src: Sources<'_>) -> Result<FileContexts, ParseError> {
        let mut specs = Vec::new();
        for (input, text) in [
            (Input::Base, Some(src.base)),
            (Input::Homedirs, src.homedirs),
            (Input::Local, src.local),
        ] {
            if let Some(text) = text {
                parse_specs(text, input, &mut specs)?;
            }
        }
        // Stable: regex specs first, then the exact ones, each in load order.
        let (mut ordered, exact): (Vec<Spec>, Vec<Spec>) = specs.into_iter().partition(|s| s.meta);
        ordered.extend(exact);
        let mut stemless = Vec::new();
        let mut by_stem: HashMap<Vec<u8>, Vec<u32>> = HashMap::new();
        for (i, spec) in ordered.iter().enumerate() {
            // MAX_SPECS keeps every index within u32.
            let Ok(i) = u32::try_from(i) else { break };
            match spec.stem() {
                Some(stem) => match by_stem.get_mut(stem) {
                    Some(list) => list.push(i),
                    None => {
                        by_stem.insert(stem.to_vec(), vec![i]);
                    }
                },
                None => stemless.push(i),
            }
        }
        Ok(FileContexts {
            specs: ordered,
            stemless,
            by_stem,
            subs: src.subs.map(parse_subs).unwrap_or_default(),
            dist_subs: src.subs_dist.map(parse_subs).unwrap_or_default(),
            threads: Cell::new(None),
            budget: Cell::new(MAX_INSTRUCTIONS),
        })
    }

    /// The specs in precedence order (later wins).
    pub fn specs(&self) -> &[Spec] {
        &self.specs
    }

    /// `key` as libselinux looks it up: `//` collapsed, one trailing `/` dropped, then the
    /// substitutions applied (libselinux `lookup_all` and `selabel_sub_key`).
    pub fn normalize(&self, key: &[u8]) -> Result<Vec<u8>, LookupError> {
        if key.len() > MAX_PATH {
            return Err(LookupError::TooLong);
        }
        let mut clean: Vec<u8> = Vec::with_capacity(key.len());
        for b in key {
            if *b == b'/' && clean.last() == Some(&b'/') {
                continue;
            }
            clean.push(*b);
        }
        if clean.len() > 1 && clean.last() == Some(&b'/') {
            clean.pop();
        }
        if clean.is_empty() {
            return Err(LookupError::Empty);
        }
        let subbed = match substitute(&self.subs, &clean) {
            Some(s) => Some(substitute(&self.dist_subs, &s).unwrap_or(s)),
            None => substitute(&self.dist_subs, &clean),
        };
        Ok(subbed.unwrap_or(clean))
    }

    /// The specs that may decide the normalized `key` ([`FileContexts::normalize`]) of type
    /// `kind`, in the order libselinux tries them (last first): those without a stem and
    /// those with `key`'s stem, whose file type fits and whose literal prefix `key` has. The
    /// first whose regex matches wins.
    pub fn candidates<'a, 'k>(
        &'a self,
        key: &'k [u8],
        kind: Option<FileKind>,
    ) -> impl Iterator<Item = &'a Spec> + use<'a, 'k> {
        let same_stem = path_stem(key)
            .and_then(|n| key.get(..n))
            .and_then(|stem| self.by_stem.get(stem))
            .map(Vec::as_slice)
            .unwrap_or_default();
        MergeBack {
            a: &self.stemless,
            b: same_stem,
        }
        .filter_map(|i| usize::try_from(i).ok().and_then(|i| self.specs.get(i)))
        .filter(move |spec| match (kind, spec.kind) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .filter(move |spec| key.starts_with(spec.prefix()))
    }

    /// The compiled regex of `spec`, compiling it on first use within the instruction budget.
    fn program<'a>(&self, spec: &'a Spec) -> &'a Result<Program, regex::Error> {
        spec.program.get_or_init(|| {
            let p = Program::new(spec.regex.as_bytes())?;
            let left = self
                .budget
                .get()
                .checked_sub(p.len())
                .ok_or(regex::Error::TooComplex {
                    what: "the policy's regexes exceed the instruction budget",
                })?;
            self.budget.set(left);
            Ok(p)
        })
    }

    /// The spec that decides `path`'s label (`kind`: the file's type, `None` if unknown), or
    /// `None` when no spec matches. A winning spec with `context: None` (`<<none>>`) means
    /// the path gets no label. Also returns the matcher steps taken.
    fn decide(
        &self,
        path: &[u8],
        kind: Option<FileKind>,
    ) -> (Result<Option<&Spec>, LookupError>, u64) {
        let key = match self.normalize(path) {
            Ok(k) => k,
            Err(e) => return (Err(e), 0),
        };
        let mut threads = self.threads.take().unwrap_or_default();
        let mut fuel = LOOKUP_FUEL;
        let mut found = Ok(None);
        for spec in self.candidates(&key, kind) {
            let program = match self.program(spec) {
                Ok(p) => p,
                Err(e) => {
                    found = Err(LookupError::Regex {
                        input: spec.input,
                        line: spec.line,
                        error: *e,
                    });
                    break;
                }
            };
            if threads.size() < program.len() {
                threads = Threads::new(program.len());
            }
            match program.is_match(&key, &mut threads, &mut fuel) {
                Ok(true) => {
                    found = Ok(Some(spec));
                    break;
                }
                Ok(false) => {}
                Err(regex::OutOfFuel) => {
                    found = Err(LookupError::OutOfFuel);
                    break;
                }
            }
        }
        self.threads.set(Some(threads));
        (found, LOOKUP_FUEL.saturating_sub(fuel))
    }

    /// The spec that decides `path`'s label (`kind`: the file's type, `None` if unknown), or
    /// `None` when no spec matches. A winning spec with `context: None` (`<<none>>`) means
    /// the path gets no label.
    pub fn lookup(
        &self,
        path: &[u8],
        kind: Option<FileKind>,
    ) -> Result<Option<&Spec>, LookupError> {
        self.decide(path, kind).0
    }

    /// Matcher steps a lookup of `path` takes (for measurements and for sizing
    /// [`LOOKUP_FUEL`]).
    pub fn fuel_used(&self, path: &[u8], kind: Option<FileKind>) -> u64 {
        self.decide(path, kind).1
    }
}

fn parse_specs(text: &[u8], input: Input, specs: &mut Vec<Spec>) -> Result<(), ParseError> {
    let err = |line: u32, what: &str| ParseError {
        input,
        line,
        what: what.to_string(),
    };
    let mut lineno: u32 = 0;
    for line in text.split(|b| *b == b'\n') {
        lineno = lineno.saturating_add(1);
        let f = match fields(line) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(what) => return Err(err(lineno, what)),
        };
        let (regex, kind, context) = match f {
            [regex, context, b""] if !context.is_empty() => (regex, None, context),
            [regex, kind, context] if !context.is_empty() => {
                let Some(k) = FileKind::from_field(kind) else {
                    return Err(err(
                        lineno,
                        &format!("invalid file type {}", String::from_utf8_lossy(kind)),
                    ));
                };
                (regex, Some(k), context)
            }
            _ => return Err(err(lineno, "missing fields")),
        };
        if specs.len() >= MAX_SPECS {
            return Err(err(lineno, &format!("more than {MAX_SPECS} specs")));
        }
        // Fields are ASCII (checked by `fields`), so these conversions are lossless.
        specs.push(Spec {
            regex: String::from_utf8_lossy(regex).into_owned(),
            kind,
            context: (context != b"<<none>>")
                .then(|| String::from_utf8_lossy(context).into_owned()),
            input,
            line: lineno,
            meta: has_meta(regex),
            stem: spec_stem(regex),
            prefix: literal_prefix(regex),
            program: OnceCell::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables
mod tests {
    use super::*;

    fn fc(
        base: &str,
        local: Option<&str>,
        subs_dist: Option<&str>,
        subs: Option<&str>,
    ) -> FileContexts {
        FileContexts::new(Sources {
            base: base.as_bytes(),
            homedirs: None,
            local: local.map(str::as_bytes),
            subs_dist: subs_dist.map(str::as_bytes),
            subs: subs.map(str::as_bytes),
        })
        .unwrap()
    }

    fn label<'a>(f: &'a FileContexts, path: &str, kind: Option<FileKind>) -> Option<&'a str> {
        f.lookup(path.as_bytes(), kind)
            .unwrap()
            .and_then(|s| s.context.as_deref())
    }

    const BASE: &str = "\
# comment
/.*\t\tsystem_u:object_r:default_t:s0
/etc/.*\t\tsystem_u:object_r:etc_t:s0
/etc/hosts\t--\tsystem_u:object_r:net_conf_t:s0
/etc/h.*\t--\tsystem_u:object_r:later_regex_t:s0
/etc/dir(/.*)?\t-d\tsystem_u:object_r:dir_t:s0
/etc/dir(/.*)?\t--\tsystem_u:object_r:dirfile_t:s0
/tmp/.*\t<<none>>
/root(/.*)?\tsystem_u:object_r:root_t:s0
/etc/weird\\.exact\tsystem_u:object_r:escaped_exact_t:s0
";

    #[test]
    fn precedence_cases() {
        let f = fc(BASE, None, None, None);
        let reg = Some(FileKind::Regular);
        let dir = Some(FileKind::Directory);
        // (case, path, kind, expected context type)
        let cases: &[(&str, &str, Option<FileKind>, Option<&str>)] = &[
            ("fallback", "/srv/x", reg, Some("default_t")),
            (
                "later regex beats earlier regex",
                "/etc/passwd",
                reg,
                Some("etc_t"),
            ),
            (
                "exact beats a later regex",
                "/etc/hosts",
                reg,
                Some("net_conf_t"),
            ),
            ("exact needs its type", "/etc/hosts", dir, Some("etc_t")),
            (
                "regex after exact wins for others",
                "/etc/hostname",
                reg,
                Some("later_regex_t"),
            ),
            ("type field -d", "/etc/dir/sub", dir, Some("dir_t")),
            ("type field --", "/etc/dir/file", reg, Some("dirfile_t")),
            (
                "unknown type: last spec of any type",
                "/etc/dir/x",
                None,
                Some("dirfile_t"),
            ),
            ("<<none>>", "/tmp/x", reg, None),
            (
                "escape keeps it exact",
                "/etc/weird.exact",
                reg,
                Some("escaped_exact_t"),
            ),
            (
                "double slashes collapse",
                "//etc//hosts",
                reg,
                Some("net_conf_t"),
            ),
            ("trailing slash dropped", "/root/", dir, Some("root_t")),
            ("root itself", "/", dir, Some("default_t")),
        ];
        for (name, path, kind, want) in cases {
            let got = label(&f, path, *kind).map(|c| c.split(':').nth(2).unwrap_or(""));
            assert_eq!(got, *want, "case {name}: {path}");
        }
    }

    #[test]
    fn local_and_substitution_cases() {
        let local = "/etc/hosts\t--\tsystem_u:object_r:local_hosts_t:s0\n/srv/www(/.*)?\tsystem_u:object_r:www_t:s0\n";
        let subs_dist = "/var/roothome /root\n/lib /usr/lib\n";
        let subs = "# local aliases\n/web /srv/www\n/var/home /home\n/opt/root /var/roothome\n";
        let base = format!("{BASE}/home/[^/]+/\\.ssh(/.*)?\tunconfined_u:object_r:ssh_home_t:s0\n/usr/lib(/.*)?\tsystem_u:object_r:lib_t:s0\n");
        let f = fc(&base, Some(local), Some(subs_dist), Some(subs));
        let reg = Some(FileKind::Regular);
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                ".local exact overrides the base exact",
                "/etc/hosts",
                Some("local_hosts_t"),
            ),
            (".local regex", "/srv/www/index.html", Some("www_t")),
            (".subs rule", "/web/index.html", Some("www_t")),
            (
                ".subs /var/home",
                "/var/home/alice/.ssh/authorized_keys",
                Some("ssh_home_t"),
            ),
            (".subs_dist rule", "/var/roothome/.ssh", Some("root_t")),
            (
                ".subs then .subs_dist on the result",
                "/opt/root/x",
                Some("root_t"),
            ),
            ("a rule ends at a /", "/library/x", Some("default_t")),
            (".subs_dist /lib", "/lib/x", Some("lib_t")),
        ];
        for (name, path, want) in cases {
            let got = label(&f, path, reg).map(|c| c.split(':').nth(2).unwrap_or(""));
            assert_eq!(got, *want, "case {name}: {path}");
        }
    }

    #[test]
    fn subs_parse_cases() {
        let cases: &[(&str, &str, Vec<(&str, &str)>)] = &[
            (
                "two rules, last first",
                "/a /b\n/c /d\n",
                vec![("/c", "/d"), ("/a", "/b")],
            ),
            (
                "comment and blank",
                "# x\n\n  /a\t/b  extra\n",
                vec![("/a", "/b")],
            ),
            ("one field skipped", "/a\n", vec![]),
            ("no final newline", "/a /b", vec![("/a", "/b")]),
            ("NUL ends the line", "/a\0 /b\n", vec![]),
        ];
        for (name, text, want) in cases {
            let got: Vec<(String, String)> = parse_subs(text.as_bytes())
                .into_iter()
                .map(|s| {
                    (
                        String::from_utf8(s.src).unwrap(),
                        String::from_utf8(s.dst).unwrap(),
                    )
                })
                .collect();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(got, want, "case {name}");
        }
        let long = format!("/{} /x\n/a /b\n", "s".repeat(2000));
        assert_eq!(
            parse_subs(long.as_bytes()).len(),
            2,
            "an overlong line is read in pieces"
        );
    }

    #[test]
    fn parse_error_cases() {
        let cases: &[(&str, &str, u32)] = &[
            ("one field", "/a\n", 1),
            ("bad type", "/.* system_u:object_r:a_t:s0\n/a -x ctx\n", 2),
            ("non-ASCII", "/caf\u{e9} ctx\n", 1),
        ];
        for (name, text, line) in cases {
            let got = FileContexts::new(Sources {
                base: text.as_bytes(),
                ..Sources::default()
            });
            assert_eq!(got.err().map(|e| e.line), Some(*line), "case {name}");
        }
        let ok = FileContexts::new(Sources {
            base: b"/a ctx extra fields ignored? no: type\n",
            ..Sources::default()
        });
        assert!(ok.is_err(), "three fields: the middle one is the type");
        let ok = FileContexts::new(Sources {
            base: b"  # indented comment\n\r\n/a\t--\tctx trailing ignored\n",
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(
            ok.specs().len(),
            1,
            "comments, CRLF blanks, fourth field ignored"
        );
    }

    #[test]
    fn bad_regex_fails_only_lookups_that_reach_it() {
        let f = fc(
            "/.* a:b:default_t:s0\n/opt/(?=x).* a:b:weird_t:s0\n/etc/.* a:b:etc_t:s0\n",
            None,
            None,
            None,
        );
        assert_eq!(
            label(&f, "/etc/x", None),
            Some("a:b:etc_t:s0"),
            "decided before the bad spec"
        );
        assert!(
            matches!(
                f.lookup(b"/opt/x", None),
                Err(LookupError::Regex { line: 2, .. })
            ),
            "reaches the bad spec"
        );
        assert_eq!(
            label(&f, "/srv/x", None),
            Some("a:b:default_t:s0"),
            "stem skips it"
        );
    }

    #[test]
    fn literal_prefix_cases() {
        let cases: &[(&str, &str)] = &[
            ("/etc/hosts", "/etc/hosts"),
            ("/etc/hosts\\.deny", "/etc/hosts"),
            ("/etc(/.*)?", "/etc"),
            ("/etc/ab*", "/etc/a"),
            ("/etc/ab?", "/etc/a"),
            ("/etc/ab{2}", "/etc/a"),
            ("/etc/ab+", "/etc/ab"),
            ("/.*", "/"),
            ("/srv/a|/srv/b", ""),
            ("/srv/(a|b)", "/srv/"),
            ("/x[|]", "/x"),
            ("/x[]|]", "/x"),
            ("/x[[:alpha:]|]", ""),
            ("/x\\|y", "/x"),
            ("/a)|b", ""),
        ];
        for (re, want) in cases {
            let n = literal_prefix(re.as_bytes());
            assert_eq!(&re[..n], *want, "case {re}");
        }
    }

    /// Every prefix read from the text is one the compiled program also requires, over
    /// Debian's whole policy and the matcher's test patterns.
    #[test]
    fn literal_prefix_agrees_with_the_compiled_program() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/selinux/debian/etc/selinux/default/contexts/files"
        );
        let mut text = std::fs::read(format!("{dir}/file_contexts")).unwrap();
        text.extend(std::fs::read(format!("{dir}/file_contexts.homedirs")).unwrap());
        let f = FileContexts::new(Sources {
            base: &text,
            ..Sources::default()
        })
        .unwrap();
        let mut checked = 0;
        for spec in f.specs() {
            let p = Program::new(spec.regex.as_bytes()).unwrap();
            assert!(
                p.prefix().starts_with(spec.prefix()),
                "{}: {:?} vs {:?}",
                spec.regex,
                spec.prefix(),
                p.prefix()
            );
            checked += 1;
        }
        assert!(checked > 5000);
    }

    #[test]
    fn stems() {
        let cases: &[(&str, Option<usize>)] = &[
            ("/etc/hosts", Some(4)),
            ("/etc(/.*)?", None),
            ("/.*", None),
            ("/usr/lib(64)?/x", Some(4)),
            ("/a\\.b/c", None),
            ("/a", None),
        ];
        for (re, want) in cases {
            assert_eq!(spec_stem(re.as_bytes()), *want, "case {re}");
        }
    }
}
