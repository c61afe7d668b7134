//! Rewrites parsed templates so that Helm's behaviour fits `gotmpl`'s function interface.
//!
//! `gotmpl` calls functions with plain arguments and reports execution errors without a
//! position. Helm users expect Go's `template: FILE:LINE:COL: executing "NAME" at
//! <EXPR>: ...`, methods on objects (`.Files.Get "x"`, `.Capabilities.APIVersions.Has
//! "v1"`), Go's number formatting and Go's nil-pointer errors. So after parsing, every
//!
//! * function call `f a b` becomes `__convoy_call ID a b`,
//! * field chain `.A.B` / `$x.A` / `(expr).A` becomes `__convoy_field ID RECEIVER args...`,
//! * printing action gets a final `| __convoy_print` (Go's `fmt` formatting),
//!
//! where `ID` indexes a [`Site`] that remembers the function, the fields, and the Go-style
//! location and source text for error messages. `and`/`or` stay as they are (they are
//! lazy); their arguments are rewritten.

use std::sync::Arc;

use gotmpl::parse::{CommandNode, Expr, ListNode, Node, Number, PipeNode, Pos, SmolStr};
use gotmpl::{FuncMap, ValueFunc};

pub(crate) const CALL: &str = "__convoy_call";
pub(crate) const FIELD: &str = "__convoy_field";
pub(crate) const PRINT: &str = "__convoy_print";

/// What a rewritten call site does.
pub(crate) enum SiteKind {
    /// Calls a template function.
    Call { name: String, func: ValueFunc },
    /// Walks fields (and calls a method for the last one when given arguments).
    Field { fields: Vec<String> },
}

/// One rewritten expression with what an error message needs to say about it.
pub(crate) struct Site {
    pub kind: SiteKind,
    /// `FILE:LINE:COL` with Go's 0-based byte column.
    pub location: String,
    /// The template being executed (a file name or a `define` name).
    pub exec_name: String,
    /// The expression as written, Go's `Node.String()`.
    pub context: String,
}

/// Rewrites one parsed tree (a file body or a `define` body).
pub(crate) struct Rewriter<'a> {
    pub src: &'a str,
    pub parse_name: &'a str,
    pub exec_name: &'a str,
    pub funcs: &'a FuncMap,
    pub sites: &'a mut Vec<Arc<Site>>,
}

impl Rewriter<'_> {
    pub fn list(&mut self, list: &mut ListNode) -> Result<(), String> {
        for node in &mut list.nodes {
            self.node(node)?;
        }
        Ok(())
    }

    fn node(&mut self, node: &mut Node) -> Result<(), String> {
        match node {
            Node::List(l) => self.list(l),
            Node::Action(a) => {
                self.pipe(&mut a.pipe)?;
                if a.pipe.decl.is_empty() {
                    a.pipe.commands.push(CommandNode {
                        pos: a.pipe.pos,
                        args: vec![ident(a.pipe.pos, PRINT)],
                    });
                }
                Ok(())
            }
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                self.pipe(&mut b.pipe)?;
                self.list(&mut b.body)?;
                if let Some(e) = &mut b.else_body {
                    self.list(e)?;
                }
                Ok(())
            }
            Node::Template(t) => match &mut t.pipe {
                Some(p) => self.pipe(p),
                None => Ok(()),
            },
            Node::Define(d) => self.list(&mut d.body),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => Ok(()),
        }
    }

    fn pipe(&mut self, pipe: &mut PipeNode) -> Result<(), String> {
        for cmd in &mut pipe.commands {
            self.command(cmd)?;
        }
        Ok(())
    }

    fn command(&mut self, cmd: &mut CommandNode) -> Result<(), String> {
        let Some(first) = cmd.args.first() else {
            return Ok(());
        };
        match first {
            Expr::Identifier(pos, name) => {
                let name = name.to_string();
                let pos = *pos;
                if name == "and" || name == "or" {
                    return self.args(&mut cmd.args[1..]);
                }
                let Some(func) = self.lookup(&name, pos)? else {
                    // Go's own builtins run inside gotmpl; only their arguments change.
                    return self.args(&mut cmd.args[1..]);
                };
                let context = command_text(cmd);
                let id = self.site(SiteKind::Call { name, func }, cmd.pos, context);
                cmd.args[0] = ident(pos, CALL);
                cmd.args.insert(1, number(pos, id));
                self.args(&mut cmd.args[2..])
            }
            Expr::Chain(_, inner, _)
                if matches!(inner.as_ref(), Expr::Identifier(..)) && cmd.args.len() > 1 =>
            {
                // `f.Field a b`: gotmpl calls f with the arguments, then walks the fields.
                if let Expr::Identifier(pos, name) = inner.as_ref() {
                    self.lookup(name, *pos)?;
                }
                self.args(&mut cmd.args[1..])
            }
            Expr::Field(..) | Expr::Variable(..) | Expr::Chain(..) if has_fields(first) => {
                let expr = cmd.args.remove(0);
                let pos = expr.pos();
                let (receiver, fields, context) = self.split_fields(expr)?;
                let id = self.site(SiteKind::Field { fields }, pos, context);
                cmd.args.insert(0, receiver);
                cmd.args.insert(0, number(pos, id));
                cmd.args.insert(0, ident(pos, FIELD));
                self.args(&mut cmd.args[3..])
            }
            _ => self.args(&mut cmd.args[..]),
        }
    }

    fn args(&mut self, args: &mut [Expr]) -> Result<(), String> {
        for a in args {
            self.arg(a)?;
        }
        Ok(())
    }

    fn arg(&mut self, e: &mut Expr) -> Result<(), String> {
        match e {
            Expr::Pipe(_, p) => self.pipe(p),
            Expr::Identifier(pos, name) => self.lookup(name, *pos).map(|_| ()),
            Expr::Field(..) | Expr::Variable(..) | Expr::Chain(..) if has_fields(e) => {
                let pos = e.pos();
                let expr = std::mem::replace(e, Expr::Nil(pos));
                let (receiver, fields, context) = self.split_fields(expr)?;
                let id = self.site(SiteKind::Field { fields }, pos, context);
                *e = Expr::Pipe(
                    pos,
                    PipeNode {
                        pos,
                        decl: vec![],
                        commands: vec![CommandNode {
                            pos,
                            args: vec![ident(pos, FIELD), number(pos, id), receiver],
                        }],
                        is_assign: false,
                    },
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Splits a field expression into the receiver to evaluate and the field names.
    fn split_fields(&mut self, e: Expr) -> Result<(Expr, Vec<String>, String), String> {
        let context = expr_text(&e);
        Ok(match e {
            Expr::Field(pos, fields) => (Expr::Dot(pos), names(&fields), context),
            Expr::Variable(pos, var, fields) => (Expr::Variable(pos, var, vec![]), names(&fields), context),
            Expr::Chain(_, inner, fields) => {
                let mut inner = *inner;
                self.arg(&mut inner)?;
                (inner, names(&fields), context)
            }
            other => (other, vec![], context),
        })
    }

    /// The function to wrap; `None` for Go builtins that gotmpl runs itself.
    fn lookup(&self, name: &str, pos: Pos) -> Result<Option<ValueFunc>, String> {
        if let Some(f) = self.funcs.get(name) {
            return Ok(Some(f.clone()));
        }
        if super::is_builtin(name) {
            return Ok(None);
        }
        Err(format!(
            "template: {}:{}: function {name:?} not defined",
            self.parse_name, pos.line
        ))
    }

    fn site(&mut self, kind: SiteKind, pos: Pos, context: String) -> usize {
        let location = format!(
            "{}:{}:{}",
            self.parse_name,
            pos.line,
            column(self.src, pos.offset)
        );
        self.sites.push(Arc::new(Site {
            kind,
            location,
            exec_name: self.exec_name.to_string(),
            context,
        }));
        self.sites.len() - 1
    }
}

fn has_fields(e: &Expr) -> bool {
    match e {
        Expr::Field(_, f) | Expr::Chain(_, _, f) => !f.is_empty(),
        Expr::Variable(_, _, f) => !f.is_empty(),
        _ => false,
    }
}

fn names(fields: &[SmolStr]) -> Vec<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

fn ident(pos: Pos, name: &str) -> Expr {
    Expr::Identifier(pos, SmolStr::new(name))
}

fn number(pos: Pos, id: usize) -> Expr {
    Expr::Number(pos, Number::Int(i64::try_from(id).unwrap_or(i64::MAX)))
}

/// Go's error column: bytes since the start of the line, 0-based.
fn column(src: &str, offset: usize) -> usize {
    let offset = offset.min(src.len());
    let before = src.as_bytes().get(..offset).unwrap_or_default();
    match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => offset - nl - 1,
        None => offset,
    }
}

/// Go's `CommandNode.String()`.
pub(crate) fn command_text(cmd: &CommandNode) -> String {
    cmd.args.iter().map(expr_text).collect::<Vec<_>>().join(" ")
}

/// Go's `PipeNode.String()`.
pub(crate) fn pipe_text(p: &PipeNode) -> String {
    let mut s = String::new();
    if !p.decl.is_empty() {
        s.push_str(
            &p.decl
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        );
        s.push_str(if p.is_assign { " = " } else { " := " });
    }
    s.push_str(
        &p.commands
            .iter()
            .map(command_text)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s
}

/// Go's `Node.String()` for expressions.
pub(crate) fn expr_text(e: &Expr) -> String {
    let fields = |f: &[SmolStr]| f.iter().map(|x| format!(".{x}")).collect::<String>();
    match e {
        Expr::Dot(_) => ".".into(),
        Expr::Field(_, f) => fields(f),
        Expr::Variable(_, v, f) => format!("{v}{}", fields(f)),
        Expr::Identifier(_, n) => n.to_string(),
        Expr::String(_, s) => format!("{s:?}"),
        Expr::Number(_, Number::Int(i)) => i.to_string(),
        Expr::Number(_, Number::Uint(u)) => u.to_string(),
        Expr::Number(_, Number::Float(f)) => f.to_string(),
        Expr::Bool(_, b) => b.to_string(),
        Expr::Nil(_) => "nil".into(),
        Expr::Pipe(_, p) => format!("({})", pipe_text(p)),
        Expr::Chain(_, inner, f) => match inner.as_ref() {
            Expr::Pipe(..) => format!("{}{}", expr_text(inner), fields(f)),
            other => format!("{}{}", expr_text(other), fields(f)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_columns_are_zero_based_bytes() {
        let src = "a\nbc {{ x }}";
        assert_eq!(column(src, 5), 3);
        assert_eq!(column(src, 0), 0);
        assert_eq!(column(src, 999), 10);
    }
}
