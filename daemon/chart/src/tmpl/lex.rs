//! The lexer: template text into items, as Go's `text/template/parse` lexes it.
//!
//! Text runs until `{{`; `{{- ` trims the whitespace before it and ` -}}` the whitespace
//! after (the marker needs the space: `{{-3}}` is the number -3). Comments `{{/* */}}` may
//! only stand alone in an action. Newlines are allowed inside actions. The whole input is
//! lexed up front; an error ends the item list, and the parser reports it where it meets it.

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    Bool,
    Char,
    CharConstant,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Kind {
    pub(crate) fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Dot
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Nil
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

/// One lexed item: its kind, its text, its byte offset and line (1-based) in the source.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub kind: Kind,
    pub val: String,
    pub pos: usize,
    pub line: usize,
}

impl std::fmt::Display for Item {
    /// Go's `item.String()`, used in "unexpected X in Y" messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Eof => f.write_str("EOF"),
            Kind::Error => f.write_str(&self.val),
            k if k.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", go_quote(&head))
            }
            _ => f.write_str(&go_quote(&self.val)),
        }
    }
}

/// Go's `%q` of a string (strconv.Quote).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` good for the characters templates use.
fn is_go_printable(c: char) -> bool {
    !(c.is_control() || matches!(c as u32, 0x80..=0x9f | 0xad | 0x2028 | 0x2029 | 0xfeff | 0xfff9..=0xfffb))
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    line: usize,
    start_line: usize,
    paren_depth: i32,
    items: Vec<Item>,
    /// `break`/`continue` are keywords unless the function map defines them.
    break_ok: bool,
    continue_ok: bool,
}

/// Lexes `input`; the last item is `Eof` or `Error`.
pub(crate) fn lex(input: &str, break_ok: bool, continue_ok: bool) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        line: 1,
        start_line: 1,
        paren_depth: 0,
        items: Vec::new(),
        break_ok,
        continue_ok,
    };
    l.run();
    l.items
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn backup(&mut self, c: char) {
        self.pos -= c.len_utf8();
        if c == '\n' {
            self.line -= 1;
        }
    }

    fn emit(&mut self, kind: Kind) {
        let val = self.input[self.start..self.pos].to_string();
        self.items.push(Item {
            kind,
            val,
            pos: self.start,
            line: self.start_line,
        });
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn error(&mut self, msg: String) {
        self.items.push(Item {
            kind: Kind::Error,
            val: msg,
            pos: self.start,
            line: self.start_line,
        });
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    /// Moves to `to` (a byte offset at or after `pos`), counting newlines.
    fn skip_to(&mut self, to: usize) {
        self.line += self.input[self.pos..to].matches('\n').count();
        self.pos = to;
    }

    fn run(&mut self) {
        // Each state returns whether lexing goes on.
        let mut in_action = false;
        loop {
            let go_on = if in_action {
                self.inside_action(&mut in_action)
            } else {
                self.text(&mut in_action)
            };
            if !go_on {
                return;
            }
        }
    }

    fn text(&mut self, in_action: &mut bool) -> bool {
        match self.rest().find(LEFT) {
            Some(x) => {
                let delim_at = self.pos + x;
                let after = &self.input[delim_at + LEFT.len()..];
                let trim = has_left_trim(after);
                let mut text_end = delim_at;
                if trim {
                    text_end = self.input[..delim_at]
                        .trim_end_matches(is_space)
                        .len()
                        .max(self.start);
                }
                self.skip_to(delim_at);
                if text_end > self.start {
                    let val = self.input[self.start..text_end].to_string();
                    self.items.push(Item {
                        kind: Kind::Text,
                        val,
                        pos: self.start,
                        line: self.start_line,
                    });
                }
                self.start = self.pos;
                self.start_line = self.line;
                self.left_delim(trim, in_action)
            }
            None => {
                let end = self.input.len();
                self.skip_to(end);
                if self.pos > self.start {
                    self.emit(Kind::Text);
                }
                self.emit(Kind::Eof);
                false
            }
        }
    }

    fn left_delim(&mut self, trim: bool, in_action: &mut bool) -> bool {
        self.pos += LEFT.len();
        let trim_len = if trim { 2 } else { 0 };
        let after = &self.input[self.pos + trim_len..];
        if after.starts_with(LEFT_COMMENT) {
            self.skip_to(self.pos + trim_len);
            self.ignore();
            return self.comment();
        }
        self.emit(Kind::LeftDelim);
        self.skip_to(self.pos + trim_len);
        self.ignore();
        self.paren_depth = 0;
        *in_action = true;
        true
    }

    fn comment(&mut self) -> bool {
        self.pos += LEFT_COMMENT.len();
        let Some(x) = self.rest().find(RIGHT_COMMENT) else {
            self.error("unclosed comment".into());
            return false;
        };
        self.skip_to(self.pos + x + RIGHT_COMMENT.len());
        let (delim, trim) = self.at_right_delim();
        if !delim {
            self.error("comment ends before closing delimiter".into());
            return false;
        }
        // Comments are dropped, as Go's parser does without ParseComments.
        if trim {
            self.skip_to(self.pos + 2);
        }
        self.pos += RIGHT.len();
        if trim {
            let skip = self.rest().len() - self.rest().trim_start_matches(is_space).len();
            self.skip_to(self.pos + skip);
        }
        self.ignore();
        true
    }

    /// Whether the input is at a right delimiter, and whether it has a trim marker.
    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim(rest) && rest[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (rest.starts_with(RIGHT), false)
    }

    fn right_delim(&mut self, trim: bool, in_action: &mut bool) -> bool {
        if trim {
            self.skip_to(self.pos + 2);
            self.ignore();
        }
        self.pos += RIGHT.len();
        self.emit(Kind::RightDelim);
        if trim {
            let skip = self.rest().len() - self.rest().trim_start_matches(is_space).len();
            self.skip_to(self.pos + skip);
            self.ignore();
        }
        *in_action = false;
        true
    }

    fn inside_action(&mut self, in_action: &mut bool) -> bool {
        let (delim, trim) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.right_delim(trim, in_action);
            }
            self.error("unclosed left paren".into());
            return false;
        }
        let Some(c) = self.next() else {
            self.error("unclosed action".into());
            return false;
        };
        match c {
            c if is_space(c) => {
                self.backup(c);
                self.space(in_action)
            }
            '=' => {
                self.emit(Kind::Assign);
                true
            }
            ':' => {
                if self.next() != Some('=') {
                    self.error("expected :=".into());
                    return false;
                }
                self.emit(Kind::Declare);
                true
            }
            '|' => {
                self.emit(Kind::Pipe);
                true
            }
            '"' => self.quote(),
            '`' => self.raw_quote(),
            '$' => self.variable(),
            '\'' => self.char_constant(),
            '.' => {
                if let Some(d) = self.peek()
                    && d.is_ascii_digit()
                {
                    self.backup('.');
                    return self.number();
                }
                self.field()
            }
            '+' | '-' | '0'..='9' => {
                self.backup(c);
                self.number()
            }
            c if is_alnum(c) => {
                self.backup(c);
                self.identifier()
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
                true
            }
            ')' => {
                self.emit(Kind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    self.error("unexpected right paren".into());
                    return false;
                }
                true
            }
            c if c.is_ascii() && !c.is_ascii_control() => {
                self.emit(Kind::Char);
                true
            }
            c => {
                self.error(format!("unrecognized character in action: {}", go_char(c)));
                false
            }
        }
    }

    fn space(&mut self, in_action: &mut bool) -> bool {
        let mut n = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            n += 1;
        }
        // A space followed by "-}}" belongs to the trim marker.
        let last = self.input[..self.pos].chars().next_back().unwrap_or(' ');
        let before = &self.input[self.pos - last.len_utf8()..];
        if has_right_trim(before) && before[2..].starts_with(RIGHT) {
            self.backup(last);
            if n == 1 {
                return self.right_delim(true, in_action);
            }
        }
        self.emit(Kind::Space);
        true
    }

    fn identifier(&mut self) -> bool {
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.next();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            self.error(format!("bad character {}", go_char(c)));
            return false;
        }
        let word = &self.input[self.start..self.pos];
        let kind = match word {
            "block" => Kind::Block,
            "break" if self.break_ok => Kind::Break,
            "continue" if self.continue_ok => Kind::Continue,
            "define" => Kind::Define,
            "else" => Kind::Else,
            "end" => Kind::End,
            "if" => Kind::If,
            "range" => Kind::Range,
            "nil" => Kind::Nil,
            "template" => Kind::Template,
            "with" => Kind::With,
            "true" | "false" => Kind::Bool,
            _ => Kind::Identifier,
        };
        self.emit(kind);
        true
    }

    fn field(&mut self) -> bool {
        self.field_or_variable(Kind::Field)
    }

    fn variable(&mut self) -> bool {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return true;
        }
        self.field_or_variable(Kind::Variable)
    }

    fn field_or_variable(&mut self, kind: Kind) -> bool {
        if self.at_terminator() {
            // Only "." here; "$" was handled by the caller.
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return true;
        }
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.next();
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            self.error(format!("bad character {}", go_char(c)));
            return false;
        }
        self.emit(kind);
        true
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn char_constant(&mut self) -> bool {
        self.quoted('\'', Kind::CharConstant, "unterminated character constant")
    }

    fn number(&mut self) -> bool {
        let mut ok = self.scan_number();
        if ok && matches!(self.peek(), Some('+' | '-')) {
            // A complex constant such as 1+2i: no spaces, must end in 'i'.
            ok = self.scan_number() && self.input[..self.pos].ends_with('i');
        }
        if !ok {
            let text = self.input[self.start..self.pos].to_string();
            self.error(format!("bad number syntax: {}", go_quote(&text)));
            return false;
        }
        self.emit(Kind::Number);
        true
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if let Some(c) = self.peek()
            && is_alnum(c)
        {
            self.next();
            return false;
        }
        true
    }

    fn quote(&mut self) -> bool {
        self.quoted('"', Kind::String, "unterminated quoted string")
    }

    /// A quoted item up to an unescaped `close` on the same line (the opening quote is read).
    fn quoted(&mut self, close: char, kind: Kind, unterminated: &str) -> bool {
        loop {
            match self.next() {
                Some('\\') => {
                    if let Some(c) = self.next()
                        && c != '\n'
                    {
                        continue;
                    }
                    self.error(unterminated.into());
                    return false;
                }
                None | Some('\n') => {
                    self.error(unterminated.into());
                    return false;
                }
                Some(c) if c == close => break,
                Some(_) => {}
            }
        }
        self.emit(kind);
        true
    }

    fn raw_quote(&mut self) -> bool {
        let Some(x) = self.rest().find('`') else {
            self.error("unterminated raw quoted string".into());
            return false;
        };
        self.skip_to(self.pos + x + 1);
        self.emit(Kind::RawString);
        true
    }
}

/// `{{- ` : a trim marker needs whitespace after the dash.
fn has_left_trim(after_delim: &str) -> bool {
    let mut c = after_delim.chars();
    c.next() == Some('-') && c.next().is_some_and(is_space)
}

/// ` -}}` : whitespace, then the dash.
fn has_right_trim(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(is_space) && c.next() == Some('-')
}

/// Go's `%#U` of a rune: `U+0023 '#'`.
pub(crate) fn go_char(c: char) -> String {
    if is_go_printable(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Kind, String)> {
        lex(s, true, true).into_iter().map(|i| (i.kind, i.val)).collect()
    }

    #[test]
    fn trims_and_delimiters() {
        let k = kinds("a  {{- .x -}}  b");
        assert_eq!(
            k,
            vec![
                (Kind::Text, "a".into()),
                (Kind::LeftDelim, "{{".into()),
                (Kind::Field, ".x".into()),
                (Kind::RightDelim, "}}".into()),
                (Kind::Text, "b".into()),
                (Kind::Eof, String::new()),
            ]
        );
        let k = kinds("{{-3}}");
        assert_eq!(k[1], (Kind::Number, "-3".into()));
    }

    #[test]
    fn comments_and_errors() {
        assert_eq!(
            kinds("a {{- /* c */ -}} b"),
            vec![
                (Kind::Text, "a".into()),
                (Kind::Text, "b".into()),
                (Kind::Eof, String::new())
            ]
        );
        assert_eq!(
            kinds("{{/* c */ x}}").last().unwrap().1,
            "comment ends before closing delimiter"
        );
        assert_eq!(kinds("{{ .x ").last().unwrap().1, "unclosed action");
        assert_eq!(kinds("{{ 3x }}").last().unwrap().1, "bad number syntax: \"3x\"");
    }

    #[test]
    fn lines_are_counted() {
        let items = lex("a\nb{{ .x\n }}\nc{{ y }}", true, true);
        let y = items.iter().find(|i| i.val == "y").unwrap();
        assert_eq!(y.line, 4);
    }
}
