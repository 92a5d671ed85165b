//! The lab: what runs the simulator's models in real time, for people and for the real-process tests.
//!
//! * [`demo`]: `failoverd demo`, two real daemons on 127.0.0.1 over the simulated SAN and power, with a
//!   timeline of the takeover.
//! * [`san`]: `failoverd sim-tool` and `failoverd sim-san`, the simulated SAN, BMCs and Lustre tools as
//!   commands the real daemon runs (the namespace lab and the integration tests use them).
//!
//! The models themselves ([`crate::sim::storage`], [`crate::sim::hardware`]) are pure and live in
//! [`crate::sim`]; this module gives them a wall clock, files, locks and processes, which the simulator
//! proper never touches.

pub mod demo;
pub mod san;
