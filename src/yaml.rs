//! The one YAML (and JSON) loader: NoCloud's `meta-data` and `network-config`, cloud-config
//! in the initramfs and in `apply`, all read documents through [`load`] into a [`Node`] tree.
//!
//! Owns the tree type and the bounds on a loaded document: its text at most [`MAX_TEXT`]
//! bytes, its depth at most [`MAX_DEPTH`], and the heap the loaded tree takes at most
//! [`heap_budget`] of its length: every node is weighed by what it really takes (the enum,
//! its string or vector buffer as allocated), and an alias is weighed again at every use, so
//! no document under the size caps (alias bombs included) loads into more than a few MiB past
//! its own size. Built on the event parser of `saphyr-parser`; never resolves tags or types:
//! scalars keep their text and the reader of a field decides what it is. Pure: text in, tree
//! out.

#![deny(clippy::arithmetic_side_effects)]

use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::BTreeMap;

/// Deepest nesting of sequences and mappings the loader accepts. Real network configs stay
/// under 8 levels; the limit keeps recursive walks and drops shallow.
pub const MAX_DEPTH: usize = 32;
/// Longest document the loader reads: the user-data cap (cloud-config is the largest YAML
/// preroot reads; the metadata documents have a 1 MiB cap of their own).
pub const MAX_TEXT: usize = crate::caps::USER_DATA_BYTES;
/// Heap a loaded document may always take, whatever its length.
pub const HEAP_BASE: usize = 4 << 20;
/// Heap a loaded document may take per byte of its text, besides [`HEAP_BASE`]. As weighed
/// here, the fixtures' documents take 2 to 9 bytes per byte (all far under the base), a
/// 9.8 MB cloud-config of `write_files` and `runcmd` 1.0, a 1 MB `runcmd` of short lines 3.6;
/// only a dense list of one-character items could take more without aliases (about 30).
pub const HEAP_PER_BYTE: usize = 4;

/// The most heap a document of `len` bytes may take once loaded:
/// [`HEAP_BASE`] + [`HEAP_PER_BYTE`] × `len`.
pub fn heap_budget(len: usize) -> usize {
    HEAP_BASE.saturating_add(HEAP_PER_BYTE.saturating_mul(len))
}

/// What a heap buffer of `n` bytes takes: rounded to 16, plus 16 of the allocator's own.
fn alloc(n: usize) -> usize {
    match n {
        0 => 0,
        n => n.saturating_add(15).saturating_add(16) & !15,
    }
}

const NODE: usize = std::mem::size_of::<Node>();
const ENTRY: usize = std::mem::size_of::<(String, Node)>();

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `~`, `null`, or an empty value.
    Null,
    Scalar {
        text: String,
        /// Unquoted (plain) scalar: only these can be booleans.
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order; keys are scalars as text.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The value of `key` in a mapping (the last one, if repeated); `None` when absent, null,
    /// or when `self` is not a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .filter(|v| **v != Node::Null),
            _ => None,
        }
    }

    /// The text of a scalar.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Node::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// A collection being loaded, its anchor, and what its children weigh and how high they
/// stand so far.
enum Frame {
    Seq(Vec<Node>, usize, Weight),
    Map(Vec<(String, Node)>, Option<String>, usize, Weight),
}

/// The heap a node takes (its own slot in its parent included) and its height.
#[derive(Debug, Clone, Copy, Default)]
struct Weight {
    bytes: usize,
    height: usize,
}

impl Weight {
    fn add_child(&mut self, child: Weight) {
        self.bytes = self.bytes.saturating_add(child.bytes);
        self.height = self.height.max(child.height.saturating_add(1));
    }
}

/// The loader's running count of the heap it holds (the tree so far, its vectors as
/// allocated, the copies kept for aliases), against [`heap_budget`]: never more at any point.
struct Budget {
    used: usize,
    max: usize,
    /// The document's length, for the message.
    len: usize,
}

/// What pushing one more element of `elem` bytes onto a vector of `len` of `cap` allocates:
/// nothing while there is room, else the growth (`Vec` doubles, from 4).
fn growth(len: usize, cap: usize, elem: usize) -> usize {
    if len < cap {
        return 0;
    }
    let new = cap.saturating_mul(2).max(4);
    alloc(new.saturating_mul(elem)).saturating_sub(alloc(cap.saturating_mul(elem)))
}

impl Budget {
    /// Gives back `bytes` freed (a buffer cut to its length).
    fn refund(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Counts `bytes` more; `alias`: they are an alias's copy (for the message).
    fn charge(&mut self, bytes: usize, alias: bool, at: &dyn Fn() -> String) -> Result<(), String> {
        self.used = self.used.saturating_add(bytes);
        if self.used <= self.max {
            return Ok(());
        }
        let what = if alias {
            "aliases expand the document past"
        } else {
            "the document takes more than"
        };
        Err(format!(
            "{what} {} bytes of memory once loaded ({HEAP_BASE} and {HEAP_PER_BYTE} per byte \
             of its {}) at {}",
            self.max,
            self.len,
            at()
        ))
    }
}

/// A finished collection: its buffer cut to its length (what it grew past that given back;
/// its children and keys were charged as they came, its slots as it grew), with its anchor
/// and weight.
fn end_collection(frame: Frame, budget: &mut Budget) -> (Node, usize, Weight) {
    let (node, anchor, mut weight, len, spare, elem) = match frame {
        Frame::Seq(mut items, anchor, w) => {
            let spare = items.capacity().saturating_sub(items.len());
            items.shrink_to_fit();
            let len = items.len();
            (Node::Seq(items), anchor, w, len, spare, NODE)
        }
        Frame::Map(mut entries, _, anchor, w) => {
            let spare = entries.capacity().saturating_sub(entries.len());
            entries.shrink_to_fit();
            let len = entries.len();
            (Node::Map(entries), anchor, w, len, spare, ENTRY)
        }
    };
    budget.refund(spare.saturating_mul(elem));
    weight.height = weight.height.max(1);
    // A copy's size: its slot, its buffer, its children's heap (their slots are in the
    // buffer).
    weight.bytes = weight
        .bytes
        .saturating_add(NODE)
        .saturating_add(alloc(len.saturating_mul(elem)))
        .saturating_sub(len.saturating_mul(NODE));
    (node, anchor, weight)
}

/// Adds a finished node to the collection being loaded: an item, a mapping's key, or its
/// value; the collection's growth is charged.
fn attach(
    frame: &mut Frame,
    node: Node,
    weight: Weight,
    budget: &mut Budget,
    at: &dyn Fn() -> String,
) -> Result<(), String> {
    match frame {
        Frame::Seq(items, _, w) => {
            budget.charge(growth(items.len(), items.capacity(), NODE), false, at)?;
            w.add_child(weight);
            items.push(node);
        }
        Frame::Map(entries, key, _, w) => match key.take() {
            Some(k) => {
                let more = growth(entries.len(), entries.capacity(), ENTRY);
                budget.charge(more, false, at)?;
                w.add_child(weight);
                entries.push((k, node));
            }
            None => {
                let k = match node {
                    Node::Scalar { text, .. } => text,
                    Node::Null => String::new(),
                    _ => return Err(format!("mapping key is not a scalar at {}", at())),
                };
                // The key's string moves into the entry; its slot does not count.
                w.add_child(Weight {
                    bytes: weight.bytes.saturating_sub(NODE),
                    height: 0,
                });
                *key = Some(k);
            }
        },
    }
    Ok(())
}

/// Loads one YAML (or JSON) document into a [`Node`] tree.
///
/// Walks the parser's events with an explicit stack (no recursion), refuses text longer than
/// [`MAX_TEXT`], nesting deeper than [`MAX_DEPTH`], a tree that takes more than
/// [`heap_budget`] (aliases weighed at every use), NUL bytes, non-scalar mapping keys and
/// multi-document streams. An empty document is [`Node::Null`].
pub fn load(text: &str) -> Result<Node, String> {
    load_weighed(text).map(|(node, _)| node)
}

/// [`load`], and the heap the loaded tree was weighed at (with the copies kept for aliases).
pub fn load_weighed(text: &str) -> Result<(Node, usize), String> {
    if text.len() > MAX_TEXT {
        return Err(format!(
            "document of {} bytes, more than the {MAX_TEXT}-byte limit",
            text.len()
        ));
    }
    if let Some(at) = text.find('\0') {
        return Err(format!("NUL byte at offset {at}"));
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: BTreeMap<usize, (Node, Weight)> = BTreeMap::new();
    let mut budget = Budget {
        used: 0,
        max: heap_budget(text.len()),
        len: text.len(),
    };
    let mut root: Option<Node> = None;
    let mut documents: usize = 0;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| format!("not valid YAML: {e}"))?;
        let at = || {
            format!(
                "line {} column {}",
                span.start.line(),
                span.start.col().saturating_add(1)
            )
        };
        let done: Option<(Node, usize, Weight)> = match event {
            Event::DocumentStart(_) => {
                documents = documents.saturating_add(1);
                if documents > 1 {
                    return Err(format!("more than one YAML document (at {})", at()));
                }
                None
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                let node = if plain && matches!(&*value, "" | "~" | "null" | "Null" | "NULL") {
                    Node::Null
                } else {
                    // The parser hands over its scanning buffer (129 or 258 bytes, or more,
                    // for a scalar of a few): copy the text into its own exact allocation and
                    // let the buffer go whole, to be used again, rather than shrink it in
                    // place and leave a hole beside every scalar.
                    let text = String::from(&*value);
                    drop(value);
                    Node::Scalar { text, plain }
                };
                let heap = match &node {
                    Node::Scalar { text, .. } => alloc(text.capacity()),
                    _ => 0,
                };
                budget.charge(heap, false, &at)?;
                let bytes = NODE.saturating_add(heap);
                Some((node, anchor, Weight { bytes, height: 0 }))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH} levels at {}", at()));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(Vec::new(), anchor, Weight::default())
                } else {
                    Frame::Map(Vec::new(), None, anchor, Weight::default())
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(frame) => Some(end_collection(frame, &mut budget)),
                None => return Err(format!("unbalanced collection end at {}", at())),
            },
            Event::Alias(id) => {
                let Some((node, weight)) = anchors.get(&id) else {
                    return Err(format!("alias to an unknown anchor at {}", at()));
                };
                if stack.len().saturating_add(weight.height) > MAX_DEPTH {
                    return Err(format!(
                        "alias nests deeper than {MAX_DEPTH} levels at {}",
                        at()
                    ));
                }
                budget.charge(weight.bytes.saturating_sub(NODE), true, &at)?;
                Some((node.clone(), 0, *weight))
            }
            _ => None,
        };
        if let Some((node, anchor, weight)) = done {
            if anchor != 0 {
                // The copy kept for later aliases takes its weight once more.
                budget.charge(weight.bytes, true, &at)?;
                anchors.insert(anchor, (node.clone(), weight));
            }
            match stack.last_mut() {
                None => root = Some(node),
                Some(frame) => attach(frame, node, weight, &mut budget, &at)?,
            }
        }
    }
    Ok((root.unwrap_or(Node::Null), budget.used))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// The bombs, each refused once its copies weigh the budget: four levels of
    /// 64-way aliases in 1.3 KB (306 MB before issue 16), the classic billion laughs (136
    /// MB), and one long scalar repeated.
    #[test]
    fn alias_bombs_stop_at_the_heap_budget() {
        let levels = |n: usize, fan: usize, leaf: &str| {
            let mut s = format!("a0: &a0 [{}]\n", vec![leaf; fan].join(", "));
            for i in 1..n {
                let refs = vec![format!("*a{}", i - 1); fan].join(", ");
                s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
            }
            s
        };
        let cases: Vec<(&str, String)> = vec![
            ("four levels of 64-way", levels(4, 64, "x")),
            ("billion laughs", levels(10, 9, "lol")),
            (
                "one long scalar, 200 uses",
                format!(
                    "a: &a {}\nb: [{}]\n",
                    "x".repeat(100_000),
                    vec!["*a"; 200].join(", ")
                ),
            ),
        ];
        for (case, doc) in cases {
            let e = load(&doc).expect_err(case);
            assert!(
                e.starts_with("aliases expand the document past")
                    && e.contains(&format!("{} bytes of memory", heap_budget(doc.len()))),
                "case {case}: {e}"
            );
        }
    }

    #[test]
    fn weights_and_limits() {
        // A sequence of two one-byte scalars: its buffer (cut to two slots), two strings.
        let (node, used) = load_weighed("[a, b]").unwrap();
        assert_eq!(node, Node::Seq(vec![scalar("a"), scalar("b")]));
        assert_eq!(used, alloc(2 * NODE) + 2 * alloc(1), "weight of [a, b]");
        // Every alias's copy counts, and the anchor's kept copy (its slot too).
        let (_, used) = load_weighed("- &x abc\n- *x\n- *x\n").unwrap();
        assert_eq!(
            used,
            3 * alloc(3) + alloc(3 * NODE) + NODE + alloc(3),
            "aliases"
        );
        // Text over the cap, named in bytes.
        let big = "x".repeat(MAX_TEXT + 1);
        assert_eq!(
            load(&big).unwrap_err(),
            "document of 16777217 bytes, more than the 16777216-byte limit"
        );
        // A dense list under the cap but over its heap budget: refused, not loaded.
        let dense = format!("[{}]", vec!["a"; 300_000].join(","));
        let e = load(&dense).unwrap_err();
        assert!(e.starts_with("the document takes more than"), "{e}");
        assert_eq!(
            load("a: [b, {c: d}]\n").map(|n| n.get("a").is_some()),
            Ok(true)
        );
    }

    fn scalar(t: &str) -> Node {
        Node::Scalar {
            text: t.into(),
            plain: true,
        }
    }
}
