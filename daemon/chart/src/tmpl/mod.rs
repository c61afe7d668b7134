//! Go's `text/template`, as Helm runs it: our own lexer, parser and executor, written from
//! Go's documentation and observed behaviour (Go's own `text/template` is the judge: see
//! `daemon/chart/oracle/`). We own it rather than adapt a general-purpose crate because
//! charts depend on exact Go semantics that a reimplementation with its own value model
//! gets wrong: maps shared by reference (`set` mutates what every holder sees), pipelines
//! unwrapping nil interfaces (`(.Values.a).b` is nil-safe), `missingkey=zero`, Go's `fmt`
//! printing, trailing pipes, and Go's error texts with `template:line:col`.
//!
//! ```text
//! source --lex.rs--> items --parse.rs--> trees --exec.rs (builtins.rs, fmt.rs)--> text
//! ```

mod builtins;
mod exec;
mod fmt;
mod lex;
mod parse;
pub mod trace;
pub mod value;

pub use exec::{Limits, MissingKey, Set};
pub use value::{Dict, Error, FuncMap, Map, Object, Result, Value, ValueFunc};

/// Go's `strconv.Quote` (also sprig's `quote`, which is `%q`).
pub(crate) use lex::go_quote;

/// Parses `tpl` as template "t" with `funcs` and executes it with `data`: Go's texts on
/// error. For the function library's tests.
#[cfg(test)]
pub(crate) fn render_for_test(
    tpl: &str,
    data: &Value,
    funcs: &FuncMap,
) -> std::result::Result<String, String> {
    let mut set = Set::new(funcs.clone());
    set.add("t", tpl)?;
    set.execute("t", data)
}
