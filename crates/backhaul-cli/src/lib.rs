//! The `backhaul` command line as a library: every command is a function over a [`Context`], so
//! the demo and the tests run exactly the code a user runs.
//!
//! | module | for |
//! |---|---|
//! | [`context`] | the global options: cluster URL, keypair, deployment, oracles, output |
//! | [`operator`] | node operators: bind a node, see pending rewards, claim |
//! | [`firm`] | AI firms: buy credits, balance and unsettled usage, settle, grant and revoke clients |
//! | [`admin`] | admins: initialize, queue / apply / cancel governance changes (parameters, oracles, guardians), admin transfer, pause |
//! | [`oracle_bond`] | oracle operators: deposit, unbond, withdraw and show their bond |
//! | [`node`] | node operators: `node serve`, the node service with the chain's clock and a credit check |
//! | [`gateway`] | AI firms: `firm gateway`, the local proxy through nodes, and grant files |
//! | [`relay`] | `backhaul relay`: the rendezvous through which gateways reach nodes behind NAT |
//! | [`guardian`] | guardians: veto an epoch, cancel a queued change, pause, what a guardian watches |
//! | [`audit`] | auditors: reconcile the chain with the published datasets |
//! | [`dashboard`] | everyone: `backhaul dashboard`, a web page of verified figures |
//! | [`demo`] | the whole network on the local endpoint, in one command |
//! | [`tx`] | sending transactions: compute-unit limit from a simulation, spinner, program errors explained |
//! | [`buffer`] | proofs too large for one transaction, through a proof buffer |
//! | [`amount`] | token amounts with the mint's decimals |
//! | [`proofs`] | proofs from the oracles, checked against the chain |
//! | [`error`] | the errors commands return on purpose |

pub mod admin;
pub mod amount;
pub mod audit;
pub mod buffer;
pub mod cli;
pub mod context;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod firm;
pub mod gateway;
pub mod guardian;
pub mod node;
pub mod operator;
pub mod oracle_bond;
pub mod output;
pub mod proofs;
pub mod relay;
pub mod tx;

pub use context::Context;
