//! The deployment itself: its addresses, its mint and vault, every program account naming its
//! config, and its epochs' order.

use crate::evidence::same;
use crate::governance;
use crate::report::{status_name, Checks};
use crate::snapshot::{Fetched, ProgramUpgrade, Snapshot};
use backhaul::state::{EpochLedger, EpochRecord, EpochStatus};
use backhaul_sdk::Deployment;
use std::collections::BTreeMap;

/// `deployment.addresses`, `deployment.mint`, `program.upgrade_authority` and `accounts.decoded`.
pub(crate) fn checks(c: &mut Checks, s: &Snapshot, d: &Deployment) {
    addresses_check(c, s, d);
    mint_check(c, s, d);
    upgrade_check(c, s);
    accounts_decoded_check(c, s, d);
}

/// Who can replace the program's code. The program cannot constrain its own upgrade authority,
/// so the audit reports it (`migrations/README.md` says how to put it under a time lock or make
/// the program immutable); it fails only when the ProgramData account cannot be read, since
/// then nobody can say who controls the code.
fn upgrade_check(c: &mut Checks, s: &Snapshot) {
    let (problems, evidence) = match &s.upgrade {
        ProgramUpgrade::Authority(key) => (
            vec![],
            format!(
                "program {} can be upgraded by {key}: whoever holds that key can replace every                  rule this audit checks; it should be a multisig behind a time lock at least as                  long as the governance delay ({} s)",
                s.program_id, s.config.governance_delay_secs
            ),
        ),
        ProgramUpgrade::Immutable => (
            vec![],
            format!("program {} is immutable: nobody can upgrade it", s.program_id),
        ),
        ProgramUpgrade::Unknown(why) => (
            vec![format!(
                "the ProgramData account of program {} could not be read: {why}",
                s.program_id
            )],
            "unknown who can upgrade the program".to_string(),
        ),
    };
    c.add("program.upgrade_authority", None, problems, evidence);
}

/// The config, vault and price feed are the PDAs of the mint, under the program these tools
/// know.
fn addresses_check(c: &mut Checks, s: &Snapshot, d: &Deployment) {
    let config = &s.config;
    let mut p = vec![];
    if d.config != s.config_address {
        p.push(format!(
            "the config was read at {} but the config PDA of mint {} is {}",
            s.config_address, config.mint, d.config
        ));
    }
    if s.program_id != backhaul_sdk::PROGRAM_ID {
        p.push(format!(
            "program {} is not the program these tools know ({})",
            s.program_id,
            backhaul_sdk::PROGRAM_ID
        ));
    }
    same(&mut p, "the config's vault", config.vault, d.vault());
    same(
        &mut p,
        "the config's price feed",
        config.price_feed,
        d.price_feed(),
    );
    match &s.price_feed {
        Some((key, feed)) => {
            same(&mut p, "the price feed's address", *key, d.price_feed());
            same(&mut p, "the price feed's config", feed.config, d.config);
        }
        None => p.push(format!("no price feed account at {}", d.price_feed())),
    }
    c.add(
        "deployment.addresses",
        None,
        p,
        format!(
            "config {} is the PDA of mint {}; vault {} and price feed {} are its PDAs",
            d.config,
            config.mint,
            d.vault(),
            d.price_feed()
        ),
    );
}

/// Only the config can mint the token, and the vault holds it and is owned by the config.
fn mint_check(c: &mut Checks, s: &Snapshot, d: &Deployment) {
    let config = &s.config;
    let mut p = vec![];
    match &s.mint {
        Some(m) => {
            if m.mint_authority != Some(s.config_address) {
                p.push(format!(
                    "the mint authority is {}, not the config {}: someone other than the program can mint",
                    m.mint_authority.map_or("none".to_string(), |k| k.to_string()),
                    s.config_address
                ));
            }
            same(&mut p, "the mint's decimals", m.decimals, config.decimals);
        }
        None => p.push(format!(
            "the mint {} does not exist or does not decode",
            config.mint
        )),
    }
    match &s.vault {
        Some((key, v)) => {
            same(&mut p, "the vault's address", *key, d.vault());
            same(&mut p, "the vault's mint", v.mint, config.mint);
            same(&mut p, "the vault's owner", v.owner, s.config_address);
        }
        None => p.push(format!(
            "the vault {} does not exist or does not decode",
            d.vault()
        )),
    }
    c.add(
        "deployment.mint",
        None,
        p,
        format!(
            "only the config {} can mint {} ({} decimals); the vault holds that mint and is owned by the config",
            s.config_address, config.mint, config.decimals
        ),
    );
}

/// Every account naming this config decodes as what its address says it is.
fn accounts_decoded_check(c: &mut Checks, s: &Snapshot, d: &Deployment) {
    let mut p: Vec<String> = s
        .unknown
        .iter()
        .map(|(k, why)| format!("account {k} does not decode: {why}"))
        .collect();
    for (k, r) in &s.records {
        same(
            &mut p,
            &format!("epoch record {k}'s address"),
            *k,
            d.epoch_record(r.epoch),
        );
        same(
            &mut p,
            &format!("epoch record {k}'s config"),
            r.config,
            d.config,
        );
    }
    for (k, l) in &s.ledgers {
        same(
            &mut p,
            &format!("ledger {k}'s address"),
            *k,
            d.ledger(l.epoch),
        );
        same(&mut p, &format!("ledger {k}'s config"), l.config, d.config);
    }
    for (k, a) in &s.claims {
        same(
            &mut p,
            &format!("claim record {k}'s address"),
            *k,
            d.operator_claim(&a.operator),
        );
        same(
            &mut p,
            &format!("claim record {k}'s config"),
            a.config,
            d.config,
        );
    }
    for (k, a) in &s.credits {
        same(
            &mut p,
            &format!("credit account {k}'s address"),
            *k,
            d.credits(&a.buyer),
        );
        same(
            &mut p,
            &format!("credit account {k}'s config"),
            a.config,
            d.config,
        );
    }
    governance::queued_change_problems(&mut p, s, d);
    c.add(
        "accounts.decoded",
        None,
        p,
        format!(
            "{} epoch records, {} ledgers, {} claim records, {} credit accounts, {} queued changes, all at their PDAs",
            s.records.len(),
            s.ledgers.len(),
            s.claims.len(),
            s.credits.len(),
            s.changes.len()
        ),
    );
}

/// Epochs 0..n without gaps, finalized exactly below `next_epoch`, each with a sealed ledger and
/// a dataset when it has a proposal.
pub(crate) fn contiguity_check(
    c: &mut Checks,
    s: &Snapshot,
    records: &BTreeMap<u64, &EpochRecord>,
    ledgers: &BTreeMap<u64, &EpochLedger>,
    datasets: &BTreeMap<u64, Fetched>,
) {
    let next = s.config.next_epoch;
    let mut p = vec![];
    if records.len() != s.records.len() {
        p.push("two epoch records hold the same epoch".to_string());
    }
    for (i, e) in records.keys().enumerate() {
        if *e != i as u64 {
            p.push(format!("epoch {i} has no record but epoch {e} has one"));
            break;
        }
    }
    for e in 0..next {
        match records.get(&e) {
            Some(r) if r.status == EpochStatus::Finalized => {}
            Some(r) => p.push(format!(
                "epoch {e} is below next_epoch {next} but {}",
                status_name(r.status)
            )),
            None => p.push(format!(
                "epoch {e} is below next_epoch {next} but has no record"
            )),
        }
        match ledgers.get(&e) {
            Some(l) if l.sealed => {}
            Some(_) => p.push(format!(
                "epoch {e} is finalized but its ledger is not sealed"
            )),
            None => p.push(format!("epoch {e} is finalized but has no ledger")),
        }
    }
    for (e, r) in records.range(next..) {
        if r.status == EpochStatus::Finalized {
            p.push(format!("epoch {e} is finalized but next_epoch is {next}"));
        }
    }
    let with_proposal: Vec<u64> = records
        .iter()
        .filter(|(_, r)| matches!(r.status, EpochStatus::Proposed | EpochStatus::Finalized))
        .map(|(e, _)| *e)
        .collect();
    let missing: Vec<String> = with_proposal
        .iter()
        .filter(|e| datasets.get(e).is_none_or(|f| f.bytes.is_err()))
        .map(|e| e.to_string())
        .collect();
    if !missing.is_empty() {
        p.push(format!("no dataset for epoch(s) {}", missing.join(", ")));
    }
    c.add(
        "epochs.contiguous",
        None,
        p,
        format!(
            "epochs 0..{next} finalized in order with sealed ledgers; {} epoch(s) with a proposal, each with a dataset",
            with_proposal.len()
        ),
    );
}
