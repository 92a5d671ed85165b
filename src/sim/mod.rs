//! The deterministic simulator: a world of hosts, links, power, fence devices and shared storage driving the
//! real engine on a virtual clock.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // the pure core: see clippy.toml

pub mod checker;
pub mod hardware;
pub mod network;
pub mod recovery;
pub mod scenario;
pub mod storage;
pub mod tools_common;
pub mod tools_fence;
pub mod tools_hardware_tests;
pub mod tools_lustre;
pub mod tools_storage_tests;
pub mod tools_zfs;
pub mod runner;
pub mod swarm;
pub mod world;
