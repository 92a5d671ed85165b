//! The integration tests, one test binary (`cargo test --test it`, `cargo nextest run --test it`): one module
//! per area, the harness they share in `tests/support/` (also used by `benches/failover.rs` and
//! `benches/fence.rs`). Run one area with a filter, e.g. `cargo test --test it daemon::`.

#[path = "../support/mod.rs"]
mod support;

mod config;
mod config_fstype;
mod daemon;
mod demo;
mod disk_heartbeat;
mod doctor;
mod fencing;
mod lab;
mod metrics;
mod observability;
mod operator;
mod packaging;
mod sim_tools;
mod sim_vs_real_zfs;
mod simulate;
mod storage;
mod storage_zfs_dataset;
mod witness;
