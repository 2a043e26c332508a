//! What Anchor's IDL build leaves out, added to the IDL it builds.
//!
//! - **Account types created by hand.** Anchor lists an account type only when some instruction
//!   takes it as `Account<'info, T>`. `OperatorClaim` and `CreditAccount` are created by
//!   `pda::load_or_create` on first use (so that lamports sent to the address first cannot block
//!   it) and are never taken that way. The program prints every account type, built by the same
//!   `IdlBuild` impls Anchor uses (the test `state::idl_build::print_account_types`); they are
//!   merged here, and the ones Anchor already listed must come out identical.
//! - **The event CPI accounts.** Anchor 1.2.2's `#[event_cpi]` pins `event_authority` with
//!   `address = crate::EVENT_AUTHORITY_AND_BUMP.0`, which its IDL build cannot turn into an
//!   address or seeds, and says nothing of `program`. Both are fixed: the PDA
//!   `["__event_authority"]` of the program, and the program itself.

use std::collections::{BTreeMap, BTreeSet};

use anchor_lang_idl::{
    serde_json::{self, Value},
    types::{
        Idl, IdlAccount, IdlInstructionAccount, IdlInstructionAccountItem, IdlPda, IdlSeed,
        IdlSeedConst, IdlTypeDef,
    },
};
use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Anchor's seed of the event authority PDA (`anchor_syn::parser::accounts::event_cpi`).
pub const EVENT_AUTHORITY_SEED: &[u8] = b"__event_authority";

/// The program's own list of its account types, with every type they refer to.
#[derive(Debug, Deserialize)]
pub struct AccountTypes {
    pub accounts: Vec<IdlAccount>,
    pub types: Vec<IdlTypeDef>,
}

impl AccountTypes {
    /// Parses what the program's test prints between `begin` and `end`.
    pub fn from_output(stdout: &str, begin: &str, end: &str) -> Result<Self> {
        let start = stdout
            .find(begin)
            .with_context(|| format!("the program printed no `{begin}` line"))?;
        let body = &stdout[start.saturating_add(begin.len())..];
        let stop = body
            .find(end)
            .with_context(|| format!("the program printed no `{end}` line"))?;
        let mut value: Value = serde_json::from_str(body[..stop].trim())
            .context("the program's account types are not valid JSON")?;
        shorten_module_paths(&mut value)?;
        serde_json::from_value(value).context("the program's account types are not IDL accounts")
    }
}

/// Replaces module paths (`backhaul::state::claim::OperatorClaim`) by their last segment, as
/// Anchor's IDL build does (its `convert_module_paths`). Two different paths ending in the same
/// name are an error: Anchor would keep both paths, and this program has no such types.
fn shorten_module_paths(value: &mut Value) -> Result<()> {
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    visit_strings(value, &mut |s| {
        if let Some(name) = last_segment(s) {
            paths.entry(name.to_owned()).or_default().insert(s.clone());
        }
    });
    if let Some((name, clash)) = paths.iter().find(|(_, p)| p.len() > 1) {
        bail!(
            "two types are named `{name}` ({}); rename one so that the IDL can name both",
            clash.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    visit_strings(value, &mut |s| {
        if let Some(name) = last_segment(s) {
            *s = name.to_owned();
        }
    });
    Ok(())
}

/// `Some("Name")` for a whole-string module path `a::b::Name` (what Anchor's regex
/// `"(\w+::)+(\w+)"` matches), `None` for anything else.
fn last_segment(s: &str) -> Option<&str> {
    let is_word = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_');
    let (_, name) = s.rsplit_once("::")?;
    s.split("::").all(is_word).then_some(name)
}

fn visit_strings(value: &mut Value, f: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| visit_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| visit_strings(v, f)),
        _ => {}
    }
}

/// Adds the program's account types to `idl`, and the event CPI accounts' seeds and address.
pub fn complete(mut idl: Idl, program: AccountTypes) -> Result<Idl> {
    for account in program.accounts {
        match idl.accounts.iter().find(|a| a.name == account.name) {
            Some(listed) if listed.discriminator != account.discriminator => bail!(
                "account `{}`: the program's discriminator {:?} differs from the one Anchor's IDL \
                 build gives, {:?}",
                account.name,
                account.discriminator,
                listed.discriminator
            ),
            Some(_) => {}
            None => idl.accounts.push(account),
        }
    }
    for ty in program.types {
        match idl.types.iter().find(|t| t.name == ty.name) {
            Some(listed) if *listed != ty => bail!(
                "type `{}`: the program's definition differs from the one Anchor's IDL build \
                 gives; see `cargo run -p backhaul-idl -- print`",
                ty.name
            ),
            Some(_) => {}
            None => idl.types.push(ty),
        }
    }
    let address = idl.address.clone();
    for ix in &mut idl.instructions {
        complete_event_cpi(&mut ix.accounts, &address);
    }
    // Anchor's IDL build sorts these by name.
    idl.accounts.sort_by(|a, b| a.name.cmp(&b.name));
    idl.types.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(idl)
}

/// `event_authority` followed by `program` (the pair `#[event_cpi]` appends, and the only place
/// Anchor's TypeScript client recognizes them): the PDA `["__event_authority"]` and the program.
fn complete_event_cpi(accounts: &mut [IdlInstructionAccountItem], program_id: &str) {
    for item in accounts.iter_mut() {
        if let IdlInstructionAccountItem::Composite(group) = item {
            complete_event_cpi(&mut group.accounts, program_id);
        }
    }
    let Some(at) = (0..accounts.len().saturating_sub(1)).find(|&i| {
        item_name(&accounts[i]) == "event_authority"
            && item_name(&accounts[i.saturating_add(1)]) == "program"
    }) else {
        return;
    };
    if let IdlInstructionAccountItem::Single(authority) = &mut accounts[at] {
        if authority.pda.is_none() && authority.address.is_none() {
            authority.pda = Some(IdlPda {
                seeds: vec![IdlSeed::Const(IdlSeedConst {
                    value: EVENT_AUTHORITY_SEED.to_vec(),
                })],
                program: None,
            });
        }
    }
    if let Some(IdlInstructionAccountItem::Single(program)) = accounts.get_mut(at.saturating_add(1))
    {
        if program.address.is_none() && program.pda.is_none() {
            program.address = Some(program_id.to_owned());
        }
    }
}

pub fn item_name(item: &IdlInstructionAccountItem) -> &str {
    match item {
        IdlInstructionAccountItem::Single(IdlInstructionAccount { name, .. }) => name,
        IdlInstructionAccountItem::Composite(group) => &group.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang_idl::types::IdlInstructionAccount;

    fn single(name: &str) -> IdlInstructionAccountItem {
        IdlInstructionAccountItem::Single(IdlInstructionAccount {
            name: name.into(),
            docs: vec![],
            writable: false,
            signer: false,
            optional: false,
            address: None,
            pda: None,
            relations: vec![],
        })
    }

    #[test]
    fn module_paths_become_names() {
        let mut v = serde_json::json!({
            "accounts": [{ "name": "backhaul::state::operator_claim::OperatorClaim" }],
            "types": [{ "name": "backhaul::state::epoch_record::EpochRecord",
                        "docs": ["see backhaul::x::Y for more", "a::b"],
                        "ty": { "defined": { "name": "backhaul::state::epoch_record::Vote" } } }],
        });
        shorten_module_paths(&mut v).unwrap();
        assert_eq!(v["accounts"][0]["name"], "OperatorClaim");
        assert_eq!(v["types"][0]["name"], "EpochRecord");
        assert_eq!(v["types"][0]["ty"]["defined"]["name"], "Vote");
        // A sentence is not a path; a bare `a::b` is (as for Anchor's regex).
        assert_eq!(v["types"][0]["docs"][0], "see backhaul::x::Y for more");
        assert_eq!(v["types"][0]["docs"][1], "b");
        assert_eq!(last_segment("Config"), None);
        assert_eq!(last_segment("a::"), None);
    }

    #[test]
    fn two_types_with_one_name_are_refused() {
        let mut v = serde_json::json!(["a::state::Vote", "a::other::Vote", "a::state::Vote"]);
        let err = shorten_module_paths(&mut v).unwrap_err().to_string();
        assert!(err.contains("two types are named `Vote`"), "{err}");
    }

    #[test]
    fn the_printed_account_types_are_found_between_the_markers() {
        let out = "running 1 test\nB\n{\"accounts\":[{\"name\":\"a::B\",\"discriminator\":[1,2]}],\
                   \"types\":[]}\nE\n.\ntest result: ok.";
        let parsed = AccountTypes::from_output(out, "B", "E").unwrap();
        assert_eq!(parsed.accounts.len(), 1);
        assert_eq!(parsed.accounts[0].name, "B");
        assert_eq!(parsed.accounts[0].discriminator, vec![1, 2]);
        assert!(AccountTypes::from_output("nothing", "B", "E").is_err());
    }

    #[test]
    fn event_cpi_accounts_get_their_seeds_and_address() {
        let mut accounts = vec![
            single("config"),
            single("event_authority"),
            single("program"),
        ];
        complete_event_cpi(
            &mut accounts,
            "Prog1111111111111111111111111111111111111111",
        );
        let IdlInstructionAccountItem::Single(authority) = &accounts[1] else {
            panic!("single")
        };
        let pda = authority.pda.as_ref().expect("seeds");
        assert_eq!(
            pda.seeds,
            vec![IdlSeed::Const(IdlSeedConst {
                value: b"__event_authority".to_vec()
            })]
        );
        assert_eq!(pda.program, None);
        let IdlInstructionAccountItem::Single(program) = &accounts[2] else {
            panic!("single")
        };
        assert_eq!(
            program.address.as_deref(),
            Some("Prog1111111111111111111111111111111111111111")
        );
        // Names elsewhere, or not next to each other, are left alone.
        let mut other = vec![
            single("event_authority"),
            single("config"),
            single("program"),
        ];
        complete_event_cpi(&mut other, "P");
        assert!(other.iter().all(|a| match a {
            IdlInstructionAccountItem::Single(a) => a.pda.is_none() && a.address.is_none(),
            IdlInstructionAccountItem::Composite(_) => false,
        }));
    }
}
