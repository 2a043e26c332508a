//! The `backhaul` command line against the local endpoint.

mod admin;
mod common;
mod epoch;
mod errors;
mod firm;
