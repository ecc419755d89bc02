//! Property tests of the core that run on stable, in CI: what the fuzz targets in `fuzz/` check, for a bounded
//! number of generated inputs and for every file of their committed corpus (`parser`, `template`), and the task
//! instance's life against a small reference model (`transitions`).

mod harness;
mod parser;
mod template;
mod transitions;

use std::path::PathBuf;

/// Runs `check` on every file of a fuzz target's committed corpus, naming the file that panics.
fn replay_corpus(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> =
        entries.map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path()).collect();
    paths.sort();
    assert!(!paths.is_empty(), "{} holds no corpus", dir.display());
    for path in paths {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = std::panic::catch_unwind(|| check(&bytes)) {
            eprintln!("{} panicked", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

/// Runs `check` on the inputs `cases` makes for each depth, from shallow to far deeper than any real file.
fn at_depths(check: fn(&[u8]), cases: impl Fn(usize) -> Vec<String>) {
    for depth in [10, 100, 1_000, 10_000] {
        for case in cases(depth) {
            check(case.as_bytes());
        }
    }
}
