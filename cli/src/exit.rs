//! The one place where the online commands' failures become exit codes.
//!
//! Jenkins jobs branch on these numbers (`convoy submit --wait || case $? in 3) ...`),
//! so they are part of the CLI's contract: `convoy --help` and `cli/README.md` print
//! the same table, and every error the online commands return is one `CliError`.

use tonic::Code;

/// Exit status: the command did what was asked (a `--wait`ed rollout ended healthy).
pub const SUCCESS: u8 = 0;
/// Exit status for anything not covered below (an internal error of the coordinator...).
pub const OTHER: u8 = 1;
/// Exit status: invalid input: an unreadable or invalid release file, bad flags.
pub const INVALID_INPUT: u8 = 2;
/// Exit status: the rollout failed (or was aborted) or a precondition failed.
pub const ROLLOUT_FAILED: u8 = 3;
/// Exit status: the token or certificate was refused, or its role is too weak.
pub const UNAUTHORIZED: u8 = 4;
/// Exit status: the coordinator could not be reached.
pub const UNREACHABLE: u8 = 5;
/// Exit status: the release, revision or operation does not exist.
pub const NOT_FOUND: u8 = 6;
/// Exit status of `diff --exit-code` when a submit would change something, as
/// `git diff --exit-code` exits 1: a Jenkins job can skip a no-op deploy.
pub const CHANGES_FOUND: u8 = 7;

/// The exit-code table shown at the end of `convoy --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes (for scripts and Jenkins):
  0  success (a --wait'ed rollout ended healthy; a diff compared every context)
  1  any other error; a diff that could not compare every context (an agent
     offline or too slow: named on stderr)
  2  invalid input: bad release file (file:line:col in the message), bad flags
  3  rollout failed or aborted (the message says what was rolled back), or a
     precondition failed (secrets or rendering; nothing was applied); for diff:
     a dry run failed or an object would be refused (a submit would fail)
  4  unauthorized: token refused, or its role may not do this
  5  coordinator unreachable
  6  not found: no such release, revision or operation
  7  diff --exit-code: a submit would change something

Environment:
  CONVOY_SERVER  the coordinator's address (default http://127.0.0.1:7443)
  CONVOY_TOKEN   the API token sent as `authorization: Bearer <token>`";

/// Why an online command failed; the variant decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad release file, values file, chart or flag combination.
    #[error("{0}")]
    InvalidInput(String),
    /// The rollout ended FAILED or ABORTED.
    #[error("{0}")]
    RolloutFailed(String),
    /// The coordinator refused before applying anything (secrets, rendering, preflight).
    #[error("{0}")]
    Precondition(String),
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    #[error("{0}")]
    Unauthorized(String),
    /// No connection, UNAVAILABLE, or no answer in time.
    #[error("{0}")]
    Unreachable(String),
    /// NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// `diff` could not compare every context (an agent offline or too slow).
    #[error("{0}")]
    Incomplete(String),
    /// `diff --exit-code` found changes: not a failure, a verdict (see [`CHANGES_FOUND`]).
    #[error("{0}")]
    ChangesFound(String),
    /// Anything else (an internal error, a broken output pipe...).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit status for this error.
    pub fn code(&self) -> u8 {
        match self {
            CliError::InvalidInput(_) => INVALID_INPUT,
            CliError::RolloutFailed(_) | CliError::Precondition(_) => ROLLOUT_FAILED,
            CliError::Unauthorized(_) => UNAUTHORIZED,
            CliError::Unreachable(_) => UNREACHABLE,
            CliError::NotFound(_) => NOT_FOUND,
            CliError::Incomplete(_) | CliError::Other(_) => OTHER,
            CliError::ChangesFound(_) => CHANGES_FOUND,
        }
    }

    /// Maps a gRPC status from the coordinator; `what` names the call (`submit`,
    /// `status web.shop`) so the message says what was refused.
    pub fn from_status(what: &str, s: &tonic::Status) -> Self {
        let msg = s.message();
        match s.code() {
            // The coordinator already formats these as `file:line:col: ...` lines.
            Code::InvalidArgument => CliError::InvalidInput(msg.to_string()),
            Code::FailedPrecondition => CliError::Precondition(format!("{what}: {msg}")),
            Code::Unauthenticated => CliError::Unauthorized(format!(
                "{what}: not authenticated: {msg} (set --token or CONVOY_TOKEN)"
            )),
            Code::PermissionDenied => CliError::Unauthorized(format!("{what}: permission denied: {msg}")),
            Code::NotFound => CliError::NotFound(format!("{what}: {msg}")),
            Code::Unavailable | Code::DeadlineExceeded => {
                CliError::Unreachable(format!("{what}: coordinator unavailable: {msg}"))
            }
            Code::Unimplemented => {
                CliError::Other(format!("{what}: not supported by this coordinator: {msg}"))
            }
            code => CliError::Other(format!("{what}: {code:?}: {msg}")),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Other(format!("writing output: {e}"))
    }
}

/// The `Result` of an online command.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_documented_codes() {
        let cases = [
            (Code::InvalidArgument, INVALID_INPUT),
            (Code::FailedPrecondition, ROLLOUT_FAILED),
            (Code::Unauthenticated, UNAUTHORIZED),
            (Code::PermissionDenied, UNAUTHORIZED),
            (Code::Unavailable, UNREACHABLE),
            (Code::NotFound, NOT_FOUND),
            (Code::Internal, OTHER),
        ];
        for (code, want) in cases {
            let e = CliError::from_status("status x", &tonic::Status::new(code, "m"));
            assert_eq!(e.code(), want, "{code:?}");
        }
    }

    #[test]
    fn invalid_argument_keeps_the_coordinators_positions() {
        let s = tonic::Status::invalid_argument("web.yaml:3:7: spec.contexts: unknown context `x`");
        let e = CliError::from_status("submit web.yaml", &s);
        assert_eq!(e.to_string(), "web.yaml:3:7: spec.contexts: unknown context `x`");
    }

    #[test]
    fn help_lists_every_code() {
        for code in [
            SUCCESS,
            OTHER,
            INVALID_INPUT,
            ROLLOUT_FAILED,
            UNAUTHORIZED,
            UNREACHABLE,
            NOT_FOUND,
            CHANGES_FOUND,
        ] {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }
}
