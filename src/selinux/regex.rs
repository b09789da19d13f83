//! The regular expressions of SELinux `file_contexts`: a small matcher with PCRE2's meaning
//! for the subset real policies use.
//!
//! Owns the pattern syntax (parse), its compilation to a Thompson NFA and a search over a
//! path's bytes. libselinux compiles each spec as `^` + regex + `$` with `PCRE2_DOTALL` and no
//! other option (`regex.c`, `regex_prepare_data`; `label_file.h`, `compile_regex`) and asks
//! only "does it match" (`pcre2_match`, no captures). So this answers only that, with PCRE2's
//! rules where they differ from POSIX or from the `regex` crate: `.` matches any byte
//! (newline too), `$` also matches before a final newline, a `{` that does not start a
//! valid `{n}`/`{n,}`/`{n,m}` is a literal, `[^/]` matches newline, and a top-level `|`
//! splits the anchors (`^a|b$` is "starts with a, or ends with b"). Bytes, not characters:
//! PCRE2 without `PCRE2_UTF`.
//!
//! Supported (what Debian's refpolicy 2:2.20221101 and Fedora's selinux-policy `.fc` files
//! use, and a little more): literals, `.`, `[...]` and `[^...]` with ranges, `(...)`,
//! `(?:...)`, `|`, `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` (n, m ≤ 255), lazy `*?` `+?` `??`
//! `{..}?` (the same answer as greedy for a yes/no match), `^`, `$`, `\` before punctuation,
//! `\d \D \s \S \w \W`, `\n \t \r \f \e \a`. Not supported, reported as
//! [`Error::Unsupported`]: backreferences, lookaround and other `(?` groups, possessive
//! quantifiers, POSIX classes `[[:alpha:]]`, `\b`-style assertions, `\x`, `\Q..\E`, octal.
//! Malformed patterns (unbalanced parentheses, nothing to repeat, `{3,2}`, an unterminated
//! class) are [`Error::Invalid`], as PCRE2 rejects them too.
//!
//! Bounds: a pattern is at most [`MAX_PATTERN`] bytes, nests at most [`MAX_DEPTH`] groups,
//! compiles to at most [`MAX_PROGRAM`] instructions; a match runs in
//! O(path length × program length) (no backtracking) and stops when its fuel (a step count
//! the caller gives) runs out, so no file_contexts can make a lookup slow or large.
//!
//! Panic contract: no function here panics on any pattern or path (no indexing, checked
//! arithmetic); [`Program::is_match`] does not allocate.
#![deny(clippy::arithmetic_side_effects)]

/// Longest pattern compiled (libselinux has no limit; PATH_MAX is 4096).
pub const MAX_PATTERN: usize = 4096;
/// Most instructions one pattern may compile to (counted repetition copies its body).
pub const MAX_PROGRAM: usize = 8192;
/// Deepest group nesting.
pub const MAX_DEPTH: u32 = 32;
/// Largest count in `{n,m}` (PCRE2 allows 65535; no policy uses more than single digits).
pub const MAX_REPEAT: u32 = 255;
/// PCRE2's limit (`MAX_REPEAT_COUNT`): a larger count is an error there.
const PCRE2_MAX_REPEAT: u32 = 65535;

/// Why a pattern is not compiled. `offset` is a byte offset in the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// PCRE2 would reject it as well.
    Invalid { offset: usize, what: &'static str },
    /// PCRE2 accepts it, this matcher does not.
    Unsupported { offset: usize, what: &'static str },
    /// Longer, deeper or larger than the bounds above.
    TooComplex { what: &'static str },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Invalid { offset, what } => write!(f, "invalid regex at byte {offset}: {what}"),
            Error::Unsupported { offset, what } => {
                write!(f, "unsupported regex construct at byte {offset}: {what}")
            }
            Error::TooComplex { what } => write!(f, "regex too complex: {what}"),
        }
    }
}

/// The match ran out of fuel before it had an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfFuel;

/// A set of bytes, one bit each.
type ByteSet = [u64; 4];

fn set_add(set: &mut ByteSet, b: u8) {
    if let Some(word) = set.get_mut(usize::from(b >> 6)) {
        *word |= 1u64 << (b & 63);
    }
}

fn set_has(set: &ByteSet, b: u8) -> bool {
    set.get(usize::from(b >> 6))
        .is_some_and(|w| w & (1u64 << (b & 63)) != 0)
}

fn set_range(set: &mut ByteSet, lo: u8, hi: u8) {
    for b in lo..=hi {
        set_add(set, b);
    }
}

fn set_union(set: &mut ByteSet, other: &ByteSet) {
    for (w, o) in set.iter_mut().zip(other) {
        *w |= o;
    }
}

fn set_invert(set: &mut ByteSet) {
    for w in set.iter_mut() {
        *w = !*w;
    }
}

/// `\d`, `\s`, `\w` and their complements (PCRE2, no UCP: ASCII only; `\s` includes VT).
fn escape_class(c: u8) -> Option<ByteSet> {
    let mut set = [0u64; 4];
    match c.to_ascii_lowercase() {
        b'd' => set_range(&mut set, b'0', b'9'),
        b's' => {
            for b in [b' ', b'\t', b'\n', 0x0b, 0x0c, b'\r'] {
                set_add(&mut set, b);
            }
        }
        b'w' => {
            set_range(&mut set, b'0', b'9');
            set_range(&mut set, b'a', b'z');
            set_range(&mut set, b'A', b'Z');
            set_add(&mut set, b'_');
        }
        _ => return None,
    }
    if c.is_ascii_uppercase() {
        set_invert(&mut set);
    }
    Some(set)
}

/// `\n`-style escapes that stand for one byte.
fn escape_byte(c: u8) -> Option<u8> {
    Some(match c {
        b'n' => b'\n',
        b't' => b'\t',
        b'r' => b'\r',
        b'f' => 0x0c,
        b'e' => 0x1b,
        b'a' => 0x07,
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Empty,
    Byte(u8),
    Set(Box<ByteSet>),
    Any,
    Bol,
    Eol,
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    Rep(Box<Node>, u32, Option<u32>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.i.checked_add(ahead)?).copied()
    }
    fn bump(&mut self) {
        self.i = self.i.saturating_add(1);
    }
    fn invalid(&self, what: &'static str) -> Error {
        Error::Invalid {
            offset: self.i,
            what,
        }
    }
    fn unsupported(&self, what: &'static str) -> Error {
        Error::Unsupported {
            offset: self.i,
            what,
        }
    }

    /// alternation := concat ('|' concat)*
    fn alternation(&mut self) -> Result<Node, Error> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some(b'|') {
            self.bump();
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    /// concat := (atom quantifier?)*, up to '|', ')' or the end.
    fn concat(&mut self) -> Result<Node, Error> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantified(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Cat(items),
        })
    }

    fn atom(&mut self) -> Result<Node, Error> {
        let Some(c) = self.peek() else {
            return Err(self.invalid("unexpected end"));
        };
        match c {
            b'(' => {
                self.bump();
                if self.peek() == Some(b'?') {
                    if self.peek_at(1) == Some(b':') {
                        self.i = self.i.saturating_add(2);
                    } else {
                        return Err(self.unsupported("(? group"));
                    }
                }
                self.depth = self.depth.saturating_add(1);
                if self.depth > MAX_DEPTH {
                    return Err(Error::TooComplex {
                        what: "groups nested too deep",
                    });
                }
                let inner = self.alternation()?;
                self.depth = self.depth.saturating_sub(1);
                if self.peek() != Some(b')') {
                    return Err(self.invalid("missing )"));
                }
                self.bump();
                Ok(inner)
            }
            b'*' | b'+' | b'?' => Err(self.invalid("quantifier does not follow a repeatable item")),
            b'{' if self.brace().is_some() => {
                Err(self.invalid("quantifier does not follow a repeatable item"))
            }
            b'.' => {
                self.bump();
                Ok(Node::Any)
            }
            b'^' => {
                self.bump();
                Ok(Node::Bol)
            }
            b'$' => {
                self.bump();
                Ok(Node::Eol)
            }
            b'[' => self.class(),
            b'\\' => {
                self.bump();
                let Some(e) = self.peek() else {
                    return Err(self.invalid("\\ at end of pattern"));
                };
                self.bump();
                if let Some(set) = escape_class(e) {
                    Ok(Node::Set(Box::new(set)))
                } else if let Some(b) = escape_byte(e) {
                    Ok(Node::Byte(b))
                } else if e.is_ascii_alphanumeric() {
                    self.i = self.i.saturating_sub(1);
                    Err(self.unsupported("escape sequence"))
                } else {
                    Ok(Node::Byte(e))
                }
            }
            _ => {
                self.bump();
                Ok(Node::Byte(c))
            }
        }
    }

    /// A `{n}`, `{n,}` or `{n,m}` at the cursor: (min, max, length in bytes). Anything else
    /// (PCRE2 10.42: `{,m}` too) is not a quantifier, and its `{` is a literal.
    fn brace(&self) -> Option<(u32, Option<u32>, usize)> {
        let rest = self.s.get(self.i..)?;
        let body = rest.strip_prefix(b"{")?;
        let close = body.iter().position(|b| *b == b'}')?;
        let inner = body.get(..close)?;
        // PCRE2 reads the value, not the digits: `{0000001}` is `{1}`; past 65535 it is an
        // error, which `quantified` reports (saturating keeps the value past that).
        let number = |digits: &[u8]| -> Option<u32> {
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(digits.iter().fold(0u32, |n, d| {
                n.saturating_mul(10)
                    .saturating_add(u32::from(d.saturating_sub(b'0')))
            }))
        };
        let (min, max) = match inner.iter().position(|b| *b == b',') {
            None => {
                let n = number(inner)?;
                (n, Some(n))
            }
            Some(comma) => {
                let min = number(inner.get(..comma)?)?;
                let tail = inner.get(comma.checked_add(1)?..)?;
                (
                    min,
                    if tail.is_empty() {
                        None
                    } else {
                        Some(number(tail)?)
                    },
                )
            }
        };
        Some((min, max, close.checked_add(2)?))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, Error> {
        let (min, max) = match self.peek() {
            Some(b'*') => {
                self.bump();
                (0, None)
            }
            Some(b'+') => {
                self.bump();
                (1, None)
            }
            Some(b'?') => {
                self.bump();
                (0, Some(1))
            }
            Some(b'{') => match self.brace() {
                Some((min, max, len)) => {
                    if min > PCRE2_MAX_REPEAT || max.is_some_and(|m| m > PCRE2_MAX_REPEAT) {
                        return Err(self.invalid("number too big in {} quantifier"));
                    }
                    if max.is_some_and(|m| m < min) {
                        return Err(self.invalid("numbers out of order in {} quantifier"));
                    }
                    if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
                        return Err(self.unsupported("repeat count above 255"));
                    }
                    self.i = self.i.saturating_add(len);
                    (min, max)
                }
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        if matches!(atom, Node::Bol | Node::Eol) {
            // PCRE2 refuses `^*` (a pattern starting with `*`, once anchored) the same way.
            return Err(self.invalid("quantifier does not follow a repeatable item"));
        }
        match self.peek() {
            // Lazy: the same yes/no answer as greedy.
            Some(b'?') => self.bump(),
            Some(b'+') => return Err(self.unsupported("possessive quantifier")),
            _ => {}
        }
        if matches!(self.peek(), Some(b'*' | b'+' | b'?'))
            || (self.peek() == Some(b'{') && self.brace().is_some())
        {
            return Err(self.invalid("quantifier does not follow a repeatable item"));
        }
        Ok(Node::Rep(Box::new(atom), min, max))
    }

    /// One class item: a byte, or a set for `\d`-style escapes.
    fn class_item(&mut self) -> Result<Result<u8, ByteSet>, Error> {
        let Some(c) = self.peek() else {
            return Err(self.invalid("missing terminating ] for character class"));
        };
        if c == b'[' && matches!(self.peek_at(1), Some(b':' | b'.' | b'=')) {
            return Err(self.unsupported("POSIX class"));
        }
        self.bump();
        if c != b'\\' {
            return Ok(Ok(c));
        }
        let Some(e) = self.peek() else {
            return Err(self.invalid("\\ at end of pattern"));
        };
        self.bump();
        if let Some(set) = escape_class(e) {
            return Ok(Err(set));
        }
        if e == b'b' {
            return Ok(Ok(0x08));
        }
        if let Some(b) = escape_byte(e) {
            return Ok(Ok(b));
        }
        if e.is_ascii_alphanumeric() {
            self.i = self.i.saturating_sub(1);
            return Err(self.unsupported("escape sequence in class"));
        }
        Ok(Ok(e))
    }

    fn class(&mut self) -> Result<Node, Error> {
        self.bump(); // '['
        let mut set = [0u64; 4];
        let negate = self.peek() == Some(b'^');
        if negate {
            self.bump();
        }
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(self.invalid("missing terminating ] for character class")),
                Some(b']') if !first => {
                    self.bump();
                    break;
                }
                _ => {}
            }
            first = false;
            match self.class_item()? {
                Err(s) => set_union(&mut set, &s),
                Ok(lo) => {
                    if self.peek() == Some(b'-') && !matches!(self.peek_at(1), Some(b']') | None) {
                        self.bump();
                        match self.class_item()? {
                            Ok(hi) if hi >= lo => set_range(&mut set, lo, hi),
                            Ok(_) => return Err(self.invalid("range out of order in class")),
                            Err(_) => return Err(self.invalid("invalid range in class")),
                        }
                    } else {
                        set_add(&mut set, lo);
                    }
                }
            }
        }
        if negate {
            set_invert(&mut set);
        }
        Ok(Node::Set(Box::new(set)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    Byte(u8),
    Class(u32),
    Any,
    Split(u32, u32),
    Jmp(u32),
    Bol,
    Eol,
    Match,
}

/// A compiled pattern, anchored as libselinux anchors it (`^` + pattern + `$`).
#[derive(Debug, Clone)]
pub struct Program {
    insts: Vec<Inst>,
    classes: Vec<ByteSet>,
    /// Bytes every match starts with (when `anchored`): a cheap reject.
    prefix: Vec<u8>,
    /// Every path from the start passes `^` first: try position 0 only.
    anchored: bool,
}

struct Compiler {
    insts: Vec<Inst>,
    classes: Vec<ByteSet>,
    /// Calls to `emit`: bounds the work even for nodes that emit nothing (`(){255}`).
    steps: usize,
}

impl Compiler {
    fn pc(&self) -> Result<u32, Error> {
        u32::try_from(self.insts.len()).map_err(|_| Error::TooComplex { what: "program" })
    }

    fn push(&mut self, inst: Inst) -> Result<u32, Error> {
        let pc = self.pc()?;
        if self.insts.len() >= MAX_PROGRAM {
            return Err(Error::TooComplex {
                what: "program too large",
            });
        }
        self.insts.push(inst);
        Ok(pc)
    }

    fn patch(&mut self, at: u32, inst: Inst) {
        if let Some(slot) = usize::try_from(at).ok().and_then(|i| self.insts.get_mut(i)) {
            *slot = inst;
        }
    }

    fn emit(&mut self, node: &Node) -> Result<(), Error> {
        self.steps = self.steps.saturating_add(1);
        if self.steps > MAX_PROGRAM.saturating_mul(4) {
            return Err(Error::TooComplex {
                what: "program too large",
            });
        }
        match node {
            Node::Empty => {}
            Node::Byte(b) => {
                self.push(Inst::Byte(*b))?;
            }
            Node::Any => {
                self.push(Inst::Any)?;
            }
            Node::Bol => {
                self.push(Inst::Bol)?;
            }
            Node::Eol => {
                self.push(Inst::Eol)?;
            }
            Node::Set(set) => {
                let idx = match self.classes.iter().position(|c| c == set.as_ref()) {
                    Some(i) => i,
                    None => {
                        self.classes.push(**set);
                        self.classes.len().saturating_sub(1)
                    }
                };
                let idx = u32::try_from(idx).map_err(|_| Error::TooComplex { what: "classes" })?;
                self.push(Inst::Class(idx))?;
            }
            Node::Cat(items) => {
                for item in items {
                    self.emit(item)?;
                }
            }
            Node::Alt(branches) => {
                // split L1, next; L1: a; jmp end; next: split L2, next2; ... last: z; end:
                let mut jumps = Vec::new();
                let count = branches.len();
                for (n, branch) in branches.iter().enumerate() {
                    if n.saturating_add(1) < count {
                        let split = self.push(Inst::Split(0, 0))?;
                        let body = self.pc()?;
                        self.emit(branch)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.pc()?;
                        self.patch(split, Inst::Split(body, next));
                    } else {
                        self.emit(branch)?;
                    }
                }
                let end = self.pc()?;
                for j in jumps {
                    self.patch(j, Inst::Jmp(end));
                }
            }
            Node::Rep(body, min, max) => {
                for _ in 0..*min {
                    self.emit(body)?;
                }
                match max {
                    None => {
                        // L: split B, E; B: body; jmp L; E:
                        let split = self.push(Inst::Split(0, 0))?;
                        let b = self.pc()?;
                        self.emit(body)?;
                        self.push(Inst::Jmp(split))?;
                        let e = self.pc()?;
                        self.patch(split, Inst::Split(b, e));
                    }
                    Some(max) => {
                        // (body (body (...)?)?)?: each optional copy may skip to the end.
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            let split = self.push(Inst::Split(0, 0))?;
                            splits.push(split);
                            self.emit(body)?;
                        }
                        let e = self.pc()?;
                        for split in splits {
                            self.patch(split, Inst::Split(split.saturating_add(1), e));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Program {
    /// Compiles `pattern` as libselinux does: `^` + pattern + `$`, PCRE2_DOTALL.
    pub fn new(pattern: &[u8]) -> Result<Program, Error> {
        if pattern.len() > MAX_PATTERN {
            return Err(Error::TooComplex {
                what: "pattern longer than 4096 bytes",
            });
        }
        let mut anchored = Vec::with_capacity(pattern.len().saturating_add(2));
        anchored.push(b'^');
        anchored.extend_from_slice(pattern);
        anchored.push(b'$');
        let mut p = Parser {
            s: &anchored,
            i: 0,
            depth: 0,
        };
        let node = p.alternation()?;
        if p.i < anchored.len() {
            // Only an unmatched ')' stops the top-level alternation early.
            return Err(Error::Invalid {
                offset: p.i.saturating_sub(1),
                what: "unmatched closing parenthesis",
            });
        }
        let mut c = Compiler {
            insts: Vec::new(),
            classes: Vec::new(),
            steps: 0,
        };
        c.emit(&node)?;
        c.push(Inst::Match)?;
        let anchored = c.insts.first() == Some(&Inst::Bol);
        let mut prefix = Vec::new();
        if anchored {
            for inst in c.insts.iter().skip(1) {
                match inst {
                    Inst::Byte(b) => prefix.push(*b),
                    _ => break,
                }
            }
        }
        Ok(Program {
            insts: c.insts,
            classes: c.classes,
            prefix,
            anchored,
        })
    }

    /// Number of instructions (what [`Threads::new`] must be sized for).
    pub fn len(&self) -> usize {
        self.insts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }

    /// The literal bytes every match begins with (empty when the pattern is not anchored
    /// or starts with something else).
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn inst(&self, pc: u32) -> Option<Inst> {
        self.insts.get(usize::try_from(pc).ok()?).copied()
    }

    /// Does the pattern match `key`? `threads` must have been made for at least
    /// [`Program::len`] instructions (otherwise: `Ok(false)`); every thread step costs one unit
    /// of `fuel`, and `Err(OutOfFuel)` is returned when it runs out. Does not allocate.
    #[cfg_attr(feature = "nopanic", no_panic::no_panic)]
    pub fn is_match(
        &self,
        key: &[u8],
        threads: &mut Threads,
        fuel: &mut u64,
    ) -> Result<bool, OutOfFuel> {
        if threads.size < self.insts.len() {
            return Ok(false);
        }
        if self.anchored && !key.starts_with(&self.prefix) {
            return Ok(false);
        }
        let Threads {
            current,
            next,
            stack,
            ..
        } = threads;
        current.clear();
        if self.add(current, stack, 0, key, 0, fuel)? {
            return Ok(true);
        }
        for (pos, byte) in key.iter().enumerate() {
            let after = pos.saturating_add(1);
            next.clear();
            for i in 0..current.len {
                let Some(pc) = current.dense.get(i).copied() else {
                    break;
                };
                spend(fuel)?;
                let advance = match self.inst(pc) {
                    Some(Inst::Byte(b)) => b == *byte,
                    Some(Inst::Any) => true,
                    Some(Inst::Class(c)) => usize::try_from(c)
                        .ok()
                        .and_then(|c| self.classes.get(c))
                        .is_some_and(|set| set_has(set, *byte)),
                    _ => false,
                };
                if advance && self.add(next, stack, pc.saturating_add(1), key, after, fuel)? {
                    return Ok(true);
                }
            }
            if !self.anchored && self.add(next, stack, 0, key, after, fuel)? {
                return Ok(true);
            }
            std::mem::swap(current, next);
            if current.len == 0 && self.anchored {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// Adds `pc` and everything reachable from it without consuming a byte (at `pos`) to
    /// `list`; true when that reaches `Match`.
    fn add(
        &self,
        list: &mut SparseSet,
        stack: &mut [u32],
        pc: u32,
        key: &[u8],
        pos: usize,
        fuel: &mut u64,
    ) -> Result<bool, OutOfFuel> {
        let mut top = 0usize;
        let push = |stack: &mut [u32], top: &mut usize, pc: u32| {
            if let Some(slot) = stack.get_mut(*top) {
                *slot = pc;
                *top = top.saturating_add(1);
            }
        };
        push(stack, &mut top, pc);
        while top > 0 {
            top = top.saturating_sub(1);
            let Some(pc) = stack.get(top).copied() else {
                break;
            };
            if !list.insert(pc) {
                continue;
            }
            spend(fuel)?;
            match self.inst(pc) {
                Some(Inst::Match) => return Ok(true),
                Some(Inst::Jmp(t)) => push(stack, &mut top, t),
                Some(Inst::Split(a, b)) => {
                    push(stack, &mut top, b);
                    push(stack, &mut top, a);
                }
                Some(Inst::Bol) if pos == 0 => push(stack, &mut top, pc.saturating_add(1)),
                Some(Inst::Eol) => {
                    // PCRE2's `$` without DOLLAR_ENDONLY: the end, or before a final newline.
                    let at_end = pos == key.len()
                        || (pos.saturating_add(1) == key.len() && key.get(pos) == Some(&b'\n'));
                    if at_end {
                        push(stack, &mut top, pc.saturating_add(1));
                    }
                }
                _ => {}
            }
        }
        Ok(false)
    }
}

fn spend(fuel: &mut u64) -> Result<(), OutOfFuel> {
    *fuel = fuel.checked_sub(1).ok_or(OutOfFuel)?;
    Ok(())
}

/// A set of program counters with O(1) insert, test and clear (Briggs & Torczon).
#[derive(Debug, Clone, Default)]
struct SparseSet {
    dense: Vec<u32>,
    sparse: Vec<u32>,
    len: usize,
}

impl SparseSet {
    fn new(size: usize) -> SparseSet {
        SparseSet {
            dense: vec![0; size],
            sparse: vec![0; size],
            len: 0,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Inserts `pc`; false when it was already there (or is out of range).
    fn insert(&mut self, pc: u32) -> bool {
        let Ok(i) = usize::try_from(pc) else {
            return false;
        };
        let Some(at) = self.sparse.get(i).copied() else {
            return false;
        };
        let present = usize::try_from(at)
            .ok()
            .filter(|at| *at < self.len)
            .and_then(|at| self.dense.get(at))
            == Some(&pc);
        if present {
            return false;
        }
        let (Some(slot), Ok(len32)) = (self.dense.get_mut(self.len), u32::try_from(self.len))
        else {
            return false;
        };
        *slot = pc;
        if let Some(s) = self.sparse.get_mut(i) {
            *s = len32;
        }
        self.len = self.len.saturating_add(1);
        true
    }
}

/// Scratch space for [`Program::is_match`], made once for the largest program and reused.
#[derive(Debug, Clone, Default)]
pub struct Threads {
    size: usize,
    current: SparseSet,
    next: SparseSet,
    /// Pending program counters of one closure: each pc is expanded once and pushes at most
    /// two, so 2 × size + 1 is enough.
    stack: Vec<u32>,
}

impl Threads {
    pub fn new(size: usize) -> Threads {
        Threads {
            size,
            current: SparseSet::new(size),
            next: SparseSet::new(size),
            stack: vec![0; size.saturating_mul(2).saturating_add(1)],
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }
}

/// Compiles `pattern` and matches `key` once, with ample fuel: for tests and tools.
pub fn matches(pattern: &[u8], key: &[u8]) -> Result<bool, Error> {
    let p = Program::new(pattern)?;
    let mut t = Threads::new(p.len());
    let mut fuel = u64::MAX;
    Ok(p.is_match(key, &mut t, &mut fuel).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_cases() {
        // (case, pattern, path, matches)
        let cases: &[(&str, &str, &str, bool)] = &[
            ("literal", "/etc/hosts", "/etc/hosts", true),
            (
                "literal is anchored at the end",
                "/etc/hosts",
                "/etc/hosts.deny",
                false,
            ),
            (
                "literal is anchored at the start",
                "/hosts",
                "/etc/hosts",
                false,
            ),
            ("dot is one byte", "/etc/host.", "/etc/hosts", true),
            ("escaped dot", "/etc/hosts\\.deny", "/etc/hostsXdeny", false),
            (
                "escaped dot matches a dot",
                "/etc/hosts\\.deny",
                "/etc/hosts.deny",
                true,
            ),
            (
                "optional subtree, dir itself",
                "/etc/NetworkManager(/.*)?",
                "/etc/NetworkManager",
                true,
            ),
            (
                "optional subtree, below",
                "/etc/NetworkManager(/.*)?",
                "/etc/NetworkManager/a/b",
                true,
            ),
            (
                "optional subtree, sibling",
                "/etc/NetworkManager(/.*)?",
                "/etc/NetworkManagerX",
                false,
            ),
            (
                "negated class",
                "/home/[^/]+/\\.ssh(/.*)?",
                "/home/alice/.ssh/authorized_keys",
                true,
            ),
            (
                "negated class stops at /",
                "/home/[^/]+/\\.ssh(/.*)?",
                "/home/a/b/.ssh",
                false,
            ),
            ("plus needs one", "/home/[^/]+", "/home/", false),
            (
                "alternation in a group",
                "/var/lib/(a|bc)/x",
                "/var/lib/bc/x",
                true,
            ),
            (
                "alternation in a group, no",
                "/var/lib/(a|bc)/x",
                "/var/lib/b/x",
                false,
            ),
            ("nested optional", "/usr/(.*/)?man", "/usr/man", true),
            (
                "nested optional, deep",
                "/usr/(.*/)?man",
                "/usr/share/x/man",
                true,
            ),
            ("class range", "/dev/tty[0-9]+", "/dev/tty12", true),
            ("class range, no", "/dev/tty[0-9]+", "/dev/ttyS1", false),
            ("class with ] first", "/a[]x]", "/a]", true),
            ("class with - last", "/a[x-]", "/a-", true),
            ("escaped plus", "/lost\\+found", "/lost+found", true),
            (
                "escaped minus and underscore",
                "/nm\\-x\\_y",
                "/nm-x_y",
                true,
            ),
            ("counted", "/a{2,3}", "/aa", true),
            ("counted, too few", "/a{2,3}", "/a", false),
            ("counted, too many", "/a{2,3}", "/aaaa", false),
            ("counted open", "/a{2,}", "/aaaaaa", true),
            ("counted exact", "/a{2}", "/aa", true),
            (
                "brace that is not a quantifier",
                "/run/user/%{USERID}",
                "/run/user/%{USERID}",
                true,
            ),
            ("{,m} is a literal in PCRE2 10.42", "/a{,2}", "/a{,2}", true),
            ("leading zeros in a count", "/a{0000001}", "/a", true),
            ("{,} is a literal", "/a{,}", "/a{,}", true),
            ("unclosed { is a literal", "/a{1", "/a{1", true),
            (
                "lazy quantifier, same answer",
                "/var/www/dspam(/.*?)",
                "/var/www/dspam/x",
                true,
            ),
            (
                "lazy quantifier, no",
                "/var/www/dspam(/.*?)",
                "/var/www/dspam",
                false,
            ),
            ("DOTALL: dot matches newline", "/a.b", "/a\nb", true),
            (
                "$ matches before a final newline",
                "/etc/hostname",
                "/etc/hostname\n",
                true,
            ),
            (
                "$ only before the last newline",
                "/etc/hostname",
                "/etc/hostname\n\n",
                false,
            ),
            (
                "top-level | splits the anchors: ^/a",
                "/a|/b",
                "/a/anything",
                true,
            ),
            (
                "top-level | splits the anchors: /b$",
                "/a|/b",
                "/x/y/b",
                true,
            ),
            ("top-level |, neither", "/a|/b", "/x/a", false),
            ("\\d class", "/x\\d+", "/x42", true),
            ("\\w excludes -", "/\\w+", "/a-b", false),
            ("\\s", "/a\\sb", "/a\tb", true),
            ("non-capturing group", "/(?:ab)+", "/abab", true),
            ("empty alternative", "/a(|b)", "/a", true),
            ("star of empty group", "/a()*b", "/ab", true),
            ("nested stars", "/(a*)*b", "/aaaab", true),
            ("nested stars, no", "/(a*)*b", "/aaaac", false),
            ("a final \\ escapes the added $", "/a\\", "/a$", true),
            (
                "non-ASCII bytes are literals",
                "/caf\u{e9}",
                "/caf\u{e9}",
                true,
            ),
            ("quote ? in class", "/[?]", "/?", true),
            ("everything", "/.*", "/", true),
            ("everything, not empty root", "/.*", "", false),
        ];
        for (name, pat, key, want) in cases {
            assert_eq!(
                matches(pat.as_bytes(), key.as_bytes()),
                Ok(*want),
                "case {name}: {pat:?} vs {key:?}"
            );
        }
    }

    #[test]
    fn error_cases() {
        let cases: &[(&str, &str, &str)] = &[
            ("missing )", "/a(b", "invalid"),
            ("unmatched )", "/a)b", "invalid"),
            ("nothing to repeat", "*a", "invalid"),
            ("nothing to repeat after |", "/a|*b", "invalid"),
            ("double quantifier", "/a**", "invalid"),
            ("reversed range", "/[z-a]", "invalid"),
            ("reversed count", "/a{3,2}", "invalid"),
            ("unterminated class", "/a[bc", "invalid"),
            ("backreference", "/(a)\\1", "unsupported"),
            ("lookahead", "/(?=a)", "unsupported"),
            ("possessive", "/a*+", "unsupported"),
            ("POSIX class", "/[[:alpha:]]", "unsupported"),
            ("word boundary", "/a\\b", "unsupported"),
            ("hex escape", "/\\x41", "unsupported"),
            ("huge count", "/a{1000}", "unsupported"),
            ("count past PCRE2's limit", "/a{65536}", "invalid"),
            (
                "count of many digits past the limit",
                "/a{99999999999999999999}",
                "invalid",
            ),
            (
                "too deep",
                &format!("/{}a{}", "(".repeat(40), ")".repeat(40)),
                "complex",
            ),
            ("too long", &"a".repeat(MAX_PATTERN + 1), "complex"),
            (
                "count explosion",
                "/((((a{255}){255}){255}){255})",
                "complex",
            ),
            (
                "empty count explosion",
                "/((((){255}){255}){255}){255}",
                "complex",
            ),
        ];
        for (name, pat, want) in cases {
            let got = Program::new(pat.as_bytes()).map(|_| ());
            let kind = match got {
                Err(Error::Invalid { .. }) => "invalid",
                Err(Error::Unsupported { .. }) => "unsupported",
                Err(Error::TooComplex { .. }) => "complex",
                Ok(()) => "ok",
            };
            assert_eq!(kind, *want, "case {name}: {pat:?} gave {got:?}");
        }
    }

    #[test]
    fn prefix_and_anchoring() {
        let cases: &[(&str, &str, &[u8], bool)] = &[
            ("literal prefix", "/etc/ssh/.*", b"/etc/ssh/", true),
            ("prefix stops at a quantified byte", "/ab*", b"/a", true),
            ("prefix stops at a group", "/etc(/.*)?", b"/etc", true),
            (
                "escaped bytes are in the prefix",
                "/etc/hosts\\.deny",
                b"/etc/hosts.deny",
                true,
            ),
            ("top-level | is not anchored", "/a|/b", b"", false),
        ];
        for (name, pat, prefix, anchored) in cases {
            let p = Program::new(pat.as_bytes()).unwrap();
            assert_eq!(p.prefix(), *prefix, "case {name}");
            assert_eq!(p.anchored, *anchored, "case {name}");
        }
    }

    #[test]
    fn fuel_bounds_the_work() {
        let p = Program::new(b"/(a|a)*(a|a)*(a|a)*b").unwrap();
        let mut t = Threads::new(p.len());
        let mut key = vec![b'/'];
        key.extend([b'a'; 4000]);
        let mut fuel = 1000;
        assert_eq!(
            p.is_match(&key, &mut t, &mut fuel),
            Err(OutOfFuel),
            "runs out"
        );
        let mut fuel = u64::MAX;
        assert_eq!(
            p.is_match(&key, &mut t, &mut fuel),
            Ok(false),
            "no match, finite"
        );
        let small = Threads::new(1);
        assert_eq!(
            p.is_match(b"/b", &mut small.clone(), &mut u64::MAX.clone()),
            Ok(false),
            "threads too small: no match, no panic"
        );
    }
}
