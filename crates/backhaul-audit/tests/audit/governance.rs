//! Parameters changed or pending since an epoch (`budget.parameters`), and queued changes
//! (`accounts.decoded`).

use crate::fixture::*;
use anchor_lang::prelude::Pubkey;
use anchor_lang::AccountSerialize;
use backhaul::state::{GovernanceChange, PendingChange, PendingParams};

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
