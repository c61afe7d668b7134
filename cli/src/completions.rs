//! `convoy completions SHELL`: shell completion scripts generated from the same clap
//! definition as the parser, so they never drift from the real flags.

/// Arguments of `convoy completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  convoy completions bash > /etc/bash_completion.d/convoy
  convoy completions zsh > \"${fpath[1]}/_convoy\"
  convoy completions fish > ~/.config/fish/completions/convoy.fish")]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script for `cmd` (the whole `convoy` command) to stdout.
pub fn run(args: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<()> {
    clap_complete::generate(args.shell, &mut cmd, "convoy", &mut std::io::stdout());
    Ok(())
}
