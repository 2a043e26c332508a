//! Account types.

pub mod config;
pub mod credit_account;
pub mod epoch_ledger;
pub mod epoch_record;
pub mod fraud;
pub mod governance;
pub mod operator_claim;
pub mod oracle_bond;
pub mod pda;
pub mod pending_change;
pub mod price_feed;
pub mod proof;
pub mod proof_buffer;
pub mod view;

pub use config::*;
pub use credit_account::*;
pub use epoch_ledger::*;
pub use epoch_record::*;
pub use fraud::*;
pub use governance::*;
pub use operator_claim::*;
pub use oracle_bond::*;
pub use pending_change::*;
pub use price_feed::*;
pub use proof::*;
pub use proof_buffer::*;
pub use view::*;

/// Every account type, for the IDL. Anchor's IDL build lists only the account types that some
/// instruction takes as `Account<'info, T>`; `OperatorClaim` and `CreditAccount` never are, since
/// their first use creates them by hand ([`pda::load_or_create`], which also works at an address
/// someone sent lamports to first). `cargo run -p backhaul-idl -- write` runs this test (with the
/// `idl-build` feature, as Anchor's IDL build does) and adds what it prints to the IDL; its
/// `check` fails when an `#[account]` type of this module is missing from the list.
#[cfg(all(test, feature = "idl-build"))]
mod idl_build {
    use super::*;
    use anchor_lang::idl::serde_json;
    use anchor_lang::idl::types::{IdlAccount, IdlTypeDef};
    use anchor_lang::idl::IdlBuild;
    use anchor_lang::Discriminator;
    use std::collections::BTreeMap;

    /// Where `backhaul-idl` finds the printed JSON (`{"accounts": [...], "types": [...]}`).
    const BEGIN: &str = "--- backhaul-idl account types begin ---";
    const END: &str = "--- backhaul-idl account types end ---";

    /// What Anchor's IDL build records for an `Account<'info, T>` field: the account with its
    /// discriminator, its type and the types it refers to.
    fn add<T: IdlBuild + Discriminator>(
        accounts: &mut Vec<IdlAccount>,
        types: &mut BTreeMap<String, IdlTypeDef>,
    ) {
        let ty = T::create_type().expect("every #[account] type has an IDL type");
        accounts.push(IdlAccount {
            name: ty.name.clone(),
            discriminator: T::DISCRIMINATOR.into(),
        });
        types.insert(ty.name.clone(), ty);
        T::insert_types(types);
    }

    #[test]
    fn print_account_types() {
        let mut accounts = vec![];
        let mut types = BTreeMap::new();
        add::<Config>(&mut accounts, &mut types);
        add::<CreditAccount>(&mut accounts, &mut types);
        add::<EpochLedger>(&mut accounts, &mut types);
        add::<EpochRecord>(&mut accounts, &mut types);
        add::<OperatorClaim>(&mut accounts, &mut types);
        add::<OracleBond>(&mut accounts, &mut types);
        add::<PriceFeed>(&mut accounts, &mut types);
        add::<ProofBuffer>(&mut accounts, &mut types);
        let types: Vec<IdlTypeDef> = types.into_values().collect();
        let json = serde_json::json!({ "accounts": accounts, "types": types });
        println!("{BEGIN}");
        println!("{json}");
        println!("{END}");
    }
}
