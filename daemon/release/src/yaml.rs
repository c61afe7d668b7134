//! A YAML document as a tree of nodes that remember where they came from.
//!
//! serde cannot tell us the line and column of a field that has the wrong type, so the
//! release file and the registry are read in two steps: this module turns the text into
//! [`Node`]s (each with its [`Pos`]), and `de` walks them by hand. convoy's own fields are
//! typed by the YAML 1.2 core schema ([`Node::scalar`]); chart values (the free-form part
//! handed to charts) are typed as Helm types them, YAML 1.1 through JSON
//! ([`Node::to_values_json`]), so `enabled: yes` means in a release file what it means in a
//! values file given to `helm -f`.
//!
//! Hostile input is bounded here: nesting deeper than [`MAX_DEPTH`] and alias expansion
//! beyond [`MAX_NODES`] ("billion laughs") are errors, never a stack overflow or an
//! out-of-memory.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of sequences and mappings accepted. Helm values rarely pass 10.
pub const MAX_DEPTH: usize = 128;
/// Most nodes one document may expand to, counting every alias copy.
pub const MAX_NODES: usize = 1_000_000;

/// A position in a source file, 1-based, as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<&Marker> for Pos {
    fn from(m: &Marker) -> Self {
        // yaml-rust2 reports lines 1-based and columns 0-based.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

/// The shape of a node. Scalars keep their text; typing happens on demand so that a
/// field expecting a string can say "expected a string, found the number 12".
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar {
        text: String,
        /// Plain (unquoted, not a block scalar): only these are typed as null, bool or numbers.
        plain: bool,
        /// `!!str` and friends, as `tag:yaml.org,2002:str`.
        tag: Option<String>,
    },
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique (duplicates are refused while parsing).
    Map(Vec<(Node, Node)>),
}

/// A typed scalar (YAML 1.2 core schema).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64 but fitting u64.
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

/// A chart value Helm's reader would refuse, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub pos: Pos,
    /// The value's path, `spec.values.image.tag`.
    pub path: String,
    pub message: String,
}

/// A syntax error or a limit hit, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// What kind of thing this is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Seq(_) => "a list".into(),
            NodeKind::Map(_) => "a mapping".into(),
            NodeKind::Scalar { .. } => match self.scalar() {
                Some(Scalar::Null) => "nothing (null)".into(),
                Some(Scalar::Bool(b)) => format!("the boolean {b}"),
                Some(Scalar::Int(i)) => format!("the number {i}"),
                Some(Scalar::UInt(i)) => format!("the number {i}"),
                Some(Scalar::Float(_)) => "a number".into(),
                Some(Scalar::Str(_)) | None => "a string".into(),
            },
        }
    }

    /// The typed value of a scalar node; `None` for sequences and mappings.
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        let NodeKind::Scalar { text, plain, tag } = &self.kind else {
            return None;
        };
        let tag = tag.as_deref();
        if tag == Some("tag:yaml.org,2002:str") || !plain && tag.is_none() {
            return Some(Scalar::Str(text));
        }
        Some(resolve_plain(text))
    }

    /// Mapping entries, or `None`.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Sequence items, or `None`.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The key text of a mapping key (any scalar; JSON object keys are strings).
    pub fn key_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Converts to JSON with YAML 1.2 core-schema typing, mapping keys as strings, `<<`
    /// merge keys applied: for convoy's own documents (rendered manifests, secrets files).
    /// Chart values use [`Node::to_values_json`].
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar { .. } => match self.scalar() {
                Some(Scalar::Null) | None => Value::Null,
                Some(Scalar::Bool(b)) => Value::Bool(b),
                Some(Scalar::Int(i)) => Value::from(i),
                Some(Scalar::UInt(u)) => Value::from(u),
                Some(Scalar::Float(f)) => serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    // JSON has no NaN or infinity; keep the text rather than invent a value.
                    .unwrap_or_else(|| Value::String(self.key_text().unwrap_or_default().into())),
                Some(Scalar::Str(s)) => Value::String(s.to_string()),
            },
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut map = serde_json::Map::new();
                // Merge keys first so that explicit keys override them, as YAML 1.1 specifies.
                for (k, v) in entries {
                    if k.key_text() == Some("<<") && k.is_plain() {
                        let sources: Vec<&Node> = match &v.kind {
                            NodeKind::Seq(items) => items.iter().collect(),
                            _ => vec![v],
                        };
                        for src in sources {
                            if let Value::Object(m) = src.to_json() {
                                for (mk, mv) in m {
                                    map.entry(mk).or_insert(mv);
                                }
                            }
                        }
                    }
                }
                for (k, v) in entries {
                    if k.key_text() == Some("<<") && k.is_plain() {
                        continue;
                    }
                    let key = match k.scalar() {
                        Some(Scalar::Null) => "null".to_string(),
                        _ => k.key_text().unwrap_or_default().to_string(),
                    };
                    map.insert(key, v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// Converts chart values to JSON exactly as Helm reads a values file (go-yaml v2, then
    /// JSON): YAML 1.1 scalars (`yes`/`off` are booleans, `0644` is 420), every number a
    /// float, keys as strings (`on:` is the key `"true"`), `<<` merged where it stands.
    /// `path` names this node in errors (`spec.values`).
    ///
    /// Unlike [`Node::to_json`] (convoy's own documents), what Helm refuses is an error
    /// here: `.inf`/`.nan`, a null key, a tag the text does not fit.
    pub fn to_values_json(&self, path: &str) -> Result<serde_json::Value, ValueError> {
        use serde_json::Value;
        let err = |pos: Pos, path: &str, message: String| ValueError {
            pos,
            path: path.to_string(),
            message,
        };
        match &self.kind {
            NodeKind::Scalar { text, plain, tag } => {
                convoy_chart::values::scalar_to_json(text, *plain, tag.as_deref()).map_err(|m| {
                    err(
                        self.pos,
                        path,
                        format!(
                            "{m} (chart values are read as Helm reads them, YAML 1.1 then JSON; \
                             quote the value to pass it as text)"
                        ),
                    )
                })
            }
            NodeKind::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| item.to_values_json(&format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            NodeKind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    if k.is_merge_key() {
                        // As go-yaml v2: the merge overrides keys before `<<`, later keys
                        // override it, and of a list of maps the first wins.
                        let sources: Vec<&Node> = match &v.kind {
                            NodeKind::Seq(items) => items.iter().rev().collect(),
                            _ => vec![v],
                        };
                        for src in sources {
                            match src.to_values_json(path)? {
                                Value::Object(m) => map.extend(m),
                                _ => {
                                    return Err(err(
                                        src.pos,
                                        path,
                                        "`<<` (merge) needs a mapping or a list of mappings".into(),
                                    ));
                                }
                            }
                        }
                        continue;
                    }
                    let NodeKind::Scalar { text, plain, tag } = &k.kind else {
                        return Err(err(k.pos, path, "a mapping key must be a plain value".into()));
                    };
                    let key = convoy_chart::values::key_to_string(text, *plain, tag.as_deref())
                        .map_err(|m| err(k.pos, path, m))?;
                    let value = v.to_values_json(&format!("{path}.{key}"))?;
                    map.insert(key, value);
                }
                Ok(Value::Object(map))
            }
        }
    }

    /// A plain, untagged `<<`.
    fn is_merge_key(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true, tag: None } if text == "<<")
    }

    fn is_plain(&self) -> bool {
        matches!(self.kind, NodeKind::Scalar { plain: true, .. })
    }
}

/// Types a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Scalar<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(v) = i64::from_str_radix(hex, 16) {
                return Scalar::Int(v);
            }
            if let Ok(v) = u64::from_str_radix(hex, 16) {
                return Scalar::UInt(v);
            }
        }
        return Scalar::Str(text);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty()
            && oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
            && let Ok(v) = i64::from_str_radix(oct, 8)
        {
            return Scalar::Int(v);
        }
        return Scalar::Str(text);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = text.parse::<i64>() {
            return Scalar::Int(v);
        }
        if let Ok(v) = digits.parse::<u64>()
            && !text.starts_with('-')
        {
            return Scalar::UInt(v);
        }
        // Too large for any integer type: a float, as YAML parsers in Go do.
        return text.parse::<f64>().map_or(Scalar::Str(text), Scalar::Float);
    }
    if looks_like_float(digits)
        && let Ok(v) = text.parse::<f64>()
    {
        return Scalar::Float(v);
    }
    Scalar::Str(text)
}

/// `[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?` or `\.[0-9]+(...)`; Rust's parser would also take
/// `inf` and `NaN`, which YAML treats as strings.
fn looks_like_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => all_digits(int) && all_digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && all_digits(int),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && all_digits(e)
        }
    };
    mantissa_ok && exp_ok && (frac.is_some() || exp.is_some())
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Parses a stream holding at most one document. `Ok(None)` for an empty stream (only
/// comments or whitespace).
pub fn parse_single(src: &str) -> Result<Option<Node>, SyntaxError> {
    let mut docs = Builder::default().run(src, 2)?;
    if docs.len() > 1 {
        return Err(SyntaxError {
            pos: docs[1].pos,
            message: "expected one YAML document, found a second one (`---`); put one release per file"
                .into(),
        });
    }
    Ok(docs.pop())
}

/// Parses every document of a stream (for rendered manifests); empty documents are dropped.
pub fn parse_all(src: &str) -> Result<Vec<Node>, SyntaxError> {
    Builder::default().run(src, usize::MAX)
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
}

impl Builder {
    fn run(mut self, src: &str, max_docs: usize) -> Result<Vec<Node>, SyntaxError> {
        let mut parser = Parser::new_from_str(src);
        let mut docs = Vec::new();
        let mut in_doc = false;
        loop {
            let (event, mark) = parser.next_token().map_err(|e| SyntaxError {
                pos: Pos::from(e.marker()),
                message: format!("invalid YAML: {}", e.info()),
            })?;
            let pos = Pos::from(&mark);
            let finished: Option<Node> = match event {
                Event::StreamEnd => break,
                Event::StreamStart | Event::Nothing => None,
                Event::DocumentStart => {
                    in_doc = true;
                    self.anchors.clear();
                    None
                }
                Event::DocumentEnd => {
                    in_doc = false;
                    None
                }
                Event::Alias(id) => {
                    let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                        return Err(SyntaxError {
                            pos,
                            message: "alias to an unknown anchor".into(),
                        });
                    };
                    self.count(size, pos)?;
                    let Some((node, _)) = self.anchors.get(&id) else {
                        continue;
                    };
                    let mut copy = node.clone();
                    copy.pos = pos;
                    Some(copy)
                }
                Event::Scalar(text, style, anchor, tag) => {
                    self.count(1, pos)?;
                    let node = Node {
                        pos,
                        kind: NodeKind::Scalar {
                            text,
                            plain: style == TScalarStyle::Plain,
                            tag: tag.map(tag_name),
                        },
                    };
                    self.remember(anchor, &node);
                    Some(node)
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(pos)?;
                    self.stack.push(Frame::Seq {
                        pos,
                        anchor,
                        items: Vec::new(),
                    });
                    None
                }
                Event::MappingStart(anchor, _) => {
                    self.open(pos)?;
                    self.stack.push(Frame::Map {
                        pos,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    });
                    None
                }
                Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => {
                        let node = Node {
                            pos,
                            kind: NodeKind::Seq(items),
                        };
                        self.remember(anchor, &node);
                        Some(node)
                    }
                    Some(Frame::Map {
                        pos, anchor, entries, ..
                    }) => {
                        // A block mapping's start event is marked at its first `:`; its
                        // first key is where a reader looks.
                        let pos = entries.first().map_or(pos, |(k, _)| k.pos.min(pos));
                        let node = Node {
                            pos,
                            kind: NodeKind::Map(entries),
                        };
                        self.remember(anchor, &node);
                        Some(node)
                    }
                    None => {
                        return Err(SyntaxError {
                            pos,
                            message: "invalid YAML: unbalanced end of a collection".into(),
                        });
                    }
                },
            };
            let Some(node) = finished else { continue };
            match self.stack.last_mut() {
                Some(Frame::Seq { items, .. }) => items.push(node),
                Some(Frame::Map { entries, key, .. }) => match key.take() {
                    None => {
                        if !matches!(node.kind, NodeKind::Scalar { .. }) {
                            return Err(SyntaxError {
                                pos: node.pos,
                                message: "a mapping key must be a plain value, not a list or mapping".into(),
                            });
                        }
                        if let Some((first, _)) =
                            entries.iter().find(|(k, _)| k.key_text() == node.key_text())
                        {
                            return Err(SyntaxError {
                                pos: node.pos,
                                message: format!(
                                    "duplicate key `{}` (first defined at {})",
                                    node.key_text().unwrap_or_default(),
                                    first.pos
                                ),
                            });
                        }
                        *key = Some(node);
                    }
                    Some(k) => entries.push((k, node)),
                },
                None => {
                    if !in_doc {
                        return Err(SyntaxError {
                            pos,
                            message: "invalid YAML: content outside a document".into(),
                        });
                    }
                    if docs.len() >= max_docs {
                        break;
                    }
                    let empty =
                        matches!(&node.kind, NodeKind::Scalar { text, plain: true, .. } if text.is_empty());
                    if !empty {
                        docs.push(node);
                    }
                }
            }
        }
        Ok(docs)
    }

    fn open(&mut self, pos: Pos) -> Result<(), SyntaxError> {
        self.count(1, pos)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "document expands to more than {MAX_NODES} nodes (aliases multiply their anchors)"
                ),
            });
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size_of_tree(node)));
        }
    }
}

fn size_of_tree(node: &Node) -> usize {
    let mut total = 0usize;
    let mut todo = vec![node];
    while let Some(n) = todo.pop() {
        total = total.saturating_add(1);
        match &n.kind {
            NodeKind::Scalar { .. } => {}
            NodeKind::Seq(items) => todo.extend(items.iter()),
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    todo.push(k);
                    todo.push(v);
                }
            }
        }
    }
    total
}

fn tag_name(tag: Tag) -> String {
    const CORE: &str = "tag:yaml.org,2002:";
    if tag.handle == "!!" {
        format!("{CORE}{}", tag.suffix)
    } else if (tag.handle.is_empty() || tag.handle == "!") && tag.suffix.starts_with(CORE) {
        // Verbatim `!<tag:yaml.org,2002:int>`.
        tag.suffix
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(src: &str) -> Node {
        parse_single(src).expect("parses").expect("one document")
    }

    #[test]
    fn positions_are_one_based() {
        let n = one("a:\n  b: [1, 2]\n");
        let (k, v) = &n.as_map().unwrap()[0];
        assert_eq!(k.pos, Pos { line: 1, col: 1 });
        let (k2, _) = &v.as_map().unwrap()[0];
        assert_eq!(k2.pos, Pos { line: 2, col: 3 });
    }

    #[test]
    fn core_schema_typing() {
        let n = one(
            "a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: 1.4.2\ng: 0x1f\nh: 99999999999999999999999\ni: .inf\nj: yes\nk: !!str 3\nl: -7\nm: 1e3\n",
        );
        let j = n.to_json();
        assert_eq!(j["a"], json!(1));
        assert_eq!(j["b"], json!("1"));
        assert_eq!(j["c"], json!(1.5));
        assert_eq!(j["d"], json!(true));
        assert_eq!(j["e"], json!(null));
        assert_eq!(j["f"], json!("1.4.2"));
        assert_eq!(j["g"], json!(31));
        assert_eq!(j["h"], json!(1e23));
        assert_eq!(j["i"], json!(".inf"));
        assert_eq!(j["j"], json!("yes"));
        assert_eq!(j["k"], json!("3"));
        assert_eq!(j["l"], json!(-7));
        assert_eq!(j["m"], json!(1000.0));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let n = one("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n");
        assert_eq!(n.to_json()["derived"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn values_follow_helm_yaml_1_1_and_merge_where_the_merge_key_stands() {
        let n = one(
            "a: yes\nb: '0777'\nc: 0777\nOff: k\nbefore: {x: 1, <<: {x: 2, z: 2}}\nafter: {<<: {x: 2, z: 2}, x: 1}\nlist: {<<: [{x: 1}, {x: 2, z: 2}]}\n",
        );
        let j = n.to_values_json("spec.values").unwrap();
        assert_eq!(j["a"], json!(true));
        assert_eq!(j["b"], json!("0777"));
        assert_eq!(j["c"], json!(511.0));
        assert_eq!(j["false"], json!("k"));
        assert_eq!(j["before"], json!({"x": 2.0, "z": 2.0}));
        assert_eq!(j["after"], json!({"x": 1.0, "z": 2.0}));
        assert_eq!(j["list"], json!({"x": 1.0, "z": 2.0}));
        let e = one("a:\n  - {b: .nan}\n")
            .to_values_json("spec.values")
            .unwrap_err();
        assert_eq!(
            (e.pos, e.path.as_str()),
            (Pos { line: 2, col: 9 }, "spec.values.a[0].b")
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse_single("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, col: 1 });
        assert!(
            e.message.contains("duplicate key `a` (first defined at 1:1)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let e = parse_single(&src).unwrap_err();
        assert!(e.message.contains("more than"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // Flow nesting: the scanner's own limit or ours, either way an error.
        let src = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let e = parse_single(&src).unwrap_err();
        assert!(
            e.message.contains("recursion limit") || e.message.contains("nesting deeper"),
            "{}",
            e.message
        );
        // Block nesting reaches our limit.
        let src: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        let e = parse_single(&src).unwrap_err();
        assert!(e.message.contains("nesting deeper than 128"), "{}", e.message);
        assert_eq!(e.pos.line, 129);
    }

    #[test]
    fn second_document_is_refused_but_empty_stream_is_none() {
        assert!(parse_single("# only a comment\n").unwrap().is_none());
        let e = parse_single("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert_eq!(parse_all("a: 1\n---\n---\nb: 2\n").unwrap().len(), 2);
    }
}
