//! `convoy demo`'s flags, with or without the `demo` feature.

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the demo's directory (store, configs, logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Use the development secrets file even when OpenBao is installed.
    #[arg(long)]
    pub no_openbao: bool,
}
