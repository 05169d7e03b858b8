//! Integration tests: the real `coffer` binary against real repositories.

// Tests may panic on what they set up themselves, and kill or signal the
// processes they start.
#![allow(clippy::unwrap_used, unsafe_code)]

mod common;

mod backend_contract;
mod browse;
mod copy;
mod crash;
mod cron_recipe;
mod dedup;
mod demo;
mod dry_run;
mod estimate;
mod fixture_repo;
mod forget;
mod hostile;
mod inputs;
mod integrity;
mod keys;
mod memory;
mod metrics;
mod object_lock;
mod overlap;
mod passphrase;
mod postgres;
mod postgres_trust;
mod profile;
mod progress;
mod prune;
mod readme;
mod repair;
mod restore_safety;
mod roundtrip;
mod s3;
mod streams;
mod tamper;
mod wal;
mod write_only;
