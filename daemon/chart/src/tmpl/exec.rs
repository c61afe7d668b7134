//! The executor: walks parsed trees with Go's `text/template` rules as Helm configures it
//! (`missingkey=zero`).
//!
//! Go's reflection distinguishes three states this module keeps in [`Val`]:
//! - *invalid* (no value): what a pipeline yields when its result is a nil interface, a
//!   missing `{{template}}` argument, a field of an invalid value. Fields of it are
//!   invalid again, silently: that is why `(.Values.a).b` is nil-safe in Helm.
//! - an *interface* value: a map entry or list element (`map[string]interface{}`). A nil
//!   one is an error when a field is taken of it (`.Values.a.b` with no `a`: "nil pointer
//!   evaluating interface {}.b").
//! - a *concrete* value: literals, variables, pipeline results.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::builtins;
use super::parse::{
    self, Arg, Branch, Command, List, Node, Pipe, arg_text, command_text, is_empty_tree, node_text,
};
use super::value::{FuncMap, Value};

/// The name of the template set, as Helm names it (`template.New("gotpl")`).
pub(crate) const SET_NAME: &str = "gotpl";
/// Helm's limit on nested `include` of one template (and on nested `tpl`).
const MAX_INCLUDE: usize = 1000;
/// Go's limit on nested `{{template}}` calls.
const MAX_EXEC_DEPTH: usize = 100_000;

/// A template: a file body or a `define`, with the source it was parsed from.
#[derive(Debug)]
pub(crate) struct Tree {
    pub parse_name: Rc<str>,
    pub src: Rc<str>,
    pub body: List,
}

/// A set of templates sharing one function map, like Go's `*template.Template` family.
#[derive(Clone)]
pub struct Set {
    trees: HashMap<String, Rc<Tree>>,
    funcs: Arc<FuncMap>,
    missing_key: MissingKey,
}

/// Go's `missingkey` option: what a missing map key yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingKey {
    /// `missingkey=default`/`invalid`: no value.
    Invalid,
    /// `missingkey=zero`: the element type's zero value, a nil interface (Helm's setting).
    Zero,
    /// `missingkey=error`: an execution error (Helm's `--strict` lint).
    Error,
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Set")
            .field("templates", &self.trees.len())
            .finish()
    }
}

/// Functions the executor provides itself, besides Go's builtins: Helm's `include` and
/// `tpl`, which need the template set.
const HELM_EXEC_FUNCS: &[&str] = &["include", "tpl"];

impl Set {
    /// An empty set with these functions (Go's builtins are always there).
    pub fn new(funcs: FuncMap) -> Set {
        Set::with_funcs(Arc::new(funcs))
    }

    /// An empty set sharing a function map.
    pub fn with_funcs(funcs: Arc<FuncMap>) -> Set {
        Set {
            trees: HashMap::new(),
            funcs,
            missing_key: MissingKey::Zero,
        }
    }

    /// Sets Go's `missingkey` option (Helm uses [`MissingKey::Zero`], the default here).
    pub fn missing_key(mut self, mk: MissingKey) -> Set {
        self.missing_key = mk;
        self
    }

    /// Whether templates may call `name`.
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains_key(name) || builtins::is_builtin(name) || HELM_EXEC_FUNCS.contains(&name)
    }

    /// Parses `src` as template `name` and adds it and its `define`s, as Go's
    /// `t.New(name).Parse(src)` does: a definition replaces an earlier one of the same
    /// name unless it is empty. Errors are Go's (`template: NAME:LINE: MESSAGE`).
    pub fn add(&mut self, name: &str, src: &str) -> Result<(), String> {
        let parsed = parse::parse(name, src, &|f| self.has_func(f))?;
        let parse_name: Rc<str> = Rc::from(name);
        let src: Rc<str> = Rc::from(src);
        self.associate(name.to_string(), &parse_name, &src, parsed.root);
        for (dname, body) in parsed.defines {
            self.associate(dname, &parse_name, &src, body);
        }
        Ok(())
    }

    fn associate(&mut self, name: String, parse_name: &Rc<str>, src: &Rc<str>, body: List) {
        if is_empty_tree(&body) && self.trees.contains_key(&name) {
            return;
        }
        self.trees.insert(
            name,
            Rc::new(Tree {
                parse_name: parse_name.clone(),
                src: src.clone(),
                body,
            }),
        );
    }

    /// Whether a template `name` exists.
    pub fn has_template(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// Executes template `name` with `data` as dot. Errors are Go's texts.
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, String> {
        self.execute_limited(name, data, &Limits::default())
    }

    /// Executes template `name` within `limits`: a template that runs past the deadline
    /// or writes more than the budget fails at the node it had reached.
    pub fn execute_limited(&self, name: &str, data: &Value, limits: &Limits) -> Result<String, String> {
        let mut ex = Exec {
            set: self,
            overlays: Vec::new(),
            included: HashMap::new(),
            tpl_depth: 0,
            limits: *limits,
            steps: 0,
            written: 0,
        };
        ex.execute_template(name, dot_of(data.clone())).map_err(|e| e.0)
    }
}

/// Bounds on one execution, so a hostile or runaway template cannot stall its caller.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// Fail once this instant has passed (checked every few thousand steps).
    pub deadline: Option<std::time::Instant>,
    /// The time limit the deadline stands for, for the message.
    pub time_limit: Option<std::time::Duration>,
    /// Fail once more than this many bytes of output were written (includes count too).
    pub max_output: Option<usize>,
}

/// Steps (nodes walked, range iterations) between two looks at the clock.
const STEPS_PER_CLOCK_CHECK: u64 = 4096;

/// The methods of Helm's `chartutil.Values`.
fn chart_values_method(m: &super::value::Map, name: &str, args: &[Value]) -> Result<Value, String> {
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    let path_arg = || -> Result<String, String> {
        match args.first() {
            Some(Value::String(s)) => Ok(s.to_string()),
            Some(other) => Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            )),
            None => Ok(String::new()),
        }
    };
    match name {
        "AsMap" => {
            want(0)?;
            Ok(Value::Map(m.as_plain()))
        }
        "YAML" => {
            want(0)?;
            crate::funcs::to_yaml_string(&Value::Map(m.as_plain()))
                .map(|y| Value::from(format!("{y}\n")))
                .map_err(|e| format!("error calling YAML: {e}"))
        }
        "Table" => {
            want(1)?;
            let path = path_arg()?;
            let mut cur = m.as_plain();
            for part in path.split('.') {
                cur = match cur.get(part) {
                    Some(Value::Map(next)) => next,
                    _ => return Err(format!("error calling Table: no table named {:?}", path)),
                };
            }
            Ok(Value::Map(cur.as_chart_values()))
        }
        _ => {
            want(1)?;
            let path = path_arg()?;
            if path.is_empty() {
                return Err("error calling PathValue: YAML path cannot be empty".into());
            }
            let parts: Vec<&str> = path.split('.').collect();
            let (last, tables) = parts.split_last().unwrap_or((&"", &[]));
            let mut cur = m.as_plain();
            for part in tables {
                cur = match cur.get(part) {
                    Some(Value::Map(next)) => next,
                    _ => return Err(format!("error calling PathValue: no table named {part:?}")),
                };
            }
            match cur.get(last) {
                Some(v) if !matches!(v, Value::Map(_)) => Ok(v),
                _ => Err(format!("error calling PathValue: no value for key {path:?}")),
            }
        }
    }
}

/// Dot for data handed to `Execute`: Go's `reflect.ValueOf(nil)` is no value.
fn dot_of(v: Value) -> Val {
    match v {
        Value::Nil => Val::Invalid,
        v => Val::Conc(v),
    }
}

/// The nil value of the parameter type a function's "wrong type" error names, for the
/// nilable types functions take (maps and lists).
fn nil_of_refused_type(msg: &str) -> Option<Value> {
    let rest = msg.split("wrong type for value; expected ").nth(1)?;
    let typ = rest.strip_suffix("; got interface {}")?;
    if typ.starts_with("map[") {
        Some(Value::empty_map())
    } else if typ.starts_with("[]") {
        Some(Value::list(Vec::new()))
    } else {
        None
    }
}

/// A value as the executor holds it (see the module header).
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Invalid,
    Iface(Value),
    Conc(Value),
}

impl Val {
    /// What a function receives: invalid values become nil.
    pub(crate) fn value(&self) -> Value {
        match self {
            Val::Invalid => Value::Nil,
            Val::Iface(v) | Val::Conc(v) => v.clone(),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Val::Invalid => Value::Nil,
            Val::Iface(v) | Val::Conc(v) => v,
        }
    }

    /// The pipeline's unwrapping of `interface{}` results ("lovely!" in Go's source).
    fn unwrap_iface(self) -> Val {
        match self {
            Val::Iface(Value::Nil) | Val::Conc(Value::Nil) => Val::Invalid,
            Val::Iface(v) => Val::Conc(v),
            other => other,
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        !matches!(self, Val::Invalid)
    }

    /// Go's `truth` of the value behind any interface.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Val::Invalid => false,
            Val::Iface(v) | Val::Conc(v) => v.is_truthy(),
        }
    }
}

/// An execution error (the full Go text).
#[derive(Debug)]
pub(crate) struct ExecError(pub String);

type EResult<T> = Result<T, ExecError>;

enum Flow {
    Normal,
    Break,
    Continue,
}

/// What an error message points at.
#[derive(Clone, Copy)]
pub(crate) enum At<'n> {
    Arg(&'n Arg),
    Cmd(&'n Command),
    Pipe(&'n Pipe),
    Node(&'n Node),
    Ident(usize, &'n str),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Arg(a) => a.pos(),
            At::Cmd(c) => c.pos,
            At::Pipe(p) => p.pos,
            At::Node(n) => node_pos(n),
            At::Ident(p, _) => *p,
        }
    }

    fn text(&self) -> String {
        match self {
            At::Arg(a) => arg_text(a),
            At::Cmd(c) => command_text(c),
            At::Pipe(p) => parse::pipe_text(p),
            At::Node(n) => node_text(n),
            At::Ident(_, name) => name.to_string(),
        }
    }
}

fn node_pos(n: &Node) -> usize {
    match n {
        Node::Text(_) => 0,
        Node::Action(p) => p.pos,
        Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
        Node::Template { pos, .. } | Node::Break(pos) | Node::Continue(pos) => *pos,
    }
}

/// Go's `ErrorContext`: `NAME:LINE:COL` with a 0-based byte column.
fn location(tree: &Tree, pos: usize) -> String {
    let pos = pos.min(tree.src.len());
    let before = &tree.src[..pos];
    let line = 1 + before.matches('\n').count();
    let col = match before.rfind('\n') {
        Some(nl) => pos - nl - 1,
        None => pos,
    };
    format!("{}:{line}:{col}", tree.parse_name)
}

struct Exec<'s> {
    set: &'s Set,
    /// Templates `tpl` added while its text runs (Helm clones the set for it).
    overlays: Vec<HashMap<String, Rc<Tree>>>,
    included: HashMap<String, usize>,
    tpl_depth: usize,
    limits: Limits,
    steps: u64,
    written: usize,
}

/// The state of one template execution: its tree, variables and output.
struct Frame<'t> {
    name: &'t str,
    tree: &'t Tree,
    vars: Vec<(String, Val)>,
    out: String,
    depth: usize,
}

impl<'s> Exec<'s> {
    fn lookup(&self, name: &str) -> Option<Rc<Tree>> {
        for o in self.overlays.iter().rev() {
            if let Some(t) = o.get(name) {
                return Some(t.clone());
            }
        }
        self.set.trees.get(name).cloned()
    }

    fn execute_template(&mut self, name: &str, dot: Val) -> EResult<String> {
        let Some(tree) = self.lookup(name) else {
            return Err(ExecError(format!(
                "template: no template {} associated with template {}",
                super::lex::go_quote(name),
                super::lex::go_quote(SET_NAME)
            )));
        };
        let mut frame = Frame {
            name,
            tree: &tree,
            vars: vec![("$".to_string(), dot.clone())],
            out: String::new(),
            depth: 0,
        };
        self.walk_list(&mut frame, &dot, &tree.body)?;
        Ok(frame.out)
    }

    fn err(&self, f: &Frame, at: At, msg: impl std::fmt::Display) -> ExecError {
        ExecError(format!(
            "template: {}: executing {} at <{}>: {msg}",
            location(f.tree, at.pos()),
            super::lex::go_quote(f.name),
            at.text()
        ))
    }

    fn walk_list(&mut self, f: &mut Frame, dot: &Val, list: &[Node]) -> EResult<Flow> {
        for node in list {
            match self.walk(f, dot, node)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    /// Counts a step and the bytes written since the last call; fails past the limits.
    fn check_limits(&mut self, f: &Frame, node: &Node, wrote: usize) -> EResult<()> {
        self.steps += 1;
        self.written += wrote;
        if let Some(max) = self.limits.max_output
            && self.written > max
        {
            return Err(self.err(
                f,
                At::Node(node),
                format!("render output exceeds its budget of {max} bytes"),
            ));
        }
        if self.steps.is_multiple_of(STEPS_PER_CLOCK_CHECK)
            && let Some(deadline) = self.limits.deadline
            && std::time::Instant::now() > deadline
        {
            return Err(self.err(
                f,
                At::Node(node),
                match self.limits.time_limit {
                    Some(t) => format!(
                        "render deadline exceeded: the render's time limit is {:?}, stopped after {} steps",
                        t, self.steps
                    ),
                    None => format!("render deadline exceeded after {} steps", self.steps),
                },
            ));
        }
        Ok(())
    }

    fn walk(&mut self, f: &mut Frame, dot: &Val, node: &Node) -> EResult<Flow> {
        let before = f.out.len();
        let flow = self.walk_node(f, dot, node)?;
        // Only text and actions write themselves; control nodes' children counted theirs.
        let wrote = match node {
            Node::Text(_) | Node::Action(_) => f.out.len().saturating_sub(before),
            _ => 0,
        };
        self.check_limits(f, node, wrote)?;
        Ok(flow)
    }

    fn walk_node(&mut self, f: &mut Frame, dot: &Val, node: &Node) -> EResult<Flow> {
        match node {
            Node::Text(t) => {
                f.out.push_str(t);
                Ok(Flow::Normal)
            }
            Node::Action(pipe) => {
                let v = self.eval_pipeline(f, dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print_value(f, At::Node(node), &v)?;
                }
                Ok(Flow::Normal)
            }
            Node::If(b) => self.walk_if_with(f, dot, b, false),
            Node::With(b) => self.walk_if_with(f, dot, b, true),
            Node::Range(b) => self.walk_range(f, dot, b, node),
            Node::Template { name, pipe, .. } => {
                self.walk_template(f, dot, node, name, pipe.as_ref())?;
                Ok(Flow::Normal)
            }
            Node::Break(_) => Ok(Flow::Break),
            Node::Continue(_) => Ok(Flow::Continue),
        }
    }

    fn walk_if_with(&mut self, f: &mut Frame, dot: &Val, b: &Branch, with: bool) -> EResult<Flow> {
        let mark = f.vars.len();
        let result = (|| {
            let val = self.eval_pipeline(f, dot, &b.pipe)?;
            if val.truth() {
                if with {
                    self.walk_list(f, &val, &b.list)
                } else {
                    self.walk_list(f, dot, &b.list)
                }
            } else if let Some(e) = &b.else_list {
                self.walk_list(f, dot, e)
            } else {
                Ok(Flow::Normal)
            }
        })();
        f.vars.truncate(mark);
        result
    }

    fn walk_range(&mut self, f: &mut Frame, dot: &Val, b: &Branch, node: &Node) -> EResult<Flow> {
        let outer = f.vars.len();
        let result = self.walk_range_inner(f, dot, b, node);
        f.vars.truncate(outer);
        result.map(|flow| match flow {
            // A break or continue ends at its range.
            Flow::Break | Flow::Continue | Flow::Normal => Flow::Normal,
        })
    }

    fn walk_range_inner(&mut self, f: &mut Frame, dot: &Val, b: &Branch, node: &Node) -> EResult<Flow> {
        let val = self.eval_pipeline(f, dot, &b.pipe)?;
        let mark = f.vars.len();
        // Lists and integers are walked lazily (`range 10000000000` must not allocate);
        // a map's keys and values are taken once, as Go's fmtsort does.
        if let Value::Object(o) = val.value()
            && !o.rangeable()
        {
            return Err(self.err(
                f,
                At::Node(node),
                format!(
                    "range can't iterate over {}",
                    crate::funcs::go_string(&Value::Object(o))
                ),
            ));
        }
        let (count, items): (i64, Box<dyn Iterator<Item = (Val, Val)>>) = match val.value().plain() {
            Value::List(l) => (
                l.len() as i64,
                Box::new(
                    (0..l.len()).map(move |i| (Val::Conc(Value::Int(i as i64)), Val::Iface(l[i].clone()))),
                ),
            ),
            Value::Map(m) => {
                let entries: Vec<(Val, Val)> = m
                    .borrow()
                    .iter()
                    .map(|(k, v)| (Val::Conc(Value::String(k.clone())), Val::Iface(v.clone())))
                    .collect();
                (entries.len() as i64, Box::new(entries.into_iter()))
            }
            Value::Int(n) if matches!(val, Val::Conc(_)) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.err(
                        f,
                        At::Node(node),
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                (
                    n.max(0),
                    Box::new((0..n.max(0)).map(|i| (Val::Conc(Value::Int(i)), Val::Conc(Value::Int(i))))),
                )
            }
            Value::Nil => (0, Box::new(std::iter::empty())),
            other => {
                return Err(self.err(
                    f,
                    At::Node(node),
                    format!("range can't iterate over {}", crate::funcs::go_string(&other)),
                ));
            }
        };
        if count == 0 {
            if let Some(e) = &b.else_list {
                return self.walk_list(f, dot, e);
            }
            return Ok(Flow::Normal);
        }
        for (index, elem) in items {
            let decl = &b.pipe.decl;
            if !decl.is_empty() {
                if b.pipe.is_assign {
                    if decl.len() > 1 {
                        self.set_var(f, At::Node(node), &decl[0], index.clone())?;
                        self.set_var(f, At::Node(node), &decl[1], elem.clone())?;
                    } else {
                        self.set_var(f, At::Node(node), &decl[0], elem.clone())?;
                    }
                } else {
                    let n = f.vars.len();
                    f.vars[n - 1].1 = elem.clone();
                    if decl.len() > 1 {
                        f.vars[n - 2].1 = index.clone();
                    }
                }
            }
            let flow = self.walk_list(f, &elem, &b.list);
            f.vars.truncate(mark);
            self.check_limits(f, node, 0)?;
            if let Flow::Break = flow? {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_template(
        &mut self,
        f: &mut Frame,
        dot: &Val,
        node: &Node,
        name: &str,
        pipe: Option<&Pipe>,
    ) -> EResult<()> {
        let Some(tree) = self.lookup(name) else {
            return Err(self.err(
                f,
                At::Node(node),
                format!("template {} not defined", super::lex::go_quote(name)),
            ));
        };
        if f.depth >= MAX_EXEC_DEPTH {
            return Err(self.err(
                f,
                At::Node(node),
                format!("exceeded maximum template depth ({MAX_EXEC_DEPTH})"),
            ));
        }
        let new_dot = match pipe {
            Some(p) => self.eval_pipeline(f, dot, p)?,
            None => Val::Invalid,
        };
        let mut inner = Frame {
            name,
            tree: &tree,
            vars: vec![("$".to_string(), new_dot.clone())],
            out: std::mem::take(&mut f.out),
            depth: f.depth + 1,
        };
        let result = self.walk_list(&mut inner, &new_dot, &tree.body);
        f.out = inner.out;
        result.map(|_| ())
    }

    fn eval_pipeline(&mut self, f: &mut Frame, dot: &Val, pipe: &Pipe) -> EResult<Val> {
        let mut value: Option<Val> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(f, dot, cmd, value.take())?;
            value = Some(v.unwrap_iface());
        }
        let value = value.unwrap_or(Val::Invalid);
        for var in &pipe.decl {
            if pipe.is_assign {
                self.set_var(f, At::Pipe(pipe), var, value.clone())?;
            } else {
                f.vars.push((var.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn set_var(&self, f: &mut Frame, at: At, name: &str, value: Val) -> EResult<()> {
        for (n, v) in f.vars.iter_mut().rev() {
            if n == name {
                *v = value;
                return Ok(());
            }
        }
        Err(self.err(f, at, format!("undefined variable: {name}")))
    }

    fn var_value(&self, f: &Frame, at: At, name: &str) -> EResult<Val> {
        for (n, v) in f.vars.iter().rev() {
            if n == name {
                return Ok(v.clone());
            }
        }
        Err(self.err(f, at, format!("undefined variable: {name}")))
    }

    fn not_a_function(&self, f: &Frame, cmd: &Command, final_: &Option<Val>) -> EResult<()> {
        if cmd.args.len() > 1 || final_.is_some() {
            return Err(self.err(
                f,
                At::Cmd(cmd),
                format!("can't give argument to non-function {}", arg_text(&cmd.args[0])),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, f: &mut Frame, dot: &Val, cmd: &Command, final_: Option<Val>) -> EResult<Val> {
        let first = &cmd.args[0];
        match first {
            Arg::Field(_, fields) => {
                let args = &cmd.args[1..];
                self.eval_field_chain(f, dot, dot.clone(), At::Arg(first), fields, args, final_)
            }
            Arg::Chain(_, inner, fields) => {
                if let Arg::Nil(_) = inner.as_ref() {
                    return Err(self.err(
                        f,
                        At::Arg(first),
                        format!("indirection through explicit nil in {}", arg_text(first)),
                    ));
                }
                let recv = self.eval_arg(f, dot, inner)?;
                self.eval_field_chain(f, dot, recv, At::Arg(first), fields, &cmd.args[1..], final_)
            }
            Arg::Identifier(pos, name) => self.eval_function(f, dot, cmd, *pos, name, final_),
            Arg::Pipe(_, p) => {
                self.not_a_function(f, cmd, &final_)?;
                self.eval_pipeline(f, dot, p)
            }
            Arg::Variable(_, name, fields) => {
                let v = self.var_value(f, At::Arg(first), name)?;
                if fields.is_empty() {
                    self.not_a_function(f, cmd, &final_)?;
                    return Ok(v);
                }
                self.eval_field_chain(f, dot, v, At::Arg(first), fields, &cmd.args[1..], final_)
            }
            Arg::Bool(_, b) => {
                self.not_a_function(f, cmd, &final_)?;
                Ok(Val::Conc(Value::Bool(*b)))
            }
            Arg::Dot(_) => {
                self.not_a_function(f, cmd, &final_)?;
                Ok(dot.clone())
            }
            Arg::Nil(_) => {
                self.not_a_function(f, cmd, &final_)?;
                Err(self.err(f, At::Arg(first), "nil is not a command"))
            }
            Arg::Number(_, n) => {
                self.not_a_function(f, cmd, &final_)?;
                self.ideal_constant(f, first, n).map(Val::Conc)
            }
            Arg::String(_, _, s) => {
                self.not_a_function(f, cmd, &final_)?;
                Ok(Val::Conc(Value::String(Arc::from(s.as_str()))))
            }
        }
    }

    fn ideal_constant(&self, f: &Frame, at: &Arg, n: &parse::Number) -> EResult<Value> {
        if n.complex {
            return Err(self.err(f, At::Arg(at), "complex constants are not supported"));
        }
        let text = &n.text;
        let is_hex_int = text.len() > 2
            && text.starts_with('0')
            && matches!(text.as_bytes()[1], b'x' | b'X')
            && !text.contains(['p', 'P']);
        if let Some(x) = n.float
            && !is_hex_int
            && !n.is_char
            && text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(x));
        }
        if let Some(i) = n.int {
            return Ok(Value::Int(i));
        }
        if n.uint.is_some() {
            return Err(self.err(f, At::Arg(at), format!("{text} overflows int")));
        }
        Ok(Value::Nil)
    }

    /// Evaluates an argument (Go's `evalArg` with an `interface{}` parameter).
    fn eval_arg(&mut self, f: &mut Frame, dot: &Val, arg: &Arg) -> EResult<Val> {
        match arg {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Val::Iface(Value::Nil)),
            Arg::Field(_, fields) => {
                self.eval_field_chain(f, dot, dot.clone(), At::Arg(arg), fields, &[], None)
            }
            Arg::Variable(_, name, fields) => {
                let v = self.var_value(f, At::Arg(arg), name)?;
                if fields.is_empty() {
                    return Ok(v);
                }
                self.eval_field_chain(f, dot, v, At::Arg(arg), fields, &[], None)
            }
            Arg::Pipe(_, p) => self.eval_pipeline(f, dot, p),
            Arg::Identifier(pos, name) => {
                let cmd = Command {
                    pos: *pos,
                    args: vec![arg.clone()],
                };
                self.eval_function(f, dot, &cmd, *pos, name, None)
            }
            Arg::Chain(_, inner, fields) => {
                if let Arg::Nil(_) = inner.as_ref() {
                    return Err(self.err(
                        f,
                        At::Arg(arg),
                        format!("indirection through explicit nil in {}", arg_text(arg)),
                    ));
                }
                let recv = self.eval_arg(f, dot, inner)?;
                self.eval_field_chain(f, dot, recv, At::Arg(arg), fields, &[], None)
            }
            Arg::Bool(_, b) => Ok(Val::Conc(Value::Bool(*b))),
            Arg::Number(_, n) => self.ideal_constant(f, arg, n).map(Val::Conc),
            Arg::String(_, _, s) => Ok(Val::Conc(Value::String(Arc::from(s.as_str())))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field_chain(
        &mut self,
        f: &mut Frame,
        dot: &Val,
        receiver: Val,
        at: At,
        fields: &[String],
        args: &[Arg],
        final_: Option<Val>,
    ) -> EResult<Val> {
        let n = fields.len();
        let mut cur = receiver;
        for field in &fields[..n - 1] {
            cur = self.eval_field(f, dot, at, field, &[], None, cur)?;
        }
        self.eval_field(f, dot, at, &fields[n - 1], args, final_, cur)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        f: &mut Frame,
        dot: &Val,
        at: At,
        name: &str,
        args: &[Arg],
        final_: Option<Val>,
        receiver: Val,
    ) -> EResult<Val> {
        let (value, iface) = match receiver {
            Val::Invalid if self.set.missing_key == MissingKey::Error => {
                return Err(self.err(
                    f,
                    at,
                    format!("nil data; no entry for key {}", super::lex::go_quote(name)),
                ));
            }
            Val::Invalid => return Ok(Val::Invalid),
            Val::Iface(v) => (v, true),
            Val::Conc(v) => (v, false),
        };
        let has_args = !args.is_empty() || final_.is_some();
        match &value {
            Value::Nil => Err(self.err(f, at, format!("nil pointer evaluating interface {{}}.{name}"))),
            Value::Object(o) => {
                if has_args {
                    let mut argv = Vec::with_capacity(args.len() + 1);
                    for a in args {
                        argv.push(self.eval_arg(f, dot, a)?.into_value());
                    }
                    if let Some(fin) = final_ {
                        argv.push(fin.into_value());
                    }
                    return match o.method(name, &argv) {
                        Some(Ok(v)) => Ok(Val::Iface(v)),
                        Some(Err(e)) => Err(self.err(f, at, format!("error calling {name}: {e}"))),
                        None => match o.field(name) {
                            Some(_) => Err(self.err(
                                f,
                                at,
                                format!("{name} has arguments but cannot be invoked as function"),
                            )),
                            None => Err(self.err(
                                f,
                                at,
                                format!("can't evaluate field {name} in type {}", o.type_name()),
                            )),
                        },
                    };
                }
                match o.field(name) {
                    Some(Ok(v)) => Ok(Val::Conc(v)),
                    Some(Err(e)) => Err(self.err(f, at, format!("error calling {name}: {e}"))),
                    None => match o.method(name, &[]) {
                        Some(Ok(v)) => Ok(Val::Conc(v)),
                        Some(Err(e)) => Err(self.err(f, at, format!("error calling {name}: {e}"))),
                        None => Err(self.err(
                            f,
                            at,
                            format!("can't evaluate field {name} in type {}", o.type_name()),
                        )),
                    },
                }
            }
            Value::Map(m)
                if m.is_chart_values() && matches!(name, "AsMap" | "YAML" | "Table" | "PathValue") =>
            {
                let mut argv = Vec::with_capacity(args.len() + 1);
                for a in args {
                    argv.push(self.eval_arg(f, dot, a)?.into_value());
                }
                if let Some(fin) = final_ {
                    argv.push(fin.into_value());
                }
                match chart_values_method(m, name, &argv) {
                    Ok(v) => Ok(Val::Conc(v)),
                    Err(e) => Err(self.err(f, at, e)),
                }
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.err(f, at, format!("{name} is not a method but has arguments")));
                }
                match (m.get(name), self.set.missing_key) {
                    (Some(v), _) => Ok(Val::Iface(v)),
                    (None, MissingKey::Zero) => Ok(Val::Iface(Value::Nil)),
                    (None, MissingKey::Invalid) => Ok(Val::Invalid),
                    (None, MissingKey::Error) => Err(self.err(
                        f,
                        at,
                        format!("map has no entry for key {}", super::lex::go_quote(name)),
                    )),
                }
            }
            other => {
                let typ = if iface { "interface {}" } else { other.type_name() };
                Err(self.err(f, at, format!("can't evaluate field {name} in type {typ}")))
            }
        }
    }

    fn eval_function(
        &mut self,
        f: &mut Frame,
        dot: &Val,
        cmd: &Command,
        pos: usize,
        name: &str,
        final_: Option<Val>,
    ) -> EResult<Val> {
        let args = &cmd.args[1..];
        if let Some(func) = self.set.funcs.get(name).cloned() {
            super::trace::called(name);
            let mut vals = Vec::with_capacity(args.len() + 1);
            for a in args {
                vals.push(self.eval_arg(f, dot, a)?);
            }
            let invalid_final = matches!(final_, Some(Val::Invalid));
            if let Some(fin) = final_ {
                vals.push(fin);
            }
            let argv: Vec<Value> = vals.iter().map(Val::value).collect();
            return match func(&argv) {
                Ok(v) => Ok(Val::Iface(v)),
                Err(e) => {
                    let msg = e.to_string();
                    // Go passes a missing value to a map or slice parameter as that type's
                    // nil (an empty map or list); the function saw nil and refused it.
                    if let Some(zero) = nil_of_refused_type(&msg)
                        && vals.iter().any(|v| !v.is_valid())
                    {
                        if name == "set" {
                            return Err(self.err(
                                f,
                                At::Cmd(cmd),
                                "error calling set: assignment to entry in nil map",
                            ));
                        }
                        let argv: Vec<Value> = vals
                            .iter()
                            .map(|v| if v.is_valid() { v.value() } else { zero.clone() })
                            .collect();
                        return match func(&argv) {
                            Ok(v) => Ok(Val::Iface(v)),
                            Err(e) => Err(self.call_error(f, cmd, pos, name, &e.to_string(), invalid_final)),
                        };
                    }
                    Err(self.call_error(f, cmd, pos, name, &msg, invalid_final))
                }
            };
        }
        match name {
            "include" => self.include(f, dot, cmd, final_),
            "tpl" => self.tpl(f, dot, cmd, final_),
            "and" | "or" => {
                if args.is_empty() && final_.is_none() {
                    return Err(self.err(
                        f,
                        At::Ident(pos, name),
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    ));
                }
                let want = name == "or";
                let mut v = Val::Invalid;
                for a in args {
                    v = self.eval_arg(f, dot, a)?;
                    if v.truth() == want {
                        return Ok(v);
                    }
                }
                if let Some(fin) = final_ {
                    v = fin;
                }
                Ok(v)
            }
            _ if builtins::is_builtin(name) => {
                let mut argv = Vec::with_capacity(args.len() + 1);
                for a in args {
                    argv.push(self.eval_arg(f, dot, a)?);
                }
                if let Some(fin) = final_ {
                    argv.push(fin);
                }
                builtins::call(name, argv).map_err(|e| match e {
                    builtins::BuiltinError::Arity(m) => self.err(f, At::Ident(pos, name), m),
                    builtins::BuiltinError::Call(m) => {
                        self.err(f, At::Cmd(cmd), format!("error calling {name}: {m}"))
                    }
                    builtins::BuiltinError::Plain(m) => self.err(f, At::Cmd(cmd), m),
                })
            }
            _ => Err(self.err(
                f,
                At::Ident(pos, name),
                format!("{} is not a defined function", super::lex::go_quote(name)),
            )),
        }
    }

    /// Wraps a library function's error as Go does: "error calling NAME: ...", except for
    /// the argument checks Go's executor makes itself before calling.
    ///
    /// A typed parameter given the pipeline's invalid value (`.Values.missing | b64enc`)
    /// is Go's "invalid value; expected string"; the function saw nil and names the type.
    fn call_error(
        &self,
        f: &Frame,
        cmd: &Command,
        pos: usize,
        name: &str,
        msg: &str,
        invalid_final: bool,
    ) -> ExecError {
        let prefix = format!("error calling {name}: ");
        let inner = msg.strip_prefix(&prefix).unwrap_or(msg);
        if inner.starts_with("wrong number of args for ") {
            return self.err(f, At::Ident(pos, name), inner);
        }
        if let Some(rest) = inner.strip_prefix("wrong type for value; expected ") {
            if let Some(typ) = rest.strip_suffix("; got interface {}")
                && invalid_final
            {
                return self.err(f, At::Ident(pos, name), format!("invalid value; expected {typ}"));
            }
            return self.err(f, At::Ident(pos, name), inner);
        }
        if inner.starts_with("invalid value; expected ") {
            return self.err(f, At::Ident(pos, name), inner);
        }
        self.err(f, At::Cmd(cmd), format!("{prefix}{inner}"))
    }

    fn collect_args(
        &mut self,
        f: &mut Frame,
        dot: &Val,
        cmd: &Command,
        final_: Option<Val>,
    ) -> EResult<Vec<Val>> {
        let mut argv = Vec::with_capacity(cmd.args.len());
        for a in &cmd.args[1..] {
            argv.push(self.eval_arg(f, dot, a)?);
        }
        if let Some(fin) = final_ {
            argv.push(fin);
        }
        Ok(argv)
    }

    /// Helm's `include NAME DATA`: the named template's output as a string.
    fn include(&mut self, f: &mut Frame, dot: &Val, cmd: &Command, final_: Option<Val>) -> EResult<Val> {
        let argv = self.collect_args(f, dot, cmd, final_)?;
        let pos = cmd.pos;
        if argv.len() != 2 {
            return Err(self.err(
                f,
                At::Ident(pos, "include"),
                format!("wrong number of args for include: want 2 got {}", argv.len()),
            ));
        }
        let name = match &argv[0] {
            Val::Iface(Value::String(s)) | Val::Conc(Value::String(s)) => s.to_string(),
            other => {
                let got = match other {
                    Val::Invalid => "invalid value; expected string".to_string(),
                    v => format!(
                        "wrong type for value; expected string; got {}",
                        v.value().type_name()
                    ),
                };
                return Err(self.err(f, At::Cmd(cmd), got));
            }
        };
        let count = self.included.entry(name.clone()).or_insert(0);
        if *count > MAX_INCLUDE {
            return Err(self.err(
                f,
                At::Cmd(cmd),
                format!("error calling include: rendering template has a nested reference name: {name}: unable to execute template"),
            ));
        }
        *count += 1;
        let data = dot_of(argv[1].value());
        let result = self.execute_template(&name, data);
        if let Some(c) = self.included.get_mut(&name) {
            *c -= 1;
        }
        match result {
            Ok(s) => Ok(Val::Conc(Value::from(s))),
            Err(e) => Err(self.err(f, At::Cmd(cmd), format!("error calling include: {}", e.0))),
        }
    }

    /// Helm's `tpl TEXT VALUES` (Helm 3.12 and later): TEXT, unless it has no `{{`/`}}` at
    /// all, is parsed as a template named like the set ("gotpl") in a copy of the set and
    /// executed with VALUES, whatever their type; `<no value>` is removed.
    fn tpl(&mut self, f: &mut Frame, dot: &Val, cmd: &Command, final_: Option<Val>) -> EResult<Val> {
        let argv = self.collect_args(f, dot, cmd, final_)?;
        let pos = cmd.pos;
        if argv.len() != 2 {
            return Err(self.err(
                f,
                At::Ident(pos, "tpl"),
                format!("wrong number of args for tpl: want 2 got {}", argv.len()),
            ));
        }
        let text = match &argv[0] {
            Val::Iface(Value::String(s)) | Val::Conc(Value::String(s)) => s.to_string(),
            Val::Invalid => return Err(self.err(f, At::Ident(pos, "tpl"), "invalid value; expected string")),
            other => {
                let got = match other.value() {
                    Value::Nil => "interface {}",
                    v => v.type_name(),
                };
                return Err(self.err(
                    f,
                    At::Ident(pos, "tpl"),
                    format!("wrong type for value; expected string; got {got}"),
                ));
            }
        };
        if !text.contains("{{") && !text.contains("}}") {
            return Ok(Val::Conc(Value::from(text)));
        }
        let vals = dot_of(argv[1].value());
        if self.tpl_depth >= MAX_INCLUDE {
            return Err(self.err(
                f,
                At::Cmd(cmd),
                format!("error calling tpl: rendering template has a nested reference name: {SET_NAME}: unable to execute template"),
            ));
        }
        let parsed = match parse::parse(SET_NAME, &text, &|n| self.set.has_func(n)) {
            Ok(p) => p,
            Err(e) => {
                return Err(self.err(
                    f,
                    At::Cmd(cmd),
                    format!(
                        "error calling tpl: cannot parse template {}: {e}",
                        super::lex::go_quote(&text)
                    ),
                ));
            }
        };
        let parse_name: Rc<str> = Rc::from(SET_NAME);
        let src: Rc<str> = Rc::from(text.as_str());
        let mut overlay = HashMap::new();
        overlay.insert(
            SET_NAME.to_string(),
            Rc::new(Tree {
                parse_name: parse_name.clone(),
                src: src.clone(),
                body: parsed.root,
            }),
        );
        for (dname, body) in parsed.defines {
            if is_empty_tree(&body) && self.lookup(&dname).is_some() {
                continue;
            }
            overlay.insert(
                dname,
                Rc::new(Tree {
                    parse_name: parse_name.clone(),
                    src: src.clone(),
                    body,
                }),
            );
        }
        self.overlays.push(overlay);
        self.tpl_depth += 1;
        let result = self.execute_template(SET_NAME, vals);
        self.tpl_depth -= 1;
        self.overlays.pop();
        match result {
            Ok(s) => Ok(Val::Conc(Value::from(s.replace("<no value>", "")))),
            Err(e) => Err(self.err(
                f,
                At::Cmd(cmd),
                format!(
                    "error calling tpl: error during tpl function execution for {}: {}",
                    super::lex::go_quote(&text),
                    e.0
                ),
            )),
        }
    }

    fn print_value(&self, f: &mut Frame, at: At, v: &Val) -> EResult<()> {
        match v {
            Val::Invalid => f.out.push_str("<no value>"),
            Val::Iface(x) | Val::Conc(x) => match x {
                Value::Function(_) => {
                    return Err(self.err(
                        f,
                        at,
                        format!("can't print {} of type {}", at.text(), x.type_name()),
                    ));
                }
                Value::String(s) => f.out.push_str(s),
                other => f.out.push_str(&crate::funcs::go_string(other)),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
