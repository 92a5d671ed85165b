//! Simulated shared storage (being written).
