//! The program's tests, through real transactions in a real bank. One module per instruction.

#![allow(deprecated)] // solana-program-test marks its API "unstable" from 4.0 on.
mod admin;
mod adversarial;
mod bonds;
mod claim;
mod credits;
mod cu;
mod economics;
mod finalize;
mod fraud;
mod governance;
mod idl;
mod initialize;
mod price;
mod proof_buffer;
mod properties;
mod propose_root;
mod smoke;
mod tx_size;
mod util;
mod veto;
