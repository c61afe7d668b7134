//! The template engine: every template of a chart and its subcharts in one Go template
//! set, executed the way Helm's `engine.Render` does.
//!
//! ```text
//! chart + values --> contexts per chart (.Values .Chart .Files .Release .Capabilities .Subcharts)
//!                --> parse every template (deepest path first, so parents' defines win)
//!                --> rewrite (rewrite.rs: positions, methods, Go printing)
//!                --> execute each non-partial template --> {path: text}
//! ```
//!
//! `include` and `tpl` need the template set they run in; the set's functions hold a
//! `Weak` reference to [`Shared`], which owns the set, so no reference cycle keeps a
//! rendered chart alive.

pub mod convert;
pub mod objects;
pub(crate) mod rewrite;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use gotmpl::parse::{ListNode, Parser};
use gotmpl::{FuncMap, Template, TemplateError, Value};

use rewrite::{CALL, FIELD, PRINT, Rewriter, Site, SiteKind};

/// Helm's limit on nested `include`/`tpl` references.
const MAX_INCLUDE_DEPTH: usize = 1000;
/// Markers Helm wraps around `required`/`fail` messages to print them without the trace.
const WARN_START: &str = "HELM_ERR_START";
const WARN_END: &str = "HELM_ERR_END";
/// Go's built-in template functions, which `gotmpl` provides itself.
const GO_BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js", "urlquery",
    "call", "eq", "ne", "lt", "le", "gt", "ge",
];

/// One template to parse: its full name (`mychart/templates/x.yaml`) and source.
pub(crate) struct Source {
    pub name: String,
    pub src: String,
}

type ParsedTpl = (ListNode, Vec<(String, ListNode)>);

/// State shared by the render and the functions that need it.
pub(crate) struct Shared {
    sites: RwLock<Vec<Arc<Site>>>,
    funcs: FuncMap,
    /// The template set in use; `tpl` pushes a clone with its own text while it runs.
    stack: Mutex<Vec<Arc<Template>>>,
    depth: AtomicUsize,
    tpl_cache: Mutex<HashMap<(String, String), ParsedTpl>>,
}

/// A parsed and rewritten template set, ready to execute.
pub(crate) struct Engine {
    shared: Arc<Shared>,
}

/// The sprig/Helm function map, built once per process (it holds no render state).
fn base_functions() -> &'static FuncMap {
    static BASE: std::sync::OnceLock<FuncMap> = std::sync::OnceLock::new();
    BASE.get_or_init(crate::funcs::function_map)
}

fn exec_err(msg: String) -> TemplateError {
    TemplateError::Exec(msg)
}

/// The message of a template error without `gotmpl`'s "execution error: " prefix.
pub(crate) fn err_text(e: &TemplateError) -> String {
    match e {
        TemplateError::Exec(s) => s.clone(),
        TemplateError::UndefinedTemplate(n) => {
            format!("no template {n:?} associated with template \"gotpl\"")
        }
        other => other.to_string(),
    }
}

impl Engine {
    /// Parses and rewrites `sources` in the given order (later definitions win).
    pub fn new(sources: &[Source]) -> Result<Engine, String> {
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let mut funcs = base_functions().clone();
            context_functions(&mut funcs, weak.clone());
            Shared {
                sites: RwLock::new(Vec::new()),
                funcs,
                stack: Mutex::new(Vec::new()),
                depth: AtomicUsize::new(0),
                tpl_cache: Mutex::new(HashMap::new()),
            }
        });
        let mut all = shared.funcs.clone();
        dispatch_functions(&mut all, Arc::downgrade(&shared));
        let mut set = Template::new("gotpl").funcs(all);
        for s in sources {
            let (tree, defines) = shared.parse(&s.name, &s.src)?;
            set = set.add_parse_tree(&s.name, tree);
            for (name, body) in defines {
                set = set.add_parse_tree(&name, body);
            }
        }
        shared
            .stack
            .lock()
            .map_err(|_| "template engine lock poisoned".to_string())?
            .push(Arc::new(set));
        Ok(Engine { shared })
    }

    /// Executes the template `name` with `data`; errors are formatted as Helm prints them.
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, String> {
        let set = self.shared.current().map_err(|e| err_text(&e))?;
        self.shared.depth.store(0, Ordering::SeqCst);
        match set.execute_template_to_string(name, data) {
            Ok(out) => Ok(out.replace("<no value>", "")),
            Err(e) => Err(helm_exec_error(name, &err_text(&e))),
        }
    }
}

/// Helm's `cleanupExecError`: `required`/`fail` messages print as `execution error at
/// (LOCATION): MESSAGE`, everything else keeps Go's full trace.
fn helm_exec_error(file: &str, msg: &str) -> String {
    let msg = if msg.starts_with("template: ") {
        msg.to_string()
    } else {
        format!("template: {file}: {msg}")
    };
    if let (Some(start), Some(end)) = (msg.find(WARN_START), msg.rfind(WARN_END)) {
        let location = msg.split(": ").nth(1).unwrap_or(file);
        let inner = msg.get(start + WARN_START.len()..end).unwrap_or_default();
        return format!("execution error at ({location}): {inner}");
    }
    msg
}

impl Shared {
    fn current(&self) -> Result<Arc<Template>, TemplateError> {
        let stack = self
            .stack
            .lock()
            .map_err(|_| exec_err("template engine lock poisoned".into()))?;
        stack
            .last()
            .cloned()
            .ok_or_else(|| exec_err("no template set".into()))
    }

    /// Parses one source and rewrites its file body and its `define`s.
    fn parse(&self, name: &str, src: &str) -> Result<ParsedTpl, String> {
        let parser = Parser::with_name(Some(name), src, "{{", "}}").map_err(|e| parse_error(name, &e))?;
        let (mut tree, defines) = parser.parse().map_err(|e| parse_error(name, &e))?;
        let mut sites = self
            .sites
            .write()
            .map_err(|_| "template engine lock poisoned".to_string())?;
        Rewriter {
            src,
            parse_name: name,
            exec_name: name,
            funcs: &self.funcs,
            sites: &mut sites,
        }
        .list(&mut tree)
        .map_err(|m| parse_error_text(name, &m))?;
        let mut out = Vec::new();
        for mut d in defines {
            let dname = d.name.to_string();
            Rewriter {
                src,
                parse_name: name,
                exec_name: &dname,
                funcs: &self.funcs,
                sites: &mut sites,
            }
            .list(&mut d.body)
            .map_err(|m| parse_error_text(name, &m))?;
            out.push((dname, d.body));
        }
        Ok((tree, out))
    }

    fn site(&self, id: &Value) -> Result<Arc<Site>, TemplateError> {
        let idx = match id {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        };
        let sites = self
            .sites
            .read()
            .map_err(|_| exec_err("template engine lock poisoned".into()))?;
        idx.and_then(|i| sites.get(i).cloned())
            .ok_or_else(|| exec_err("internal: unknown call site".into()))
    }

    fn include(&self, name: &str, data: &Value) -> Result<String, TemplateError> {
        let depth = self.depth.fetch_add(1, Ordering::SeqCst);
        let result = if depth >= MAX_INCLUDE_DEPTH {
            Err(exec_err(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            )))
        } else {
            self.current()
                .and_then(|set| set.execute_template_to_string(name, data))
                .map_err(|e| exec_err(err_text(&e)))
        };
        self.depth.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn tpl(&self, text: &str, vals: &Value) -> Result<String, TemplateError> {
        let name = match objects::walk(vals.clone(), &["Template".into(), "Name".into()], &[]) {
            Ok(Value::String(n)) => n.to_string(),
            _ => {
                return Err(exec_err(format!(
                    "cannot retrieve Template.Name from values inside tpl function: {text}"
                )));
            }
        };
        let key = (name.clone(), text.to_string());
        let cached = self
            .tpl_cache
            .lock()
            .map_err(|_| exec_err("lock poisoned".into()))?
            .get(&key)
            .cloned();
        let (tree, defines) = match cached {
            Some(p) => p,
            None => {
                let parsed = self
                    .parse(&name, text)
                    .map_err(|m| exec_err(format!("cannot parse template {text:?}: {m}")))?;
                self.tpl_cache
                    .lock()
                    .map_err(|_| exec_err("lock poisoned".into()))?
                    .insert(key, parsed.clone());
                parsed
            }
        };
        let mut set = (*self.current()?).clone().add_parse_tree(&name, tree);
        for (n, body) in defines {
            set = set.add_parse_tree(&n, body);
        }
        let set = Arc::new(set);
        self.stack
            .lock()
            .map_err(|_| exec_err("lock poisoned".into()))?
            .push(set.clone());
        let depth = self.depth.fetch_add(1, Ordering::SeqCst);
        let result = if depth >= MAX_INCLUDE_DEPTH {
            Err(exec_err(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            )))
        } else {
            set.execute_template_to_string(&name, vals)
        };
        self.depth.fetch_sub(1, Ordering::SeqCst);
        self.stack
            .lock()
            .map_err(|_| exec_err("lock poisoned".into()))?
            .pop();
        match result {
            Ok(out) => Ok(out.replace("<no value>", "")),
            Err(e) => Err(exec_err(format!(
                "error during tpl function execution for {text:?}: {}",
                err_text(&e)
            ))),
        }
    }
}

fn parse_error(name: &str, e: &TemplateError) -> String {
    match e {
        TemplateError::Parse { line, message, .. } | TemplateError::Lex { line, message, .. } => {
            format!("parse error at ({name}:{line}): {message}")
        }
        other => format!("parse error in ({name}): {other}"),
    }
}

/// Helm's `cleanupParseError` for our own parse-time checks (`template: NAME:LINE: MSG`).
fn parse_error_text(name: &str, msg: &str) -> String {
    let parts: Vec<&str> = msg.split(": ").collect();
    match (parts.get(1), parts.last()) {
        (Some(loc), Some(last)) if parts.len() > 2 => format!("parse error at ({loc}): {last}"),
        _ => format!("parse error in ({name}): {msg}"),
    }
}

fn upgrade(w: &Weak<Shared>) -> Result<Arc<Shared>, TemplateError> {
    w.upgrade()
        .ok_or_else(|| exec_err("template engine is gone".into()))
}

fn arg_str(args: &[Value], i: usize, func: &str) -> Result<String, TemplateError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        Some(other) => Err(exec_err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        ))),
        None => Err(exec_err(format!(
            "wrong number of args for {func}: want {} got {}",
            i + 1,
            args.len()
        ))),
    }
}

/// `include`, `tpl`, `required`, `fail`, `lookup`: Helm's functions that need the render.
fn context_functions(m: &mut FuncMap, weak: Weak<Shared>) {
    let w = weak.clone();
    m.insert(
        "include".into(),
        Arc::new(move |args: &[Value]| {
            let name = arg_str(args, 0, "include")?;
            let data = args.get(1).cloned().unwrap_or(Value::Nil);
            upgrade(&w)?
                .include(&name, &data)
                .map(|s| Value::String(s.into()))
        }),
    );
    let w = weak;
    m.insert(
        "tpl".into(),
        Arc::new(move |args: &[Value]| {
            let text = arg_str(args, 0, "tpl")?;
            let vals = args.get(1).cloned().unwrap_or(Value::Nil);
            upgrade(&w)?.tpl(&text, &vals).map(|s| Value::String(s.into()))
        }),
    );
    m.insert(
        "required".into(),
        Arc::new(|args: &[Value]| {
            let warn = arg_str(args, 0, "required")?;
            match args.get(1) {
                None | Some(Value::Nil) => Err(exec_err(format!("{WARN_START}{warn}{WARN_END}"))),
                Some(Value::String(s)) if s.is_empty() => {
                    Err(exec_err(format!("{WARN_START}{warn}{WARN_END}")))
                }
                Some(v) => Ok(v.clone()),
            }
        }),
    );
    m.insert(
        "fail".into(),
        Arc::new(|args: &[Value]| {
            let msg = arg_str(args, 0, "fail")?;
            Err(exec_err(format!("{WARN_START}{msg}{WARN_END}")))
        }),
    );
    m.insert(
        "lookup".into(),
        Arc::new(|_: &[Value]| Ok(Value::Map(Arc::new(BTreeMap::new())))),
    );
}

/// The three functions rewritten templates call (see rewrite.rs).
fn dispatch_functions(m: &mut FuncMap, weak: Weak<Shared>) {
    let w = weak.clone();
    m.insert(
        CALL.into(),
        Arc::new(move |args: &[Value]| {
            let shared = upgrade(&w)?;
            let site = shared.site(args.first().unwrap_or(&Value::Nil))?;
            let SiteKind::Call { name, func } = &site.kind else {
                return Err(exec_err("internal: call site expected".into()));
            };
            func(args.get(1..).unwrap_or_default()).map_err(|e| {
                // Some library functions already say "error calling NAME"; say it once.
                let inner = err_text(&e);
                let prefix = format!("error calling {name}: ");
                let inner = inner.strip_prefix(&prefix).unwrap_or(&inner);
                exec_err(format!(
                    "template: {}: executing {:?} at <{}>: {prefix}{inner}",
                    site.location, site.exec_name, site.context
                ))
            })
        }),
    );
    let w = weak;
    m.insert(
        FIELD.into(),
        Arc::new(move |args: &[Value]| {
            let shared = upgrade(&w)?;
            let site = shared.site(args.first().unwrap_or(&Value::Nil))?;
            let SiteKind::Field { fields } = &site.kind else {
                return Err(exec_err("internal: field site expected".into()));
            };
            let receiver = args.get(1).cloned().unwrap_or(Value::Nil);
            objects::walk(receiver, fields, args.get(2..).unwrap_or_default()).map_err(|msg| {
                exec_err(format!(
                    "template: {}: executing {:?} at <{}>: {msg}",
                    site.location, site.exec_name, site.context
                ))
            })
        }),
    );
    m.insert(
        PRINT.into(),
        Arc::new(|args: &[Value]| {
            Ok(match args.last() {
                None | Some(Value::Nil) => Value::Nil,
                Some(v @ Value::String(_)) => v.clone(),
                Some(v) => Value::String(crate::funcs::go_string(v).into()),
            })
        }),
    );
}

/// Renders `--name-template` (a Go template with sprig, no data) into a release name.
pub(crate) fn render_name_template(t: &str) -> Result<String, crate::error::ChartError> {
    let source = Source {
        name: "name-template".into(),
        src: t.to_string(),
    };
    let engine = Engine::new(&[source]).map_err(crate::error::ChartError::TemplateParse)?;
    engine
        .execute("name-template", &Value::Nil)
        .map_err(crate::error::ChartError::TemplateExec)
}

/// Whether `name` is a function templates may call (ours, sprig's or Go's).
pub(crate) fn is_builtin(name: &str) -> bool {
    GO_BUILTINS.contains(&name)
}

#[cfg(test)]
mod tests;
