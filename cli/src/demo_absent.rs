//! `convoy demo` in a CLI built without the `demo` feature (the client-only build
//! Jenkins agents install): the subcommand stays, and says how to get it.

pub const EXAMPLES: &str = "\
This convoy was built without the demo (cargo feature `demo`, on by default).";

// The demo's flags are accepted, so that the answer is the explanation, not a usage error.
pub use crate::demo_args::DemoArgs;

pub fn run(_: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this convoy was built without the demo (it links no coordinator or agent): run it from the source tree with `cargo run --release --bin convoy -- demo`, or install with the `demo` feature"
    )
}
