//! Integration tests: the endpoint over HTTP (raw JSON and `RpcClient`), and the Backhaul program
//! running behind it.

// solana-client's RpcClient and friends carry "unstable API" deprecations in 3.x.
#![allow(deprecated)]

mod binary;
mod client;
mod common;
mod conformance;
mod program;
mod pubsub;
