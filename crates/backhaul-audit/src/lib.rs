//! The audit of a Backhaul deployment, as a pure library: what was fetched (every account of the
//! deployment and each epoch's published dataset) in, a report of checks out, each passed or
//! failed with its evidence. Nothing here reads the chain, an oracle or a file: the `backhaul
//! audit` command fetches and prints; a service can fetch and watch.
//!
//! - Each dataset hashes to the chain's `dataset_hash`, is canonical, and is internally
//!   consistent (leaf counts, totals, cumulative = previous cumulative + amount, sorted unique
//!   leaves, nodes against operators, bandwidth priced as the parameters say): `datasets`,
//!   `trees`.
//! - Both roots, rebuilt from the leaves with `backhaul_core`'s Merkle code, equal the chain's
//!   (`trees`).
//! - Each allocation is the sum of its leaves' increases and fits its budget, recomputed with
//!   `backhaul_core::budget` from the dataset's parameters, which are checked against the chain
//!   (`budget`, `governance`); so are the consensus parameters that priced and counted the
//!   bandwidth (`governance`).
//! - The economics, recomputed with `backhaul_core::cost` (`economics`): each buyer's cost is
//!   the average cost of its credits not consumed yet, its purchases are its credit account's,
//!   its pot is k times its cost (scaled to the budget), each pot is paid only to the operators
//!   that served the buyer, by bytes, and each operator's reward is the sum of what it was paid.
//! - Each proposal hashes to the digest a quorum of oracles voted for, and was finalized only
//!   after its challenge period (`proposal`).
//! - vault ≥ minted − claimed (anyone can send tokens to the vault); supply ≤ initial + minted −
//!   burned for credits (anyone can burn their own tokens directly); what only the program moves
//!   stays exact: the config's totals = the sums of the ledgers and accounts, credits issued −
//!   settled = Σ balances (`supply`); no operator claimed more than its latest cumulative
//!   reward (`claims`); epochs contiguous, every account at its address (`deployment`).
//! - On request, [`recompute`]: each dataset rebuilt byte for byte by the pure close
//!   (`backhaul-close`) from its published agreed input and the earlier ones.
//! - For a proposal in its challenge period, [`fraud`]: the evidence the program's `prove_fraud`
//!   accepts (leaves out of order, a cumulative amount that fell, usage beyond the credits
//!   bought), built against the trees as the dataset lists them, and [`fraud::judge`]'s
//!   decision beside the epoch's checks: prove, veto (data withheld, or checks failed with no
//!   proof), or let it be.
//!
//! ```ignore
//! let report = backhaul_audit::audit(&snapshot, &datasets);
//! for failed in &report.failed { /* … */ }
//! ```

mod budget;
mod claims;
mod datasets;
mod deployment;
mod economics;
mod evidence;
pub mod fraud;
mod governance;
mod proposal;
mod recompute;
mod report;
mod run;
mod snapshot;
mod supply;
mod trees;

pub use recompute::recompute;
pub use report::{status_name, AuditReport, Check, EpochFigures};
pub use run::audit;
pub use snapshot::{Fetched, MintInfo, ProgramUpgrade, Snapshot, VaultInfo};
