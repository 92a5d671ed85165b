//! The deterministic simulator: a world of hosts, links, power, fence devices and shared storage driving the
//! real engine on a virtual clock.

pub mod hardware;
pub mod network;
pub mod scenario;
pub mod storage;
