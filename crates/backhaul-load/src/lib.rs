//! Load generator for the Backhaul oracle, run as a separate process on loopback: it drives
//! the ingest API with signed receipt batches from many simulated nodes and clients and the
//! read API with concurrent proof requests, each for a fixed time, and reports throughput,
//! latency percentiles, errors by kind and the oracle's memory over time (see `docs/load.md`).

pub mod chain;
pub mod drive;
pub mod monitor;
pub mod report;
pub mod run;
pub mod workload;
