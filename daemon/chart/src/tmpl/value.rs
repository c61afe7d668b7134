//! Values as Go's `text/template` sees Helm's data.
//!
//! Helm hands templates `map[string]interface{}` and `[]interface{}` values. Go maps are
//! references: `{{ $_ := set $d "k" 2 }}` changes the map every holder of `$d` sees, and
//! `set $.Values ...` in one template is seen by the next. [`Map`] is therefore a shared,
//! mutable map (`Rc<RefCell<..>>`); lists are immutable and shared (sprig's list functions
//! all build new lists). Numbers keep Go's kinds: values read from YAML/JSON are `float64`
//! in Helm, literals in templates are `int`.
//!
//! Objects with methods (`.Files`, `.Capabilities.APIVersions`, semver versions) implement
//! [`Object`]; functions see them as plain values through [`Object::to_value`].

use std::cell::{Ref, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

/// The entries of a map, sorted by key as Go's templates iterate and print them.
pub type Dict = BTreeMap<Arc<str>, Value>;

/// A template function: Go's `func(args ...) (value, error)`.
pub type ValueFunc = Arc<dyn Fn(&[Value]) -> Result<Value> + Send + Sync>;

/// Functions by name, as Go's `template.FuncMap`.
pub type FuncMap = HashMap<String, ValueFunc>;

/// An execution error raised by a function; the executor adds Go's location prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The message, e.g. `error calling upper: wrong type for value; expected string; got int`.
    Exec(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Exec(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// The function library's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// A Go value with methods: fields and methods are reached through the template, and
/// functions see [`Object::to_value`].
pub trait Object {
    /// Go's type name, for error messages (`chart.Files`, `*semver.Version`).
    fn type_name(&self) -> &'static str;
    /// A field or a method without arguments; `None` when the type has no such name.
    fn field(&self, name: &str) -> Option<Result<Value>>;
    /// A method called with arguments; `None` when the type has no such method.
    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value>>;
    /// The value as functions, `range`, `index` and `len` see it.
    fn to_value(&self) -> Value;
    /// The text `fmt` prints (a `String()` method); `None` prints [`Object::to_value`].
    fn display(&self) -> Option<String> {
        None
    }
    /// Whether `range` may iterate over it (Go: a map or slice type, not a struct).
    fn rangeable(&self) -> bool {
        true
    }
}

/// A template value.
#[derive(Clone)]
pub enum Value {
    /// A nil interface: a missing map key under `missingkey=zero`, a YAML `null`.
    Nil,
    /// `bool`
    Bool(bool),
    /// `int` (template literals, integer function results)
    Int(i64),
    /// `uint`
    Uint(u64),
    /// `float64` (every number read from values files)
    Float(f64),
    /// `string`
    String(Arc<str>),
    /// `[]interface{}`
    List(Arc<[Value]>),
    /// `map[string]interface{}`, shared by reference.
    Map(Map),
    /// A function value (for `call`).
    Function(ValueFunc),
    /// A typed Go value with methods.
    Object(Rc<dyn Object>),
}

/// A Go map: cloning the handle shares the map, as assigning a map does in Go.
///
/// The flag says whether this handle is typed as Helm's `chartutil.Values` (`.Values`),
/// whose methods (`AsMap`, `YAML`, `Table`, `PathValue`) templates can call.
///
/// A map built from a traced render's values ([`super::trace`]) records each observation
/// of its entries: [`Map::get`], [`Map::contains_key`] and [`Map::remove`] one key,
/// everything else that reads it the whole map.
#[derive(Clone, Default)]
pub struct Map(Rc<Inner>, bool);

#[derive(Default)]
struct Inner {
    entries: RefCell<Dict>,
    /// The traced path's id, for maps built from a traced render's values.
    traced: Option<u32>,
}

impl Map {
    /// A map holding `entries`.
    pub fn new(entries: Dict) -> Map {
        Map(
            Rc::new(Inner {
                entries: RefCell::new(entries),
                traced: None,
            }),
            false,
        )
    }

    /// A values map whose observations the render's trace records under path `id`.
    pub(super) fn traced(entries: Dict, id: u32) -> Map {
        Map(
            Rc::new(Inner {
                entries: RefCell::new(entries),
                traced: Some(id),
            }),
            false,
        )
    }

    fn observe(&self, key: Option<&str>) {
        if let Some(id) = self.0.traced {
            super::trace::observe(id, key);
        }
    }

    /// The same map, typed as Helm's `chartutil.Values`.
    pub fn as_chart_values(&self) -> Map {
        Map(self.0.clone(), true)
    }

    /// The same map, typed as a plain `map[string]interface{}`.
    pub fn as_plain(&self) -> Map {
        Map(self.0.clone(), false)
    }

    /// Whether this handle is typed as `chartutil.Values`.
    pub fn is_chart_values(&self) -> bool {
        self.1
    }

    /// Reads the entries. Never held across a call that may mutate maps.
    pub fn borrow(&self) -> Ref<'_, Dict> {
        self.observe(None);
        self.0.entries.borrow()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.observe(Some(key));
        self.0.entries.borrow().get(key).cloned()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.observe(Some(key));
        self.0.entries.borrow().contains_key(key)
    }

    /// Sets `key` (what `set` and assignments into maps do).
    pub fn insert(&self, key: Arc<str>, value: Value) {
        self.0.entries.borrow_mut().insert(key, value);
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) -> Option<Value> {
        self.observe(Some(key));
        self.0.entries.borrow_mut().remove(key)
    }

    /// Changes the entries in place. `f` must not read this map through another handle.
    pub fn update<R>(&self, f: impl FnOnce(&mut Dict) -> R) -> R {
        self.observe(None);
        f(&mut self.0.entries.borrow_mut())
    }

    /// A copy of the entries (the values themselves are shared).
    pub fn snapshot(&self) -> Dict {
        self.borrow().clone()
    }

    /// The keys, sorted.
    pub fn keys(&self) -> Vec<Arc<str>> {
        self.borrow().keys().cloned().collect()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.borrow().len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.borrow().is_empty()
    }

    /// Whether both handles are the same map.
    pub fn ptr_eq(&self, other: &Map) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.ptr_eq(other) || *self.borrow() == *other.borrow()
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.observe(None);
        match self.0.entries.try_borrow() {
            Ok(m) => f.debug_map().entries(m.iter()).finish(),
            Err(_) => f.write_str("{<borrowed>}"),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Uint(u) => write!(f, "Uint({u})"),
            Value::Float(x) => write!(f, "Float({x:?})"),
            Value::String(s) => write!(f, "String({s:?})"),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => m.fmt(f),
            Value::Function(_) => f.write_str("Function"),
            Value::Object(o) => write!(f, "Object({})", o.type_name()),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Uint(a), Value::Uint(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Function(a), Value::Function(b)) => Arc::ptr_eq(a, b),
            (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<Arc<str>>) -> Value {
        Value::String(s.into())
    }

    /// A list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(items.into())
    }

    /// A new map value.
    pub fn map(entries: Dict) -> Value {
        Value::Map(Map::new(entries))
    }

    /// An empty map value.
    pub fn empty_map() -> Value {
        Value::Map(Map::default())
    }

    /// Go's `truth` for `if`, `with`, `and`, `or`, `not`: the zero value is false.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Function(_) => true,
            Value::Object(o) => o.to_value().is_truthy(),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int` or a `uint` that fits.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// The number as a float, for any numeric kind.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Uint(u) => Some(*u as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Go's type name, as `%T` and error messages print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(m) if m.is_chart_values() => "chartutil.Values",
            Value::Map(_) => "map[string]interface {}",
            Value::Function(_) => "func(...interface {}) (interface {}, error)",
            Value::Object(o) => o.type_name(),
        }
    }

    /// What functions see: objects become their plain value, everything else is as is.
    pub fn plain(self) -> Value {
        match self {
            Value::Object(o) => o.to_value(),
            other => other,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(Arc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(Arc::from(s))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::List(v.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_shared_by_reference() {
        let a = Value::empty_map();
        let b = a.clone();
        if let Value::Map(m) = &b {
            m.insert("k".into(), Value::Int(2));
        }
        let Value::Map(m) = &a else { unreachable!() };
        assert_eq!(m.get("k"), Some(Value::Int(2)));
    }

    #[test]
    fn truth_is_go_zero_value() {
        assert!(!Value::Nil.is_truthy());
        assert!(!Value::Float(0.0).is_truthy());
        assert!(!Value::empty_map().is_truthy());
        assert!(Value::from("x").is_truthy());
        assert!(!Value::list(vec![]).is_truthy());
    }
}
