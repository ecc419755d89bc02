//! Any text as a task's templated command: it fails the syntax check, or renders to a command or an error, never
//! a panic (see the harness, shared with the stable property tests).
#![no_main]

// Each target uses its own half of the harness.
#[allow(dead_code)]
#[path = "../../crates/core/tests/properties/harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::template(data));
