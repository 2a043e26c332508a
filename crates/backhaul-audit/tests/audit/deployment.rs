//! `deployment.addresses`, `deployment.mint`, `program.upgrade_authority`, `accounts.decoded` and `epochs.contiguous`.

use crate::fixture::*;
use anchor_lang::prelude::Pubkey;
use anchor_lang::Discriminator;
use backhaul::state::{EpochLedger, EpochStatus};

#[test]
fn gaps_and_out_of_order_finalization_fail_contiguity() {
    let mut f = Fixture::new();
    f.record(1).status = EpochStatus::Proposed;
    let evidence = failed(&f.run(), "epochs.contiguous");
    assert!(evidence.contains("below next_epoch"), "{evidence}");

    let mut f = Fixture::new();
    f.snapshot.records.retain(|(_, r)| r.epoch != 0);
    let evidence = failed(&f.run(), "epochs.contiguous");
    assert!(evidence.contains("no record"), "{evidence}");

    let mut f = Fixture::new();
    f.ledger(0).sealed = false;
    let evidence = failed(&f.run(), "epochs.contiguous");
    assert!(evidence.contains("not sealed"), "{evidence}");
}

#[test]
fn wrong_addresses_mint_or_vault_fail_the_deployment_checks() {
    let mut f = Fixture::new();
    f.snapshot.price_feed = None;
    failed(&f.run(), "deployment.addresses");

    let mut f = Fixture::new();
    f.snapshot.config_address = Pubkey::new_from_array([1; 32]);
    let evidence = failed(&f.run(), "deployment.addresses");
    assert!(evidence.contains("config PDA"), "{evidence}");

    // A mint someone else can mint with.
    let mut f = Fixture::new();
    f.snapshot.mint.as_mut().unwrap().mint_authority = Some(Pubkey::new_from_array([5; 32]));
    let evidence = failed(&f.run(), "deployment.mint");
    assert!(evidence.contains("mint authority"), "{evidence}");

    // A vault of another mint.
    let mut f = Fixture::new();
    f.snapshot.vault.as_mut().unwrap().1.mint = Pubkey::new_from_array([6; 32]);
    let evidence = failed(&f.run(), "deployment.mint");
    assert!(evidence.contains("vault's mint"), "{evidence}");
}

#[test]
fn undecodable_or_misplaced_accounts_fail_decoding() {
    let mut f = Fixture::new();
    f.snapshot.add_program_account(
        Pubkey::new_from_array([3; 32]),
        &[1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("unknown account type"), "{evidence}");

    // A credit account at another buyer's address.
    let mut f = Fixture::new();
    f.snapshot.credits[0].1.buyer = Pubkey::new_from_array([0xEE; 32]);
    let evidence = failed(&f.run(), "accounts.decoded");
    assert!(evidence.contains("credit account"), "{evidence}");

    // A known type whose data is cut short.
    let mut f = Fixture::new();
    let mut data = EpochLedger::DISCRIMINATOR.to_vec();
    data.extend_from_slice(&[0; 10]);
    f.snapshot
        .add_program_account(Pubkey::new_from_array([4; 32]), &data);
    failed(&f.run(), "accounts.decoded");
}

/// The audit reports who can replace the program's code: an upgrade authority or an immutable
/// program passes, with the authority named in the evidence; an unreadable ProgramData account
/// fails, since then nobody can say who controls the code.
#[test]
fn the_upgrade_authority_is_reported() {
    let f = Fixture::new();
    let report = f.run();
    passed(&report, "program.upgrade_authority");
    let c = report.check("program.upgrade_authority").unwrap();
    assert!(
        c.evidence
            .contains(&Pubkey::new_from_array([0x55; 32]).to_string()),
        "{}",
        c.evidence
    );

    let mut f = Fixture::new();
    f.snapshot.upgrade = backhaul_audit::ProgramUpgrade::Immutable;
    let report = f.run();
    passed(&report, "program.upgrade_authority");
    assert!(report
        .check("program.upgrade_authority")
        .unwrap()
        .evidence
        .contains("immutable"));

    let mut f = Fixture::new();
    f.snapshot.upgrade = backhaul_audit::ProgramUpgrade::Unknown("no such account".into());
    let evidence = failed(&f.run(), "program.upgrade_authority");
    assert!(evidence.contains("could not be read"), "{evidence}");
}
