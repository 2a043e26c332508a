//! Fault tests: oracles given different inputs, vetoed, down or joining late still agree;
//! oracle processes killed with SIGKILL in a loop, the database made unavailable or
//! full, the chain's endpoint down or slow. `BACKHAUL_FAULT_KILLS` sets the loop's length (10 by
//! default; `scripts/fault-loop.sh` runs a long one) and `BACKHAUL_FAULT_SEED` repeats a run.

mod agreement;
mod database;
mod harness;
mod kill_loop;
mod late;
mod publish;
mod rpc;
