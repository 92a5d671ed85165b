//! failoverd: a fencing-aware failure detector and auto-failover daemon for Lustre targets on shared ZFS or
//! ldiskfs storage. See ARCHITECTURE.md for the map.
//!
//! The pure core (`engine`, `protocol`, `fence`, `storage`) never reads a clock, opens a socket or runs a
//! process; drivers (`runtime`, `sim`) feed it inputs and carry out its outputs.

pub mod command;
pub mod config;
pub mod diskbeat;
pub mod engine;
pub mod fence;
pub mod lab;
pub mod manpages;
pub mod protocol;
pub mod runtime;
pub mod sim;
pub mod storage;
pub mod time;
pub mod witness;
