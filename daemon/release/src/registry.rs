//! The context registry: the clusters a release can target, and what each tells the
//! chart (`.Values.global.{cloud,env,region,clusterName}`).
//!
//! The file is either a list of contexts or a mapping with a `contexts:` list (the shape
//! convoyd's own config uses), so one snippet can be copied between the two.

use std::collections::BTreeMap;
use std::path::Path;

use crate::de::{Reader, index, single_root};
use crate::error::{ReleaseError, Result};
use crate::model::DEFAULT_CONTEXT;
use crate::parse::invalid;
use crate::yaml::{Node, Pos};

const CONTEXT: &[&str] = &["name", "region", "env", "cloud", "clusterName", "labels"];

/// One cluster a release can target.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    pub name: String,
    pub region: String,
    pub env: String,
    pub cloud: String,
    pub cluster_name: String,
    pub labels: BTreeMap<String, String>,
}

/// Every known context, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    contexts: BTreeMap<String, Context>,
}

impl Registry {
    /// Builds a registry from contexts already read elsewhere (convoyd's config).
    /// Fails on a repeated name.
    pub fn from_contexts(contexts: impl IntoIterator<Item = Context>) -> std::result::Result<Self, String> {
        let mut out = BTreeMap::new();
        for c in contexts {
            if c.name == DEFAULT_CONTEXT {
                return Err(
                    "context name `default` is reserved (it means \"every other context\" in secrets)".into(),
                );
            }
            if out.contains_key(&c.name) {
                return Err(format!("context `{}` is defined twice", c.name));
            }
            out.insert(c.name.clone(), c);
        }
        Ok(Registry { contexts: out })
    }

    /// Reads a registry file.
    pub fn load(path: &Path) -> Result<Registry> {
        let text = std::fs::read_to_string(path).map_err(|source| ReleaseError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Registry::parse(&text, &path.display().to_string())
    }

    /// Parses registry text; `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<Registry> {
        let mut r = Reader::new(source);
        let Some(root) = single_root(&mut r, text, "the file is empty; expected a list of contexts") else {
            return Err(invalid(r));
        };
        let (list, path) = if root.as_map().is_some() {
            let Some(f) = r.fields(&root, "", &["contexts"]) else {
                return Err(invalid(r));
            };
            match f.required(&mut r, "contexts", "a list of contexts") {
                Some(n) => (n, "contexts"),
                None => return Err(invalid(r)),
            }
        } else {
            (&root, "")
        };
        let Some(items) = r.seq(list, path, "contexts `{name, region, env, cloud, clusterName}`") else {
            return Err(invalid(r));
        };
        let mut contexts: BTreeMap<String, (Context, Pos)> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = if path.is_empty() {
                format!("[{i}]")
            } else {
                index(path, i)
            };
            if let Some(c) = read_context(&mut r, item, &item_path) {
                if c.name == DEFAULT_CONTEXT {
                    r.error(
                        item.pos,
                        &crate::de::join(&item_path, "name"),
                        "`default` is reserved: in a release's secrets it means \"every other context\"",
                    );
                } else if let Some((_, first)) = contexts.get(&c.name) {
                    let first = *first;
                    r.error(
                        item.pos,
                        &item_path,
                        format!("context `{}` is defined twice (first at {first})", c.name),
                    );
                } else {
                    contexts.insert(c.name.clone(), (c, item.pos));
                }
            }
        }
        if !r.diags.is_empty() {
            return Err(invalid(r));
        }
        Ok(Registry {
            contexts: contexts.into_iter().map(|(k, (c, _))| (k, c)).collect(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&Context> {
        self.contexts.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.contexts.keys().map(String::as_str)
    }

    pub fn contexts(&self) -> impl Iterator<Item = &Context> {
        self.contexts.values()
    }

    pub fn len(&self) -> usize {
        self.contexts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.contexts.is_empty()
    }
}

fn read_context(r: &mut Reader, node: &Node, path: &str) -> Option<Context> {
    let f = r.fields(node, path, CONTEXT)?;
    let mut field = |name: &str, what: &str| {
        f.required(r, name, what)
            .and_then(|n| r.string(n, &f.at(name), what))
    };
    let name = field("name", "the context's name, such as `dev-us-central1-0`");
    let region = field("region", "the cluster's region, such as `us-central1`");
    let env = field("env", "the environment, such as `dev` or `prod`");
    let cloud = field("cloud", "the cloud or datacenter, such as `gcp` or `onprem`");
    let cluster_name = field("clusterName", "the cluster's name");
    let labels = match f.optional("labels") {
        None => Some(BTreeMap::new()),
        Some(n) => read_labels(r, n, &f.at("labels")),
    };
    Some(Context {
        name: name?,
        region: region?,
        env: env?,
        cloud: cloud?,
        cluster_name: cluster_name?,
        labels: labels?,
    })
}

fn read_labels(r: &mut Reader, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
    let Some(entries) = node.as_map() else {
        r.error(
            node.pos,
            path,
            format!(
                "expected a mapping of label names to strings, found {}",
                node.describe()
            ),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        let key = k.key_text().unwrap_or_default().to_string();
        let p = crate::de::join(path, &key);
        match r.string_or_number(v, &p, "a label value (a string)") {
            Some(s) => {
                out.insert(key, s);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}
