//! Parameters changed or pending since an epoch (`budget.parameters`, `consensus.parameters`),
//! and queued changes (`accounts.decoded`).

use crate::fixture::*;
use anchor_lang::prelude::Pubkey;
use anchor_lang::AccountSerialize;
use backhaul::state::{Config, GovernanceChange, PendingChange, PendingParams};

#[test]
fn parameters_changed_since_an_epoch_are_flagged_with_what_to_check() {
    let mut f = Fixture::new();
    f.cfg().economics.net_emissions_cap += 1;
    let r = f.run();
    let evidence = failed(&r, "epoch-0/budget.parameters");
    assert!(
        evidence.contains("net_emissions_cap (vs the config)"),
        "{evidence}"
    );
    assert!(evidence.contains("`ChangeApplied` events"), "{evidence}");
    // The budget itself still matches what the program recorded at finalize.
    passed(&r, "epoch-0/budget.within");
}

#[test]
fn parameters_pending_for_a_later_epoch_are_compared_from_that_epoch() {
    // Applied after epoch 1 for epoch 2 on: epochs 0 and 1 still match the parameters in force.
    let mut f = Fixture::new();
    let mut params = f.snapshot.config.current_params();
    params.economics.net_emissions_cap += 1;
    f.cfg().pending_params = Some(PendingParams {
        from_epoch: 2,
        params,
    });
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);

    // Pending from epoch 1: epoch 1's dataset should have used them.
    f.cfg().pending_params = Some(PendingParams {
        from_epoch: 1,
        params,
    });
    let r = f.run();
    passed(&r, "epoch-0/budget.parameters");
    let evidence = failed(&r, "epoch-1/budget.parameters");
    assert!(
        evidence.contains("net_emissions_cap (vs the config)")
            && evidence.contains("`ChangeApplied` events"),
        "{evidence}"
    );
}

#[test]
fn a_dataset_closed_with_other_consensus_parameters_fails() {
    // Each of the three values the close prices and counts bandwidth with.
    type Tweak = (fn(&mut Config), &'static str);
    let tweaks: [Tweak; 3] = [
        (
            |c| c.consensus.credits_per_gib += 1,
            "credits_per_gib (vs the config)",
        ),
        (
            |c| c.consensus.pair_cap_bytes -= 1,
            "pair_cap_bytes (vs the config)",
        ),
        (
            |c| c.consensus.max_rate_bytes_per_sec *= 2,
            "max_rate_bytes_per_sec (vs the config)",
        ),
    ];
    for (tweak, what) in tweaks {
        let mut f = Fixture::new();
        tweak(f.cfg());
        let r = f.run();
        for e in [0, 1] {
            let evidence = failed(&r, &format!("epoch-{e}/consensus.parameters"));
            assert!(
                evidence.contains(what) && evidence.contains("`ChangeApplied` events"),
                "{evidence}"
            );
        }
        // Only this check: the budget's parameters are the chain's.
        passed(&r, "epoch-1/budget.parameters");
    }
    // The grace period is not in the dataset: the chain's is not compared.
    let mut f = Fixture::new();
    f.cfg().consensus.grace_secs += 1;
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);
}

#[test]
fn consensus_parameters_pending_for_a_later_epoch_are_compared_from_that_epoch() {
    let mut f = Fixture::new();
    let mut params = f.snapshot.config.current_params();
    params.consensus.credits_per_gib *= 2;
    f.cfg().pending_params = Some(PendingParams {
        from_epoch: 2,
        params,
    });
    let r = f.run();
    assert!(r.passed, "{:?}", r.failed);
    f.cfg().pending_params = Some(PendingParams {
        from_epoch: 1,
        params,
    });
    let r = f.run();
    passed(&r, "epoch-0/consensus.parameters");
    let evidence = failed(&r, "epoch-1/consensus.parameters");
    assert!(
        evidence.contains("credits_per_gib (vs the config) is 50000, expected 100000"),
        "{evidence}"
    );
}

#[test]
fn queued_changes_decode_at_their_addresses() {
    let mut f = Fixture::new();
    let d = f.d();
    f.cfg().next_change_id = 1;
    let change = PendingChange {
        config: d.config,
        id: 0,
        bump: 255,
        queued_by: f.snapshot.config.admin,
        queued_at: GENESIS,
        executable_at: GENESIS + 2 * EPOCH_SECS as i64,
        change: GovernanceChange::Guardians {
            guardians: vec![Pubkey::new_from_array([0x11; 32])],
        },
    };
    let mut data = vec![];
    change.try_serialize(&mut data).unwrap();
    let mut good = Fixture::new();
    good.cfg().next_change_id = 1;
    good.snapshot
        .add_program_account(d.pending_change(0), &data);
    let r = good.run();
    assert!(r.passed, "{:?}", r.failed);
    assert!(r
        .check("accounts.decoded")
        .unwrap()
        .evidence
        .contains("1 queued changes"));

    // At another id's address, or with an id the config never gave out.
    f.snapshot.add_program_account(d.pending_change(1), &data);
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("queued change"), "{evidence}");
    let mut f = Fixture::new();
    f.snapshot.add_program_account(d.pending_change(0), &data);
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("next change id 0"), "{evidence}");
}
