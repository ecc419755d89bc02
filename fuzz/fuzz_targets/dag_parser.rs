//! Any bytes as a DAG file: the loader answers with a DAG or errors, never a panic, and a DAG it lets through can
//! be stored, read back, scheduled and rendered (see the harness, shared with the stable property tests).
#![no_main]

// Each target uses its own half of the harness.
#[allow(dead_code)]
#[path = "../../crates/core/tests/properties/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::dag_file(data));
