//! The pure audit on a hand-built deployment (`fixture`): every check passes on consistent data;
//! then each check fails when its input is perturbed, one file per concern as in the crate. And
//! the crate's dependencies stay free of I/O (`dependencies`). The fraud evidence finder against
//! hostile trees (`fraud`).

mod budget;
mod claims;
mod clean;
mod datasets;
mod dependencies;
mod deployment;
mod economics;
mod fixture;
mod fraud;
mod governance;
mod proposal;
mod supply;
mod trees;
