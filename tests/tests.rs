//! Integration tests: the real `coffer` binary against real repositories.

mod common;

mod crash;
mod dedup;
mod dry_run;
mod memory;
mod passphrase;
mod restore_safety;
mod roundtrip;
mod tamper;
