//! Simulated power, BMCs, PDUs and fence agents (being written).
