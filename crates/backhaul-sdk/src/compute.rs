//! Compute budgets: the compute-unit limit a transaction asks for, taken from what a simulation
//! of it used plus a margin, and the compute-budget instructions that set the limit and the
//! priority fee. The command line and the oracle both size their transactions this way:
//!
//! 1. simulate the instructions behind [`simulation_budget`] (the highest limit, no price), and
//!    stop there if the simulation fails;
//! 2. send them behind [`budget_instructions`]`(`[`limit_from_simulation`]`(units), price)`.
//!
//! The priority fee is paid per unit of the limit, so a limit close to the units used keeps it
//! close to what the transaction needs.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use solana_compute_budget_interface::ComputeBudgetInstruction;

/// The most compute units one transaction may use (the runtime's bound).
pub const MAX_COMPUTE_UNIT_LIMIT: u32 = 1_400_000;

/// The limit a transaction is simulated with, so that the simulation never runs out of units.
pub const SIMULATION_COMPUTE_UNIT_LIMIT: u32 = MAX_COMPUTE_UNIT_LIMIT;

/// Headroom over the simulated units, in percent of them (rounded up) ...
pub const MARGIN_PERCENT: u32 = 10;

/// ... plus this many units: the compute-budget instructions the simulation did not carry (the
/// price) and small differences between the simulated path and the landed one.
pub const MARGIN_UNITS: u32 = 1_000;

/// The compute-budget program, which every budget instruction is for.
pub const COMPUTE_BUDGET_PROGRAM_ID: Pubkey = solana_compute_budget_interface::ID;

/// The limit for a transaction whose simulation consumed `units_consumed`: the units plus
/// [`MARGIN_PERCENT`] (rounded up) plus [`MARGIN_UNITS`], at most [`MAX_COMPUTE_UNIT_LIMIT`].
pub fn limit_from_simulation(units_consumed: u64) -> u32 {
    let percent = units_consumed
        .saturating_mul(u64::from(MARGIN_PERCENT))
        .div_ceil(100);
    let limit = units_consumed
        .saturating_add(percent)
        .saturating_add(u64::from(MARGIN_UNITS))
        .min(u64::from(MAX_COMPUTE_UNIT_LIMIT));
    u32::try_from(limit).unwrap_or(MAX_COMPUTE_UNIT_LIMIT)
}

/// `SetComputeUnitLimit(limit)`, then `SetComputeUnitPrice(price)` when a price (micro-lamports
/// per compute unit) is given.
pub fn budget_instructions(limit: u32, price: Option<u64>) -> Vec<Instruction> {
    let mut ixs = vec![ComputeBudgetInstruction::set_compute_unit_limit(limit)];
    if let Some(price) = price {
        ixs.push(ComputeBudgetInstruction::set_compute_unit_price(price));
    }
    ixs
}

/// `ixs` behind the compute-budget instructions for `limit` and `price`.
pub fn with_budget(limit: u32, price: Option<u64>, ixs: &[Instruction]) -> Vec<Instruction> {
    let mut all = budget_instructions(limit, price);
    all.extend_from_slice(ixs);
    all
}

/// `ixs` as they are simulated to measure them: behind the highest limit and no price (a price
/// would charge the fee payer for the provisional limit, which a payer with little SOL might
/// not afford; its instruction's few units are within [`MARGIN_UNITS`]).
pub fn simulation_budget(ixs: &[Instruction]) -> Vec<Instruction> {
    with_budget(SIMULATION_COMPUTE_UNIT_LIMIT, None, ixs)
}

/// The limit a compiled instruction sets, if it is a `SetComputeUnitLimit` for `program_id`
/// (to read a landed transaction back).
pub fn decode_compute_unit_limit(program_id: &Pubkey, data: &[u8]) -> Option<u32> {
    if *program_id != COMPUTE_BUDGET_PROGRAM_ID {
        return None;
    }
    // Borsh: the variant's index (2 for SetComputeUnitLimit), then the u32, little-endian.
    match data {
        [2, a, b, c, d] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The limit `ixs` set (the first `SetComputeUnitLimit` among them).
pub fn compute_unit_limit_of(ixs: &[Instruction]) -> Option<u32> {
    ixs.iter()
        .find_map(|ix| decode_compute_unit_limit(&ix.program_id, &ix.data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_ten_percent_rounded_up_and_a_thousand_units() {
        assert_eq!(limit_from_simulation(0), 1_000);
        assert_eq!(limit_from_simulation(1), 1_002);
        assert_eq!(limit_from_simulation(10), 1_011);
        assert_eq!(limit_from_simulation(31_500), 31_500 + 3_150 + 1_000);
        assert_eq!(limit_from_simulation(31_501), 31_501 + 3_151 + 1_000);
        // Never above what a transaction may use, whatever the simulation says.
        assert_eq!(
            limit_from_simulation(1_270_000),
            1_270_000 + 127_000 + 1_000
        );
        assert_eq!(limit_from_simulation(1_272_000), MAX_COMPUTE_UNIT_LIMIT);
        assert_eq!(limit_from_simulation(1_300_000), MAX_COMPUTE_UNIT_LIMIT);
        assert_eq!(limit_from_simulation(u64::MAX), MAX_COMPUTE_UNIT_LIMIT);
        for units in [0, 7, 999, 12_345, 200_000, 1_399_999] {
            let limit = u64::from(limit_from_simulation(units));
            assert!(limit >= units.min(u64::from(MAX_COMPUTE_UNIT_LIMIT)));
            assert!(limit <= u64::from(MAX_COMPUTE_UNIT_LIMIT));
        }
    }

    #[test]
    fn budget_instructions_set_the_limit_then_the_price() {
        let ixs = budget_instructions(12_345, Some(7));
        assert_eq!(ixs.len(), 2);
        assert!(ixs
            .iter()
            .all(|ix| ix.program_id == COMPUTE_BUDGET_PROGRAM_ID));
        assert_eq!(
            ixs[0].data,
            ComputeBudgetInstruction::set_compute_unit_limit(12_345).data
        );
        assert_eq!(
            ixs[1].data,
            ComputeBudgetInstruction::set_compute_unit_price(7).data
        );
        assert_eq!(budget_instructions(5, None).len(), 1);
    }

    #[test]
    fn a_limit_is_read_back_from_its_instruction_only() {
        let other = Instruction {
            program_id: Pubkey::new_unique(),
            accounts: vec![],
            data: ComputeBudgetInstruction::set_compute_unit_limit(9).data,
        };
        let ixs = with_budget(54_321, Some(1), std::slice::from_ref(&other));
        assert_eq!(ixs.len(), 3);
        assert_eq!(ixs[2], other);
        assert_eq!(compute_unit_limit_of(&ixs), Some(54_321));
        // The same bytes for another program, or the price instruction, set no limit.
        assert_eq!(compute_unit_limit_of(&[other]), None);
        assert_eq!(compute_unit_limit_of(&ixs[1..2]), None);
        assert_eq!(
            compute_unit_limit_of(&simulation_budget(&[])),
            Some(SIMULATION_COMPUTE_UNIT_LIMIT)
        );
        assert_eq!(simulation_budget(&[]).len(), 1, "no price while measuring");
    }
}
