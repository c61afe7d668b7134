//! Go's `fmt.Sprint`, `Sprintln` and `Sprintf` over template values: what `print`,
//! `println` and `printf` produce, including Go's error notes (`%!d(float64=8080)`,
//! `%!s(MISSING)`, `%!(EXTRA int=1)`), which Helm users see when a verb does not fit.

use super::lex::go_quote;
use super::value::Value;
use crate::funcs::{format_float_g, go_string};

fn is_string(v: &Value) -> bool {
    matches!(v, Value::String(_))
}

/// `fmt.Sprint`: operands printed with `%v`, a space between two that are not strings.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !is_string(a) && !is_string(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&go_string(a));
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands, and a newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out = args.iter().map(go_string).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf`.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        // Flags.
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            chars.next();
        }
        // Width.
        if let Some(&(_, '*')) = chars.peek() {
            chars.next();
            match args.get(argi) {
                Some(Value::Int(w)) => {
                    if *w < 0 {
                        spec.minus = true;
                    }
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let mut w = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                w.push(d);
                chars.next();
            }
            if !w.is_empty() {
                spec.width = w.parse().ok();
            }
        }
        // Precision.
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                match args.get(argi) {
                    Some(Value::Int(p)) if *p >= 0 => spec.prec = Some(*p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let mut p = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    p.push(d);
                    chars.next();
                }
                spec.prec = Some(p.parse().unwrap_or(0));
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == 'v' {
            // %+v only names struct fields; %#v is Go syntax.
            spec.plus = false;
            if spec.sharp {
                match args.get(argi) {
                    Some(arg) => {
                        argi += 1;
                        let text = go_syntax(arg);
                        out.push_str(&pad(
                            &Spec {
                                sharp: false,
                                zero: false,
                                ..spec
                            },
                            text,
                            's',
                            arg,
                        ));
                    }
                    None => out.push_str("%!v(MISSING)"),
                }
                continue;
            }
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let text = format_one(verb, &spec, arg);
        // A container's elements were padded one by one.
        match arg {
            Value::List(_) | Value::Map(_) => out.push_str(&text),
            _ => out.push_str(&pad(&spec, text, verb, arg)),
        }
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| match a {
                Value::Nil => "<nil>".to_string(),
                a => format!("{}={}", a.type_name(), go_string(a)),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// Go's `%#v`: a value as Go source.
fn go_syntax(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => format!("0x{u:x}"),
        Value::Float(f) => format_float_g(*f),
        Value::String(s) => go_quote(s),
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(go_syntax_elem).collect();
            format!("[]interface {{}}{{{}}}", parts.join(", "))
        }
        Value::Map(m) => {
            let parts: Vec<String> = m
                .borrow()
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_syntax_elem(v)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", parts.join(", "))
        }
        Value::Object(o) => go_syntax(&o.to_value()),
        Value::Function(_) => "(func(...interface {}) (interface {}, error))(0xc000000000)".into(),
    }
}

/// An element of an `interface{}` container in `%#v`: nil is typed.
fn go_syntax_elem(v: &Value) -> String {
    match v {
        Value::Nil => "interface {}(nil)".into(),
        v => go_syntax(v),
    }
}

fn pad(spec: &Spec, text: String, verb: char, arg: &Value) -> String {
    let Some(width) = spec.width else {
        return text;
    };
    if text.starts_with("%!") {
        // A wrong verb's note was padded inside.
        return text;
    }
    let len = text.chars().count();
    if len >= width {
        return text;
    }
    let fill = width - len;
    if spec.minus {
        return format!("{text}{}", " ".repeat(fill));
    }
    let numeric = matches!(arg, Value::Int(_) | Value::Uint(_) | Value::Float(_))
        && matches!(
            verb,
            'd' | 'v' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'x' | 'X' | 'o' | 'b'
        );
    if spec.zero && (numeric || matches!(arg, Value::String(_) | Value::Bool(_))) && !text.starts_with("%!") {
        // Zero padding goes after the sign.
        let (sign, digits) = match text.strip_prefix(['-', '+', ' ']) {
            Some(rest) if numeric => (&text[..1], rest),
            _ => ("", text.as_str()),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    format!("{}{text}", " ".repeat(fill))
}

/// A verb that does not fit its operand: Go prints the operand with `%v` and the flags
/// given (`%!f(string=   nu)` for `%5.2f` of "null").
fn bad(verb: char, spec: &Spec, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        a => {
            let inner = pad(spec, format_one('v', spec, a), 'v', a);
            format!("%!{verb}({}={inner})", a.type_name())
        }
    }
}

fn sign(spec: &Spec, negative: bool) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_int(verb: char, spec: &Spec, negative: bool, mag: u128, arg: &Value) -> String {
    let digits = match verb {
        'd' | 'v' => mag.to_string(),
        'b' => format!("{mag:b}"),
        'o' | 'O' => format!("{mag:o}"),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        'c' => {
            return u32::try_from(mag)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}')
                .to_string();
        }
        'q' => {
            let c = u32::try_from(mag)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            return format!(
                "'{}'",
                go_quote(&c.to_string()).trim_matches('"').replace("\\\"", "\"")
            );
        }
        'U' => return format!("U+{mag:04X}"),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => return bad(verb, spec, arg),
        's' | 't' => return bad(verb, spec, arg),
        _ => return bad(verb, spec, arg),
    };
    let digits = match spec.prec {
        Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
        Some(0) if mag == 0 => String::new(),
        _ => digits,
    };
    let prefix = match (spec.sharp, verb) {
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        (true, 'o') => "0",
        (true, 'b') => "0b",
        (_, 'O') => "0o",
        _ => "",
    };
    format!("{}{prefix}{digits}", sign(spec, negative))
}

/// `%e` with `prec` digits after the point, Go's exponent (`e+06`).
fn fmt_e(f: f64, prec: usize, upper: bool) -> String {
    let s = format!("{:.*e}", prec, f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}{e}{sign}{:02}", exp.abs())
}

/// `%g` with a precision of `prec` significant digits.
fn fmt_g_prec(f: f64, prec: usize, sharp: bool, upper: bool) -> String {
    let p = prec.max(1);
    let s = format!("{:.*e}", p - 1, f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |m: &str| -> String {
        if sharp || !m.contains('.') {
            m.to_string()
        } else {
            m.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let e = if upper { 'E' } else { 'e' };
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}{e}{sign}{:02}", trim(mant), exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{:.*}", decimals, f.abs()))
    }
}

fn format_float(verb: char, spec: &Spec, f: f64, arg: &Value) -> String {
    if f.is_nan() {
        return if spec.plus { "+NaN".into() } else { "NaN".into() };
    }
    if f.is_infinite() {
        return format!(
            "{}Inf",
            if f < 0.0 {
                "-"
            } else if spec.plus {
                "+"
            } else {
                ""
            }
        );
    }
    let neg = f.is_sign_negative() && f != 0.0 || (f == 0.0 && f.is_sign_negative());
    let body = match verb {
        'v' | 'g' | 'G' => match spec.prec {
            None => {
                let s = format_float_g(f.abs());
                if verb == 'G' { s.to_uppercase() } else { s }
            }
            Some(p) => fmt_g_prec(f, p, spec.sharp, verb == 'G'),
        },
        'e' | 'E' => fmt_e(f, spec.prec.unwrap_or(6), verb == 'E'),
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
        _ => return bad(verb, spec, arg),
    };
    format!("{}{body}", sign(spec, neg))
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    if verb == 'T' {
        return match arg {
            Value::Nil => "<nil>".into(),
            a => a.type_name().into(),
        };
    }
    match arg {
        Value::Nil => match verb {
            'v' => "<nil>".into(),
            _ => bad(verb, spec, arg),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => b.to_string(),
            _ => bad(verb, spec, arg),
        },
        Value::Int(i) => format_int(verb, spec, *i < 0, i.unsigned_abs() as u128, arg),
        Value::Uint(u) => format_int(verb, spec, false, *u as u128, arg),
        Value::Float(f) => match verb {
            'x' | 'X' | 'b' => bad(verb, spec, arg),
            _ => format_float(verb, spec, *f, arg),
        },
        Value::String(s) => format_str(verb, spec, s, arg),
        Value::List(items) => match verb {
            'v' | 's' | 'd' | 'q' | 'x' | 'X' | 'f' | 'g' | 'e' | 't' => {
                // Inside a container a nil element prints as <nil> whatever the verb.
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Value::Nil => "<nil>".to_string(),
                        i => pad(spec, format_one(verb, spec, i), verb, i),
                    })
                    .collect();
                format!("[{}]", parts.join(" "))
            }
            _ => bad(verb, spec, arg),
        },
        Value::Map(m) => {
            let parts: Vec<String> = m
                .borrow()
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Nil => "<nil>".to_string(),
                        v => pad(spec, format_one(verb, spec, v), verb, v),
                    };
                    format!("{}:{v}", format_str(verb, spec, k, &Value::String(k.clone())))
                })
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Object(o) => match o.display() {
            Some(s) => format_str(verb, spec, &s, &Value::from(s.as_str())),
            None => format_one(verb, spec, &o.to_value()),
        },
        Value::Function(_) => match verb {
            'v' | 'p' => "0xc000000000".into(),
            _ => bad(verb, spec, arg),
        },
    }
}

fn format_str(verb: char, spec: &Spec, s: &str, arg: &Value) -> String {
    match verb {
        'v' | 's' => match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        },
        'q' => {
            let s: String = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            if spec.sharp && !s.contains('`') {
                format!("`{s}`")
            } else {
                go_quote(&s)
            }
        }
        'x' | 'X' => {
            let bytes = s.as_bytes();
            let bytes = match spec.prec {
                Some(p) => &bytes[..p.min(bytes.len())],
                None => bytes,
            };
            let sep = if spec.space { " " } else { "" };
            let parts: Vec<String> = bytes
                .iter()
                .map(|b| {
                    let h = if verb == 'x' {
                        format!("{b:02x}")
                    } else {
                        format!("{b:02X}")
                    };
                    if spec.sharp {
                        format!("{}{h}", if verb == 'x' { "0x" } else { "0X" })
                    } else {
                        h
                    }
                })
                .collect();
            parts.join(sep)
        }
        _ => bad(verb, spec, arg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: impl Into<Value>) -> Value {
        x.into()
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(sprint(&[v("a"), v(1i64), v(2i64), v("b")]), "a1 2b");
        assert_eq!(sprintln(&[v("a"), v(1i64)]), "a 1\n");
        assert_eq!(sprint(&[Value::Nil]), "<nil>");
    }

    #[test]
    fn verbs() {
        assert_eq!(sprintf("%s-%d", &[v("x"), v(5i64)]), "x-5");
        assert_eq!(sprintf("%d", &[v(8080.0)]), "%!d(float64=8080)");
        assert_eq!(sprintf("%v %v", &[v(1e6), v(0.5)]), "1e+06 0.5");
        assert_eq!(sprintf("%s", &[]), "%!s(MISSING)");
        assert_eq!(sprintf("x", &[v(1i64)]), "x%!(EXTRA int=1)");
        assert_eq!(sprintf("%q", &[v("a\"b")]), "\"a\\\"b\"");
        assert_eq!(
            sprintf("%05d|%-4s|%4s", &[v(42i64), v("ab"), v("ab")]),
            "00042|ab  |  ab"
        );
        assert_eq!(
            sprintf("%.2f %e %g", &[v(1.23456), v(1234.5), v(0.00001234)]),
            "1.23 1.234500e+03 1.234e-05"
        );
        assert_eq!(
            sprintf("%x %X %o %b", &[v(255i64), v(255i64), v(8i64), v(5i64)]),
            "ff FF 10 101"
        );
        assert_eq!(sprintf("%x", &[v("hi")]), "6869");
        assert_eq!(sprintf("%t %v", &[v(true), Value::Nil]), "true <nil>");
        assert_eq!(
            sprintf("%s", &[Value::list(vec![v("a"), v(1i64)])]),
            "[a %!s(int=1)]"
        );
        assert_eq!(
            sprintf("%T %T", &[v(1.5), Value::list(vec![])]),
            "float64 []interface {}"
        );
        assert_eq!(sprintf("%c", &[v(65i64)]), "A");
        assert_eq!(sprintf("%6.2f|%+d", &[v(1.23456), v(3i64)]), "  1.23|+3");
        assert_eq!(sprintf("100%%", &[]), "100%");
    }
}
