//! The template engine: every template of a chart and its subcharts in one Go template
//! set ([`crate::tmpl::Set`]), executed the way Helm's `engine.Render` does.
//!
//! ```text
//! chart + values --> contexts per chart (.Values .Chart .Files .Release .Capabilities .Subcharts)
//!                --> parse every template (deepest path first, so parents' defines win)
//!                --> execute each non-partial template --> {path: text}
//! ```
//!
//! `include` and `tpl` live in the executor (they need the template set); `required`,
//! `fail` and `lookup` are plain functions added to sprig's here.

pub mod convert;
pub mod objects;

use std::sync::{Arc, OnceLock};

use crate::tmpl::{Error, FuncMap, Limits, Set, Value};

/// Markers Helm wraps around `required`/`fail` messages to print them without the trace.
const WARN_START: &str = "HELM_ERR_START";
const WARN_END: &str = "HELM_ERR_END";

/// One template to parse: its full name (`mychart/templates/x.yaml`) and source.
pub(crate) struct Source {
    pub name: String,
    pub src: String,
}

/// A parsed template set, ready to execute.
pub(crate) struct Engine {
    set: Set,
}

/// Sprig's and Helm's functions, built once per process (they hold no render state).
fn functions() -> Arc<FuncMap> {
    static FUNCS: OnceLock<Arc<FuncMap>> = OnceLock::new();
    FUNCS
        .get_or_init(|| {
            let mut m = crate::funcs::function_map();
            helm_functions(&mut m);
            Arc::new(m)
        })
        .clone()
}

/// [`functions`] without the ones that reach the network: `getHostByName` (a DNS
/// lookup, a way to send rendered data, secrets included, out in a host name) fails
/// with a message saying why.
fn offline_functions() -> Arc<FuncMap> {
    static FUNCS: OnceLock<Arc<FuncMap>> = OnceLock::new();
    FUNCS
        .get_or_init(|| {
            let mut m = (*functions()).clone();
            m.insert(
                "getHostByName".into(),
                Arc::new(|_: &[Value]| {
                    Err(exec_err(
                        "getHostByName is disabled in this render (it resolves DNS names, a way to send data out)"
                            .into(),
                    ))
                }),
            );
            Arc::new(m)
        })
        .clone()
}

impl Engine {
    /// Parses `sources` in the given order (later definitions win).
    pub fn new(sources: &[Source]) -> Result<Engine, String> {
        Self::with_network(sources, true)
    }

    /// [`Engine::new`]; with `network` false, functions that reach the network fail.
    pub fn with_network(sources: &[Source], network: bool) -> Result<Engine, String> {
        let funcs = if network { functions() } else { offline_functions() };
        let mut set = Set::with_funcs(funcs);
        for s in sources {
            set.add(&s.name, &s.src)
                .map_err(|e| parse_error_text(&s.name, &e))?;
        }
        Ok(Engine { set })
    }

    /// Executes the template `name` with `data`; errors are formatted as Helm prints them.
    pub fn execute(&self, name: &str, data: &Value) -> Result<String, String> {
        self.execute_limited(name, data, &Limits::default())
    }

    /// [`Engine::execute`] within a deadline and an output budget.
    pub fn execute_limited(&self, name: &str, data: &Value, limits: &Limits) -> Result<String, String> {
        match self.set.execute_limited(name, data, limits) {
            Ok(out) => Ok(out.replace("<no value>", "")),
            Err(e) => Err(helm_exec_error(name, &e)),
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

/// Helm's `cleanupParseError` (`template: NAME:LINE: MSG` -> `parse error at (NAME:LINE): MSG`).
fn parse_error_text(name: &str, msg: &str) -> String {
    let parts: Vec<&str> = msg.split(": ").collect();
    match (parts.get(1), parts.last()) {
        (Some(loc), Some(last)) if parts.len() > 2 => format!("parse error at ({loc}): {last}"),
        _ => format!("parse error in ({name}): {msg}"),
    }
}

fn exec_err(msg: String) -> Error {
    Error::Exec(msg)
}

fn arg_str(args: &[Value], i: usize, func: &str) -> Result<String, Error> {
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

/// `required`, `fail`, `lookup`: Helm's functions that need no template set.
fn helm_functions(m: &mut FuncMap) {
    m.insert(
        "required".into(),
        Arc::new(|args: &[Value]| {
            if args.len() != 2 {
                return Err(exec_err(format!(
                    "wrong number of args for required: want 2 got {}",
                    args.len()
                )));
            }
            let warn = arg_str(args, 0, "required")?;
            match &args[1] {
                Value::Nil => Err(exec_err(format!("{WARN_START}{warn}{WARN_END}"))),
                Value::String(s) if s.is_empty() => Err(exec_err(format!("{WARN_START}{warn}{WARN_END}"))),
                v => Ok(v.clone()),
            }
        }),
    );
    m.insert(
        "fail".into(),
        Arc::new(|args: &[Value]| {
            if args.len() != 1 {
                return Err(exec_err(format!(
                    "wrong number of args for fail: want 1 got {}",
                    args.len()
                )));
            }
            let msg = arg_str(args, 0, "fail")?;
            Err(exec_err(format!("{WARN_START}{msg}{WARN_END}")))
        }),
    );
    // Without a cluster (`helm template`), lookup finds nothing: an empty map. Its four
    // parameters are strings, as in Helm.
    m.insert(
        "lookup".into(),
        Arc::new(|args: &[Value]| {
            if args.len() != 4 {
                return Err(exec_err(format!(
                    "wrong number of args for lookup: want 4 got {}",
                    args.len()
                )));
            }
            for a in args {
                if !matches!(a, Value::String(_)) {
                    let got = match a {
                        Value::Nil => "interface {}",
                        other => other.type_name(),
                    };
                    return Err(exec_err(format!(
                        "wrong type for value; expected string; got {got}"
                    )));
                }
            }
            Ok(Value::empty_map())
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

#[cfg(test)]
mod tests;
