//! The parser: items into trees, as Go's `text/template/parse` builds them, with its checks
//! (functions and variables must be defined, `break` only in `range`) and its error texts
//! (`template: NAME:LINE: MESSAGE`).

use std::fmt::Write as _;

use super::lex::{Item, Kind, go_quote, lex};

/// A parsed number literal, with every reading Go's `NumberNode` keeps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub uint: Option<u64>,
    pub float: Option<f64>,
    pub complex: bool,
    pub is_char: bool,
}

/// An operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Box<Number>),
    /// The quoted source text and the unquoted value.
    String(usize, String, String),
    /// `.A.B`
    Field(usize, Vec<String>),
    /// `$x.A.B`: the variable name (with `$`) and the fields.
    Variable(usize, String, Vec<String>),
    /// A function name.
    Identifier(usize, String),
    /// `(pipeline)`
    Pipe(usize, Box<Pipe>),
    /// `(pipeline).A.B` and other chains on a term.
    Chain(usize, Box<Arg>, Vec<String>),
}

impl Arg {
    pub(crate) fn pos(&self) -> usize {
        match self {
            Arg::Dot(p)
            | Arg::Nil(p)
            | Arg::Bool(p, _)
            | Arg::Number(p, _)
            | Arg::String(p, ..)
            | Arg::Field(p, _)
            | Arg::Variable(p, ..)
            | Arg::Identifier(p, _)
            | Arg::Pipe(p, _)
            | Arg::Chain(p, ..) => *p,
        }
    }
}

/// One command of a pipeline: a function call, a field chain, a literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

/// A pipeline with its optional declaration (`$x :=` / `$x =` / `$i, $e :=`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

/// `if`, `range`, `with`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

/// A node of a template body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Branch>),
    Range(Box<Branch>),
    With(Box<Branch>),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

/// A parsed template body.
pub(crate) type List = Vec<Node>;

/// What one source text defines: its own body, then each `define`/`block` in order.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub root: List,
    pub defines: Vec<(String, List)>,
}

/// Whether a body is only whitespace text (Go's `IsEmptyTree`).
pub(crate) fn is_empty_tree(list: &[Node]) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

/// Parses `src` (named `name` in errors); `has_func` says which function names exist.
pub(crate) fn parse(name: &str, src: &str, has_func: &dyn Fn(&str) -> bool) -> Result<Parsed, String> {
    let items = lex(src, !has_func("break"), !has_func("continue"));
    let mut p = Parser {
        items,
        idx: 0,
        name,
        has_func,
        vars: vec!["$".into()],
        range_depth: 0,
        line: 1,
        action_line: 0,
        defines: Vec::new(),
    };
    let root = p.top()?;
    Ok(Parsed {
        root,
        defines: p.defines,
    })
}

struct Parser<'a> {
    items: Vec<Item>,
    idx: usize,
    name: &'a str,
    has_func: &'a dyn Fn(&str) -> bool,
    vars: Vec<String>,
    range_depth: usize,
    /// Line of the last item read (Go reports errors there).
    line: usize,
    action_line: usize,
    defines: Vec<(String, List)>,
}

type PResult<T> = Result<T, String>;

enum End {
    End,
    Else(usize),
}

impl Parser<'_> {
    fn errorf(&self, msg: impl std::fmt::Display) -> String {
        format!("template: {}:{}: {msg}", self.name, self.line)
    }

    fn next(&mut self) -> Item {
        let item = match self.items.get(self.idx) {
            Some(i) => i.clone(),
            None => self.items.last().cloned().unwrap_or(Item {
                kind: Kind::Eof,
                val: String::new(),
                pos: 0,
                line: 1,
            }),
        };
        if self.idx < self.items.len() {
            self.idx += 1;
        }
        self.line = item.line;
        item
    }

    fn backup(&mut self) {
        self.idx = self.idx.saturating_sub(1);
    }

    fn peek(&self) -> Item {
        self.items
            .get(self.idx)
            .or(self.items.last())
            .cloned()
            .unwrap_or(Item {
                kind: Kind::Eof,
                val: String::new(),
                pos: 0,
                line: 1,
            })
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn unexpected(&self, item: &Item, context: &str) -> String {
        if item.kind == Kind::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != item.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if item.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{item}{extra}"));
        }
        self.errorf(format!("unexpected {item} in {context}"))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.kind != kind {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    fn top(&mut self) -> PResult<List> {
        let mut root = Vec::new();
        while self.peek().kind != Kind::Eof {
            if self.peek().kind == Kind::LeftDelim {
                let mark = self.idx;
                self.next();
                if self.next_non_space().kind == Kind::Define {
                    self.definition()?;
                    continue;
                }
                self.idx = mark;
            }
            match self.text_or_action()? {
                Ok(node) => root.push(node),
                Err(End::End) => return Err(self.errorf("unexpected {{end}}")),
                Err(End::Else(_)) => return Err(self.errorf("unexpected {{else}}")),
            }
        }
        if let Some(err) = self.items.last().filter(|i| i.kind == Kind::Error) {
            return Err(self.unexpected(&err.clone(), "input"));
        }
        Ok(root)
    }

    /// `{{define "name"}} ... {{end}}`
    fn definition(&mut self) -> PResult<()> {
        let context = "define clause";
        let t = self.next_non_space();
        let name = match t.kind {
            Kind::String | Kind::RawString => self.unquote(&t.val)?,
            _ => return Err(self.unexpected(&t, context)),
        };
        self.expect(Kind::RightDelim, context)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (body, end) = self.item_list()?;
        self.vars = saved;
        if let End::Else(_) = end {
            return Err(self.errorf(format!("unexpected {{{{else}}}} in {context}")));
        }
        self.add(name, body)
    }

    fn add(&mut self, name: String, body: List) -> PResult<()> {
        if let Some(existing) = self.defines.iter_mut().find(|(n, _)| *n == name) {
            if is_empty_tree(&existing.1) {
                existing.1 = body;
                return Ok(());
            }
            if !is_empty_tree(&body) {
                return Err(self.errorf(format!(
                    "template: multiple definition of template {}",
                    go_quote(&name)
                )));
            }
            return Ok(());
        }
        self.defines.push((name, body));
        Ok(())
    }

    /// A list up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> PResult<(List, End)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err(end) => return Ok((list, end)),
            }
        }
        if let Some(err) = self.items.last().filter(|i| i.kind == Kind::Error) {
            return Err(self.unexpected(&err.clone(), "input"));
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Result<Node, End>> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Text => Ok(Ok(Node::Text(t.val))),
            Kind::LeftDelim => {
                self.action_line = t.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(&t, "input")),
        }
    }

    fn action(&mut self) -> PResult<Result<Node, End>> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Block => return self.block().map(Ok),
            Kind::Break => return self.break_continue(t.pos, "break").map(Ok),
            Kind::Continue => return self.break_continue(t.pos, "continue").map(Ok),
            Kind::Else => return self.else_control().map(Err),
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Err(End::End));
            }
            Kind::If => return self.if_control().map(Ok),
            Kind::Range => return self.range_control().map(Ok),
            Kind::Template => return self.template_control().map(Ok),
            Kind::With => return self.with_control().map(Ok),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", Kind::RightDelim)?;
        Ok(Ok(Node::Action(pipe)))
    }

    fn break_continue(&mut self, pos: usize, word: &str) -> PResult<Node> {
        let t = self.next_non_space();
        if t.kind != Kind::RightDelim {
            return Err(self.unexpected(&t, &format!("{{{{{word}}}}}")));
        }
        if self.range_depth == 0 {
            return Err(self.errorf(format!("{{{{{word}}}}} outside {{{{range}}}}")));
        }
        Ok(if word == "break" {
            Node::Break(pos)
        } else {
            Node::Continue(pos)
        })
    }

    fn else_control(&mut self) -> PResult<End> {
        let peek = self.peek_non_space();
        if matches!(peek.kind, Kind::If | Kind::With) {
            // "{{else if ...": parsed as "{{else}}{{if ...".
            return Ok(End::Else(peek.pos));
        }
        let t = self.expect(Kind::RightDelim, "else")?;
        Ok(End::Else(t.pos))
    }

    fn control(&mut self, context: &str) -> PResult<Branch> {
        let mark = self.vars.len();
        let result = self.control_inner(context);
        self.vars.truncate(mark);
        result
    }

    fn control_inner(&mut self, context: &str) -> PResult<Branch> {
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, end) = listed?;
        let mut else_list = None;
        if let End::Else(pos) = end {
            let peek = self.peek().kind;
            if context == "if" && peek == Kind::If {
                self.next();
                else_list = Some(vec![self.if_control_at(pos)?]);
            } else if context == "with" && peek == Kind::With {
                self.next();
                else_list = Some(vec![self.with_control_at(pos)?]);
            } else {
                let (l, end) = self.item_list()?;
                if let End::Else(_) = end {
                    return Err(self.errorf("expected end; found {{else}}"));
                }
                else_list = Some(l);
            }
        }
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn if_control(&mut self) -> PResult<Node> {
        Ok(Node::If(Box::new(self.control("if")?)))
    }

    fn if_control_at(&mut self, _pos: usize) -> PResult<Node> {
        self.if_control()
    }

    fn with_control(&mut self) -> PResult<Node> {
        Ok(Node::With(Box::new(self.control("with")?)))
    }

    fn with_control_at(&mut self, _pos: usize) -> PResult<Node> {
        self.with_control()
    }

    fn range_control(&mut self) -> PResult<Node> {
        Ok(Node::Range(Box::new(self.control("range")?)))
    }

    fn template_name(&mut self, t: &Item, context: &str) -> PResult<String> {
        match t.kind {
            Kind::String | Kind::RawString => self.unquote(&t.val),
            _ => Err(self.unexpected(t, context)),
        }
    }

    /// `{{template "name" pipeline}}`
    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, context)?;
        let mut pipe = None;
        if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(context, Kind::RightDelim)?);
        }
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe,
        })
    }

    /// `{{block "name" pipeline}} T {{end}}`: a define plus a template call.
    fn block(&mut self) -> PResult<Node> {
        let context = "block clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, context)?;
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_depth = std::mem::replace(&mut self.range_depth, 0);
        let listed = self.item_list();
        self.vars = saved;
        self.range_depth = saved_depth;
        let (body, end) = listed?;
        if let End::Else(_) = end {
            return Err(self.errorf(format!("unexpected {{{{else}}}} in {context}")));
        }
        self.add(name.clone(), body)?;
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe {
            pos: start.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations.
        'decls: loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            let mark = self.idx;
            self.next_non_space();
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val.clone());
                }
                Kind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val.clone());
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue 'decls,
                            _ => return Err(self.errorf("range can only initialize variables")),
                        }
                    }
                    return Err(self.errorf(format!("too many declarations in {context}")));
                }
                _ => {
                    self.idx = mark;
                }
            }
            break;
        }
        loop {
            let t = self.next_non_space();
            if t.kind == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match t.kind {
                Kind::Bool
                | Kind::CharConstant
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&t, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::String(..))
            ) {
                return Err(self.errorf(format!("non executable command in pipeline stage {}", i + 1)));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return Err(self.unexpected(&t, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            let f = self.next();
            fields.push(f.val[1..].to_string());
        }
        Ok(Some(match node {
            // Go keeps a plain field or variable node, positioned where the chain starts.
            Arg::Field(_, mut f) => {
                f.extend(fields);
                Arg::Field(chain_pos, f)
            }
            Arg::Variable(_, v, mut f) => {
                f.extend(fields);
                Arg::Variable(chain_pos, v, f)
            }
            Arg::Bool(..) | Arg::String(..) | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_) => {
                return Err(self.errorf(format!("unexpected . after term {}", go_quote(&arg_text(&node)))));
            }
            other => Arg::Chain(chain_pos, Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.next_non_space();
        Ok(Some(match t.kind {
            Kind::Identifier => {
                if !(self.has_func)(&t.val) {
                    return Err(self.errorf(format!("function {} not defined", go_quote(&t.val))));
                }
                Arg::Identifier(t.pos, t.val)
            }
            Kind::Dot => Arg::Dot(t.pos),
            Kind::Nil => Arg::Nil(t.pos),
            Kind::Variable => {
                let mut parts = t.val.split('.');
                let var = parts.next().unwrap_or("$").to_string();
                let fields: Vec<String> = parts.map(str::to_string).collect();
                if !self.vars.contains(&var) {
                    return Err(self.errorf(format!("undefined variable {}", go_quote(&var))));
                }
                Arg::Variable(t.pos, var, fields)
            }
            Kind::Field => Arg::Field(t.pos, t.val[1..].split('.').map(str::to_string).collect()),
            Kind::Bool => Arg::Bool(t.pos, t.val == "true"),
            Kind::CharConstant | Kind::Number => {
                let n = new_number(&t.val, t.kind == Kind::CharConstant).map_err(|e| self.errorf(e))?;
                Arg::Number(t.pos, Box::new(n))
            }
            Kind::LeftParen => {
                let pipe = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                Arg::Pipe(t.pos, Box::new(pipe))
            }
            Kind::String | Kind::RawString => {
                let s = self.unquote(&t.val)?;
                Arg::String(t.pos, t.val, s)
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn unquote(&self, quoted: &str) -> PResult<String> {
        unquote(quoted).ok_or_else(|| self.errorf("invalid syntax"))
    }
}

/// Go's `strconv.Unquote` for "..." and `...` literals.
pub(crate) fn unquote(q: &str) -> Option<String> {
    if let Some(raw) = q.strip_prefix('`') {
        return raw.strip_suffix('`').map(|s| s.replace('\r', ""));
    }
    let body = q.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(body.len());
    let mut bytes: Vec<u8> = Vec::new();
    let mut chars = body.chars().peekable();
    // Bytes from \x and octal escapes are collected and must form valid UTF-8 with the
    // text around them (Go allows any bytes; our strings are UTF-8).
    let flush = |bytes: &mut Vec<u8>, out: &mut String| -> Option<()> {
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8(std::mem::take(bytes)).ok()?);
        }
        Some(())
    };
    while let Some(c) = chars.next() {
        if c == '"' || c == '\n' {
            return None;
        }
        if c != '\\' {
            flush(&mut bytes, &mut out)?;
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            'x' => {
                let h: String = (0..2).filter_map(|_| chars.next()).collect();
                bytes.push(u8::from_str_radix(&h, 16).ok().filter(|_| h.len() == 2)?);
                continue;
            }
            '0'..='7' => {
                let mut o = String::from(e);
                for _ in 0..2 {
                    o.push(chars.next()?);
                }
                let v = u32::from_str_radix(&o, 8).ok()?;
                bytes.push(u8::try_from(v).ok()?);
                continue;
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let h: String = (0..n).filter_map(|_| chars.next()).collect();
                if h.len() != n {
                    return None;
                }
                out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
            }
            _ => return None,
        }
        flush(&mut bytes, &mut out)?;
    }
    flush(&mut bytes, &mut out)?;
    Some(out)
}

/// Go's `strconv.ParseInt(s, 0, 64)`-style integer reading (sign, base prefix, `_`).
fn parse_go_int(text: &str) -> Option<(bool, u64)> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    if digits.contains('_') {
        // Underscores only between digits (or right after a base prefix).
        let ok_shape =
            !digits.ends_with('_') && !digits.contains("__") && (prefixed || !digits.starts_with('_'));
        if !ok_shape {
            return None;
        }
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok().map(|v| (neg, v))
}

/// Go's `newNumber`.
fn new_number(text: &str, is_char: bool) -> Result<Number, String> {
    let mut n = Number {
        text: text.to_string(),
        int: None,
        uint: None,
        float: None,
        complex: false,
        is_char,
    };
    if is_char {
        let inner = unquote_char(text).ok_or_else(|| format!("malformed character constant: {text}"))?;
        let v = inner as u32;
        n.int = Some(i64::from(v));
        n.uint = Some(u64::from(v));
        n.float = Some(f64::from(v));
        return Ok(n);
    }
    if let Some(imag) = text.strip_suffix('i')
        && (imag.parse::<f64>().is_ok() || text.contains(['+', '-']))
    {
        n.complex = true;
        return Ok(n);
    }
    if let Some((neg, v)) = parse_go_int(text) {
        if !neg {
            n.uint = Some(v);
            if let Ok(i) = i64::try_from(v) {
                n.int = Some(i);
            }
        } else if v <= (i64::MAX as u64) + 1 {
            n.int = Some((v as i128).wrapping_neg() as i64);
            if v == 0 {
                n.uint = Some(0);
            }
        }
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else {
        let clean: String = text.chars().filter(|c| *c != '_').collect();
        let f = parse_go_float(&clean);
        if let Some(f) = f {
            if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                return Err(format!("integer overflow: {}", go_quote(text)));
            }
            n.float = Some(f);
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
                n.int = Some(f as i64);
            }
            if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
                n.uint = Some(f as u64);
            }
        }
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!("illegal number syntax: {}", go_quote(text)));
    }
    Ok(n)
}

/// Decimal and hexadecimal float literals.
fn parse_go_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = if let Some(hex) = lower.strip_prefix("0x") {
        let (mant, exp) = hex.split_once('p')?;
        let exp: i32 = exp.parse().ok()?;
        let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
        let mut v = 0f64;
        for c in int_part.chars() {
            v = v * 16.0 + f64::from(c.to_digit(16)?);
        }
        let mut scale = 1.0 / 16.0;
        for c in frac_part.chars() {
            v += f64::from(c.to_digit(16)?) * scale;
            scale /= 16.0;
        }
        v * 2f64.powi(exp)
    } else {
        if lower.starts_with("inf") || lower.starts_with("nan") {
            return None;
        }
        lower.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// The rune of a character constant such as `'a'` or `'\n'`.
fn unquote_char(text: &str) -> Option<char> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    if inner == "\"" {
        return Some('"');
    }
    if inner == "\\'" {
        return Some('\'');
    }
    if inner.starts_with('\\') {
        let s = unquote(&format!("\"{inner}\""))?;
        let mut c = s.chars();
        let first = c.next()?;
        return c.next().is_none().then_some(first);
    }
    let mut c = inner.chars();
    let first = c.next()?;
    c.next().is_none().then_some(first)
}

/// Go's `Node.String()` of an operand (error contexts).
pub(crate) fn arg_text(a: &Arg) -> String {
    let mut s = String::new();
    write_arg(&mut s, a);
    s
}

fn write_arg(s: &mut String, a: &Arg) {
    match a {
        Arg::Dot(_) => s.push('.'),
        Arg::Nil(_) => s.push_str("nil"),
        Arg::Bool(_, b) => s.push_str(if *b { "true" } else { "false" }),
        Arg::Number(_, n) => s.push_str(&n.text),
        Arg::String(_, q, _) => s.push_str(q),
        Arg::Field(_, f) => {
            for x in f {
                let _ = write!(s, ".{x}");
            }
        }
        Arg::Variable(_, v, f) => {
            s.push_str(v);
            for x in f {
                let _ = write!(s, ".{x}");
            }
        }
        Arg::Identifier(_, n) => s.push_str(n),
        Arg::Pipe(_, p) => {
            s.push('(');
            write_pipe(s, p);
            s.push(')');
        }
        Arg::Chain(_, inner, f) => {
            if let Arg::Pipe(..) = inner.as_ref() {
                write_arg(s, inner);
            } else {
                write_arg(s, inner);
            }
            for x in f {
                let _ = write!(s, ".{x}");
            }
        }
    }
}

/// Go's `CommandNode.String()`.
pub(crate) fn command_text(c: &Command) -> String {
    let mut s = String::new();
    for (i, a) in c.args.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        write_arg(&mut s, a);
    }
    s
}

fn write_pipe(s: &mut String, p: &Pipe) {
    if !p.decl.is_empty() {
        s.push_str(&p.decl.join(", "));
        s.push_str(if p.is_assign { " = " } else { " := " });
    }
    for (i, c) in p.cmds.iter().enumerate() {
        if i > 0 {
            s.push_str(" | ");
        }
        s.push_str(&command_text(c));
    }
}

/// Go's `PipeNode.String()`.
pub(crate) fn pipe_text(p: &Pipe) -> String {
    let mut s = String::new();
    write_pipe(&mut s, p);
    s
}

/// Go's `String()` of a node, for `executing "x" at <...>` contexts.
pub(crate) fn node_text(n: &Node) -> String {
    match n {
        Node::Text(t) => t.clone(),
        Node::Action(p) => format!("{{{{{}}}}}", pipe_text(p)),
        Node::If(b) => branch_text("if", b),
        Node::Range(b) => branch_text("range", b),
        Node::With(b) => branch_text("with", b),
        Node::Template { name, pipe, .. } => match pipe {
            Some(p) => format!("{{{{template {} {}}}}}", go_quote(name), pipe_text(p)),
            None => format!("{{{{template {}}}}}", go_quote(name)),
        },
        Node::Break(_) => "{{break}}".into(),
        Node::Continue(_) => "{{continue}}".into(),
    }
}

fn list_text(l: &[Node]) -> String {
    l.iter().map(node_text).collect()
}

fn branch_text(word: &str, b: &Branch) -> String {
    match &b.else_list {
        Some(e) => format!(
            "{{{{{word} {}}}}}{}{{{{else}}}}{}{{{{end}}}}",
            pipe_text(&b.pipe),
            list_text(&b.list),
            list_text(e)
        ),
        None => format!(
            "{{{{{word} {}}}}}{}{{{{end}}}}",
            pipe_text(&b.pipe),
            list_text(&b.list)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Result<Parsed, String> {
        parse("t", src, &|n| matches!(n, "f" | "g" | "and" | "printf"))
    }

    #[test]
    fn trailing_pipe_is_accepted() {
        let t = p("{{- f .x | g | }}").unwrap();
        let Node::Action(pipe) = &t.root[0] else { panic!() };
        assert_eq!(pipe.cmds.len(), 2);
    }

    #[test]
    fn go_parse_errors() {
        assert_eq!(
            p("{{ h }}").unwrap_err(),
            "template: t:1: function \"h\" not defined"
        );
        assert_eq!(
            p("{{ $x }}").unwrap_err(),
            "template: t:1: undefined variable \"$x\""
        );
        assert_eq!(p("{{ if .x }}").unwrap_err(), "template: t:1: unexpected EOF");
        assert_eq!(
            p("{{ break }}").unwrap_err(),
            "template: t:1: {{break}} outside {{range}}"
        );
        assert_eq!(
            p("{{ .x | 1 }}").unwrap_err(),
            "template: t:1: non executable command in pipeline stage 2"
        );
        assert_eq!(p("{{ end }}").unwrap_err(), "template: t:1: unexpected {{end}}");
        assert_eq!(
            p("{{ | f }}").unwrap_err(),
            "template: t:1: unexpected \"|\" in command"
        );
        assert_eq!(
            p("{{ f | | g }}").unwrap_err(),
            "template: t:1: unexpected \"|\" in command"
        );
    }

    #[test]
    fn scopes_and_defines() {
        assert!(p("{{ if $x := 1 }}{{ $x }}{{ else }}{{ $x }}{{ end }}").is_ok());
        assert!(p("{{ if $x := 1 }}{{ end }}{{ $x }}").is_err());
        let t = p("{{ define \"a\" }}A{{ end }}{{ block \"b\" . }}B{{ end }}").unwrap();
        assert_eq!(t.defines.len(), 2);
        assert!(p("{{ range $i, $e := .x }}{{ $i }}{{ $e }}{{ break }}{{ end }}").is_ok());
        assert!(p("{{ with .a }}{{ else with .b }}{{ else }}{{ end }}").is_ok());
    }

    #[test]
    fn numbers() {
        let n = new_number("0x1F", false).unwrap();
        assert_eq!(n.int, Some(31));
        assert_eq!(new_number("1e3", false).unwrap().float, Some(1000.0));
        assert_eq!(new_number("'a'", true).unwrap().int, Some(97));
        assert!(new_number("99999999999999999999", false).is_err());
        assert_eq!(new_number("-5", false).unwrap().int, Some(-5));
    }

    #[test]
    fn node_strings() {
        let t = p("{{ $x := f (g .a.b) \"s\" | printf \"%v\" }}").unwrap();
        assert_eq!(
            node_text(&t.root[0]),
            "{{$x := f (g .a.b) \"s\" | printf \"%v\"}}"
        );
    }
}
