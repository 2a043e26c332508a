//! The `backhaul` command line against the local endpoint.

mod admin;
mod audit;
mod buffers;
mod common;
mod compute;
mod dashboard;
mod demo;
mod epoch;
mod errors;
mod firm;
mod fraud;
mod guardian;
mod nodes;
mod ts_example;
