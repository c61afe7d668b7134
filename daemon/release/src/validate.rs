//! Checks of a parsed release against the context registry. All problems are reported
//! together, each at its position in the release file.

use crate::de::{Reader, did_you_mean, index, join};
use crate::error::Result;
use crate::model::{DEFAULT_CONTEXT, Release};
use crate::parse::invalid;
use crate::registry::Registry;

impl Release {
    /// Checks the release against `registry`: target, secret-source and contextValues
    /// contexts exist, and each target's `env` matches `metadata.environment` when set.
    pub fn validate(&self, registry: &Registry) -> Result<()> {
        let mut r = Reader::new(self.source.clone());
        let unknown = |r: &mut Reader, name: &str, pos, path: &str, extra: &str| {
            let hint = match did_you_mean(name, registry.names()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => format!("; known contexts: {}", known_list(registry)),
            };
            r.error(pos, path, format!("unknown context `{name}`{extra}{hint}"));
        };
        for (i, c) in self.spec.contexts.iter().enumerate() {
            let path = index("spec.contexts", i);
            match registry.get(&c.value) {
                None => unknown(&mut r, &c.value, c.pos, &path, ""),
                Some(ctx) => {
                    if let Some(env) = &self.metadata.environment
                        && &ctx.env != env
                    {
                        r.error(
                            c.pos,
                            &path,
                            format!(
                                "context `{}` is in env `{}`, but metadata.environment is `{env}`",
                                ctx.name, ctx.env
                            ),
                        );
                    }
                }
            }
        }
        for (i, s) in self.spec.secrets.iter().enumerate() {
            for (j, src) in s.sources.iter().enumerate() {
                if src.context != DEFAULT_CONTEXT && registry.get(&src.context).is_none() {
                    let path = format!("spec.secrets[{i}].contexts[{j}].name");
                    unknown(
                        &mut r,
                        &src.context,
                        src.pos,
                        &path,
                        " (expected a known context or `default`)",
                    );
                }
            }
        }
        for cv in &self.spec.context_values {
            if registry.get(&cv.context).is_none() {
                unknown(
                    &mut r,
                    &cv.context,
                    cv.pos,
                    &join("spec.contextValues", &cv.context),
                    "",
                );
            }
        }
        if r.diags.is_empty() {
            Ok(())
        } else {
            Err(invalid(r))
        }
    }
}

fn known_list(registry: &Registry) -> String {
    const SHOWN: usize = 10;
    let names: Vec<&str> = registry.names().take(SHOWN).collect();
    if names.is_empty() {
        return "none (the registry is empty)".into();
    }
    let more = registry.len().saturating_sub(SHOWN);
    if more > 0 {
        format!("{} and {more} more", names.join(", "))
    } else {
        names.join(", ")
    }
}
