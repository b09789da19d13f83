//! A small, bounded XML reader for Azure's documents (`ovf-env.xml`, the wire server's
//! GoalState): bytes in, a tree of [`Element`]s out, with namespaces resolved.
//!
//! Owns well-formedness as far as these documents need it: elements, attributes (single or
//! double quoted, no duplicates), character data, CDATA sections, comments and processing
//! instructions (skipped), the XML declaration (only UTF-8 or US-ASCII accepted), the five
//! predefined entities and numeric character references, and namespace prefixes resolved
//! to their URIs (`xmlns`, `xmlns:p`, scoped to the element that declares them).
//!
//! Refuses, never expands: a document type declaration (`<!DOCTYPE`, so no internal subset,
//! no entity definitions and no external fetch: billion-laughs and XXE cannot start), any
//! other entity, an undeclared prefix, a character that XML 1.0 forbids. Does not support:
//! encodings other than UTF-8, XML 1.1, attribute-value normalisation beyond entity
//! replacement, validation. Line ends are kept as written (callers trim).
//!
//! Spec: XML 1.0 (Fifth Edition) §2.2 characters, §2.4 character data, §2.8 prolog, §3.1
//! tags, §4.1 character references, §4.6 predefined entities; Namespaces in XML 1.0 §5.
//!
//! Limits: a document is at most [`MAX_BYTES`], at most [`MAX_ELEMENTS`] elements, nested at
//! most [`MAX_DEPTH`] deep, at most [`MAX_ATTRIBUTES`] attributes per element. Past a limit
//! the document is refused ([`XmlErrorKind::Limit`] says which): nothing is silently cut.
//!
//! Panic contract: [`parse`] never panics on any input (no indexing, checked arithmetic);
//! it does not recurse, so depth costs no stack.
#![deny(clippy::arithmetic_side_effects)]

use std::fmt;

/// Largest document (ovf-env.xml with 64 KiB of custom data in base64 is about 90 KB).
pub const MAX_BYTES: usize = 256 * 1024;
/// Most elements in a document.
pub const MAX_ELEMENTS: usize = 4096;
/// Deepest nesting of elements.
pub const MAX_DEPTH: usize = 32;
/// Most attributes on one element (namespace declarations included).
pub const MAX_ATTRIBUTES: usize = 32;

/// The namespace `xml:` is bound to without a declaration (Namespaces in XML §3).
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// One element: its expanded name, attributes, character data and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The namespace URI, `None` when the element is in no namespace.
    pub ns: Option<String>,
    /// The local name (without prefix).
    pub name: String,
    pub attrs: Vec<Attr>,
    /// The element's own character data (CDATA included), concatenated; not its children's.
    pub text: String,
    pub children: Vec<Element>,
}

/// One attribute (namespace declarations are not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

impl Element {
    /// Children named `name` in namespace `ns`.
    pub fn children_named<'a, 'n>(
        &'a self,
        ns: Option<&'n str>,
        name: &'n str,
    ) -> impl Iterator<Item = &'a Element> + use<'a, 'n> {
        self.children
            .iter()
            .filter(move |c| c.name == name && c.ns.as_deref() == ns)
    }

    /// The value of the attribute `name` in no namespace.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }
}

/// Where and why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    /// Byte offset into the document.
    pub offset: usize,
    pub kind: XmlErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlErrorKind {
    /// More than one of the limits allows: which limit, and its value.
    Limit(&'static str, usize),
    NotUtf8,
    /// An encoding other than UTF-8 or US-ASCII declared.
    Encoding(String),
    /// `<!DOCTYPE`: DTDs are refused.
    Dtd,
    /// An entity other than the five predefined ones, or a bad character reference.
    Entity(String),
    /// A prefix with no `xmlns:` declaration in scope.
    UndeclaredPrefix(String),
    /// An end tag that does not match the open element (expected, found).
    Mismatch(String, String),
    DuplicateAttribute(String),
    /// The document ends inside a construct (which).
    Eof(&'static str),
    /// Something else out of place (what).
    Syntax(&'static str),
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match &self.kind {
            XmlErrorKind::Limit(what, n) => write!(f, "byte {at}: more than {n} {what}"),
            XmlErrorKind::NotUtf8 => write!(f, "byte {at}: not UTF-8"),
            XmlErrorKind::Encoding(e) => write!(f, "byte {at}: encoding {e:?} not supported"),
            XmlErrorKind::Dtd => write!(f, "byte {at}: document type declarations are refused"),
            XmlErrorKind::Entity(e) => write!(f, "byte {at}: entity or reference {e:?} refused"),
            XmlErrorKind::UndeclaredPrefix(p) => write!(f, "byte {at}: undeclared prefix {p:?}"),
            XmlErrorKind::Mismatch(want, got) => {
                write!(f, "byte {at}: end tag </{got}> closes <{want}>")
            }
            XmlErrorKind::DuplicateAttribute(a) => write!(f, "byte {at}: attribute {a:?} twice"),
            XmlErrorKind::Eof(inside) => write!(f, "byte {at}: document ends inside {inside}"),
            XmlErrorKind::Syntax(what) => write!(f, "byte {at}: {what}"),
        }
    }
}

impl std::error::Error for XmlError {}

fn err<T>(offset: usize, kind: XmlErrorKind) -> Result<T, XmlError> {
    Err(XmlError { offset, kind })
}

/// A character XML 1.0 allows (§2.2).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '\u{B7}')
}

/// Replaces the predefined entities and character references in `raw` (found at `at`).
fn unescape(raw: &str, at: usize) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    let mut base = at;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp..).unwrap_or_default();
        let here = base.saturating_add(amp);
        let Some(semi) = after.find(';').filter(|s| *s <= 12) else {
            return err(here, XmlErrorKind::Entity(after.chars().take(12).collect()));
        };
        let name = after.get(1..semi).unwrap_or_default();
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                match code.and_then(char::from_u32).filter(|c| is_xml_char(*c)) {
                    Some(c) => c,
                    None => return err(here, XmlErrorKind::Entity(name.to_string())),
                }
            }
        };
        out.push(c);
        let skip = semi.saturating_add(1);
        rest = after.get(skip..).unwrap_or_default();
        base = here.saturating_add(skip);
    }
    out.push_str(rest);
    Ok(out)
}

/// An open element while parsing: the element so far, its qualified name as written, and
/// how many namespace bindings were in scope before it.
struct Open {
    el: Element,
    qname: String,
    bindings: usize,
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// (prefix, URI); the empty prefix is the default namespace.
    bindings: Vec<(String, String)>,
    elements: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.s.len());
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.advance(rest.len().saturating_sub(trimmed.len()));
    }

    /// Skips up to and including `end`; the construct is named for the error.
    fn skip_past(&mut self, end: &str, inside: &'static str) -> Result<&'a str, XmlError> {
        let rest = self.rest();
        match rest.find(end) {
            Some(i) => {
                let body = rest.get(..i).unwrap_or_default();
                self.advance(i.saturating_add(end.len()));
                Ok(body)
            }
            None => err(self.s.len(), XmlErrorKind::Eof(inside)),
        }
    }

    fn name(&mut self) -> Result<&'a str, XmlError> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|(_, c)| !is_name_char(*c))
            .map_or(rest.len(), |(i, _)| i);
        let name = rest.get(..len).unwrap_or_default();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
        {
            return err(self.pos, XmlErrorKind::Syntax("a name was expected"));
        }
        self.advance(len);
        Ok(name)
    }

    /// Resolves a prefix; `None` prefix means the default namespace (elements only).
    fn resolve(&self, prefix: Option<&str>, at: usize) -> Result<Option<String>, XmlError> {
        let p = prefix.unwrap_or("");
        if p == "xml" {
            return Ok(Some(XML_NS.to_string()));
        }
        match self.bindings.iter().rev().find(|(bp, _)| bp == p) {
            Some((_, uri)) if uri.is_empty() => Ok(None),
            Some((_, uri)) => Ok(Some(uri.clone())),
            None if p.is_empty() => Ok(None),
            None => err(at, XmlErrorKind::UndeclaredPrefix(p.to_string())),
        }
    }

    /// A comment, processing instruction or (refused) DTD at the cursor, if any.
    fn misc(&mut self) -> Result<bool, XmlError> {
        let rest = self.rest();
        if rest.starts_with("<!--") {
            self.advance(4);
            self.skip_past("-->", "a comment")?;
        } else if rest.starts_with("<?") {
            let at = self.pos;
            self.advance(2);
            let body = self.skip_past("?>", "a processing instruction")?;
            if body.starts_with("xml ") || body == "xml" {
                check_declaration(body, at)?;
            }
        } else if rest.starts_with("<!DOCTYPE") {
            return err(self.pos, XmlErrorKind::Dtd);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Parses a start tag at the cursor (after `<`); returns the open element and whether
    /// it was empty (`/>`).
    fn start_tag(&mut self, depth: usize) -> Result<(Open, bool), XmlError> {
        let at = self.pos;
        self.elements = self.elements.saturating_add(1);
        if self.elements > MAX_ELEMENTS {
            return err(at, XmlErrorKind::Limit("elements", MAX_ELEMENTS));
        }
        if depth >= MAX_DEPTH {
            return err(at, XmlErrorKind::Limit("levels of nesting", MAX_DEPTH));
        }
        let qname = self.name()?.to_string();
        let bindings = self.bindings.len();
        let mut raw_attrs: Vec<(String, String, usize)> = Vec::new();
        let empty = loop {
            let before = self.pos;
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.advance(2);
                break true;
            }
            if rest.starts_with('>') {
                self.advance(1);
                break false;
            }
            if rest.is_empty() {
                return err(self.pos, XmlErrorKind::Eof("a start tag"));
            }
            if self.pos == before {
                return err(
                    self.pos,
                    XmlErrorKind::Syntax("white space before an attribute"),
                );
            }
            let name_at = self.pos;
            let name = self.name()?.to_string();
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return err(
                    self.pos,
                    XmlErrorKind::Syntax("`=` after an attribute name"),
                );
            }
            self.advance(1);
            self.skip_ws();
            let quote = match self.rest().chars().next() {
                Some(q @ ('"' | '\'')) => q,
                _ => return err(self.pos, XmlErrorKind::Syntax("a quoted attribute value")),
            };
            self.advance(1);
            let value_at = self.pos;
            let raw =
                self.skip_past(if quote == '"' { "\"" } else { "'" }, "an attribute value")?;
            if raw.contains('<') {
                return err(value_at, XmlErrorKind::Syntax("`<` in an attribute value"));
            }
            let value = unescape(raw, value_at)?;
            if raw_attrs.iter().any(|(n, _, _)| *n == name) {
                return err(name_at, XmlErrorKind::DuplicateAttribute(name));
            }
            if raw_attrs.len() >= MAX_ATTRIBUTES {
                return err(
                    name_at,
                    XmlErrorKind::Limit("attributes on one element", MAX_ATTRIBUTES),
                );
            }
            if name == "xmlns" {
                self.bindings.push((String::new(), value.clone()));
            } else if let Some(p) = name.strip_prefix("xmlns:") {
                if value.is_empty() {
                    return err(
                        value_at,
                        XmlErrorKind::Syntax("a prefix bound to no namespace"),
                    );
                }
                self.bindings.push((p.to_string(), value.clone()));
            }
            raw_attrs.push((name, value, name_at));
        };
        let (prefix, local) = split_qname(&qname);
        let ns = self.resolve(prefix, at)?;
        let mut attrs = Vec::new();
        for (name, value, name_at) in raw_attrs {
            if name == "xmlns" || name.starts_with("xmlns:") {
                continue;
            }
            let (p, local) = split_qname(&name);
            let ns = match p {
                Some(_) => self.resolve(p, name_at)?,
                None => None,
            };
            attrs.push(Attr {
                ns,
                name: local.to_string(),
                value,
            });
        }
        let el = Element {
            ns,
            name: local.to_string(),
            attrs,
            ..Element::default()
        };
        Ok((
            Open {
                el,
                qname,
                bindings,
            },
            empty,
        ))
    }
}

fn split_qname(q: &str) -> (Option<&str>, &str) {
    match q.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, q),
    }
}

/// Checks the XML declaration's encoding, if it names one.
fn check_declaration(body: &str, at: usize) -> Result<(), XmlError> {
    let Some(i) = body.find("encoding") else {
        return Ok(());
    };
    let after = body.get(i..).unwrap_or_default();
    let value = after
        .split(['"', '\''])
        .nth(1)
        .unwrap_or_default()
        .to_ascii_lowercase();
    match value.as_str() {
        "utf-8" | "utf8" | "us-ascii" | "ascii" => Ok(()),
        _ => err(at, XmlErrorKind::Encoding(value)),
    }
}

/// Parses a whole document into its root element.
pub fn parse(doc: &[u8]) -> Result<Element, XmlError> {
    if doc.len() > MAX_BYTES {
        return err(MAX_BYTES, XmlErrorKind::Limit("bytes", MAX_BYTES));
    }
    let text = match std::str::from_utf8(doc) {
        Ok(t) => t,
        Err(e) => return err(e.valid_up_to(), XmlErrorKind::NotUtf8),
    };
    if let Some((i, _)) = text
        .char_indices()
        .find(|(_, c)| !is_xml_char(*c) && *c != '\u{FEFF}')
    {
        return err(i, XmlErrorKind::Syntax("a character XML does not allow"));
    }
    let mut p = Parser {
        s: text,
        pos: 0,
        bindings: Vec::new(),
        elements: 0,
    };
    if p.rest().starts_with('\u{FEFF}') {
        p.advance('\u{FEFF}'.len_utf8());
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        if stack.is_empty() {
            p.skip_ws();
            if p.misc()? {
                continue;
            }
            let rest = p.rest();
            if rest.is_empty() {
                return root.ok_or(XmlError {
                    offset: p.pos,
                    kind: XmlErrorKind::Eof("the prolog: no root element"),
                });
            }
            if root.is_some() || !rest.starts_with('<') || rest.starts_with("</") {
                return err(
                    p.pos,
                    XmlErrorKind::Syntax("content outside the root element"),
                );
            }
            p.advance(1);
            let (open, empty) = p.start_tag(0)?;
            if empty {
                p.bindings.truncate(open.bindings);
                root = Some(open.el);
            } else {
                stack.push(open);
            }
            continue;
        }
        let rest = p.rest();
        if rest.is_empty() {
            return err(p.pos, XmlErrorKind::Eof("an element"));
        }
        if rest.starts_with("<![CDATA[") {
            p.advance(9);
            let data = p.skip_past("]]>", "a CDATA section")?;
            if let Some(top) = stack.last_mut() {
                top.el.text.push_str(data);
            }
        } else if rest.starts_with("<!--")
            || rest.starts_with("<?")
            || rest.starts_with("<!DOCTYPE")
        {
            p.misc()?;
        } else if rest.starts_with("<!") {
            return err(p.pos, XmlErrorKind::Dtd);
        } else if rest.starts_with("</") {
            let at = p.pos;
            p.advance(2);
            let name = p.name()?;
            p.skip_ws();
            if !p.rest().starts_with('>') {
                return err(p.pos, XmlErrorKind::Syntax("`>` to end an end tag"));
            }
            p.advance(1);
            let Some(open) = stack.pop() else {
                return err(at, XmlErrorKind::Syntax("an end tag with no open element"));
            };
            if open.qname != name {
                return err(at, XmlErrorKind::Mismatch(open.qname, name.to_string()));
            }
            p.bindings.truncate(open.bindings);
            match stack.last_mut() {
                Some(parent) => parent.el.children.push(open.el),
                None => root = Some(open.el),
            }
        } else if rest.starts_with('<') {
            p.advance(1);
            let (open, empty) = p.start_tag(stack.len())?;
            if empty {
                p.bindings.truncate(open.bindings);
                if let Some(parent) = stack.last_mut() {
                    parent.el.children.push(open.el);
                }
            } else {
                stack.push(open);
            }
        } else {
            let at = p.pos;
            let len = rest.find('<').unwrap_or(rest.len());
            let raw = rest.get(..len).unwrap_or_default();
            if raw.contains("]]>") {
                return err(at, XmlErrorKind::Syntax("`]]>` in character data"));
            }
            let text = unescape(raw, at)?;
            p.advance(len);
            if let Some(top) = stack.last_mut() {
                top.el.text.push_str(&text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let doc = br#"<?xml version="1.0" encoding="utf-8"?>
<!-- a comment -->
<ns0:Environment xmlns:ns0="urn:ovf" xmlns:ns1="urn:wa" xmlns="urn:default">
  <ns1:A x="1" ns1:y='2'>a &lt;&amp;&gt; &#65;&#x42; <![CDATA[<raw>]]></ns1:A>
  <B/><?pi skipped?>
  <C xmlns=""><D/></C>
</ns0:Environment>
"#;
        let root = parse(doc).unwrap();
        assert_eq!(
            (root.ns.as_deref(), root.name.as_str()),
            (Some("urn:ovf"), "Environment"),
            "root"
        );
        let a = root.children_named(Some("urn:wa"), "A").next().unwrap();
        assert_eq!(a.text, "a <&> AB <raw>", "text, entities, CDATA");
        assert_eq!(a.attr("x"), Some("1"), "plain attribute");
        assert_eq!(
            a.attrs[1].ns.as_deref(),
            Some("urn:wa"),
            "prefixed attribute"
        );
        assert_eq!(
            root.children[1].ns.as_deref(),
            Some("urn:default"),
            "default namespace"
        );
        let c = &root.children[2];
        assert_eq!(c.ns, None, "default namespace undeclared");
        assert_eq!(c.children[0].ns, None, "undeclared default inherited");
    }

    #[test]
    fn refused() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        let many = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS));
        let attrs = format!(
            "<r {}/>",
            (0..=MAX_ATTRIBUTES)
                .map(|i| format!("a{i}='1'"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let big = vec![b' '; MAX_BYTES + 1];
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "doctype",
                b"<!DOCTYPE r [<!ENTITY a 'b'>]><r>&a;</r>",
                "document type",
            ),
            ("doctype inside", b"<r><!DOCTYPE x></r>", "document type"),
            ("unknown entity", b"<r>&a;</r>", "entity"),
            ("entity without end", b"<r>&amp</r>", "entity"),
            ("bad char ref", b"<r>&#0;</r>", "entity"),
            ("surrogate ref", b"<r>&#xD800;</r>", "entity"),
            ("undeclared prefix", b"<p:r/>", "undeclared prefix"),
            ("mismatched", b"<r><a></b></r>", "closes"),
            ("duplicate attribute", b"<r a='1' a='2'/>", "twice"),
            ("unclosed", b"<r><a>", "ends inside"),
            ("unclosed comment", b"<r><!-- </r>", "ends inside"),
            ("two roots", b"<r/><r/>", "outside the root"),
            ("text outside", b"x<r/>", "outside the root"),
            ("empty", b"", "no root"),
            ("not utf-8", b"<r>\xff</r>", "not UTF-8"),
            (
                "utf-16 declared",
                b"<?xml version='1.0' encoding='UTF-16'?><r/>",
                "encoding",
            ),
            ("control character", b"<r>\x01</r>", "does not allow"),
            ("< in attribute", b"<r a='<'/>", "attribute value"),
            ("deep", deep.as_bytes(), "levels of nesting"),
            ("many", many.as_bytes(), "elements"),
            ("attributes", attrs.as_bytes(), "attributes on one element"),
            ("too big", &big, "bytes"),
            ("unquoted", b"<r a=1/>", "quoted"),
        ];
        for (case, doc, want) in cases {
            let e = parse(doc).expect_err(case).to_string();
            assert!(e.contains(want), "case {case}: {e:?} does not say {want:?}");
        }
    }
}
