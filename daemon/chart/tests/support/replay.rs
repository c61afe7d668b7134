//! Replaying a fuzz corpus so that it can fail: each input runs on its own thread and
//! must come back with an outcome in time. A panic, a stack overflow (the process dies)
//! or a hang fails the replay, naming the input. Shared by the chart's and the agent's
//! corpus tests (`#[path]`-included: test crates cannot share a module otherwise).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// What one input gave: output (summarised) or an error message.
pub type Outcome = Result<String, String>;

/// How long one input may take (a debug build on a busy 2-core machine; inputs take
/// milliseconds).
pub const PER_INPUT: Duration = Duration::from_secs(30);

/// Runs `f` over every input in `dir` (at least `min` of them; `target` names them), each
/// on its own thread with a large stack, as the fuzzer would, and at most `limit` each;
/// returns the outcomes. Panics, naming the input, when one panics or hangs.
pub fn replay_within(
    dir: &Path,
    target: &str,
    min: usize,
    f: fn(&[u8]) -> Outcome,
    limit: Duration,
) -> Vec<(String, Outcome)> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= min,
        "corpus {} has {} inputs",
        dir.display(),
        inputs.len()
    );
    inputs
        .into_iter()
        .map(|path| {
            let name = format!("{target}/{}", path.file_name().unwrap().to_string_lossy());
            let data = std::fs::read(&path).unwrap();
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn(move || {
                    let _ = tx.send(f(&data));
                })
                .unwrap();
            let outcome = match rx.recv_timeout(limit) {
                Ok(outcome) => outcome,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{name}: no outcome within {limit:?} (a hang)")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: panicked (see above)"),
            };
            println!(
                "{name}: {}",
                match &outcome {
                    Ok(o) => format!("ok ({})", o.chars().take(60).collect::<String>()),
                    Err(e) => format!("error: {}", e.chars().take(120).collect::<String>()),
                }
            );
            (name, outcome)
        })
        .collect()
}
