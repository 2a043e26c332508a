//! What the IDL must hold for a client that has nothing else: every account type of
//! `programs/backhaul/src/state/`, every event, and the seeds of every PDA an instruction takes.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anchor_lang_idl::types::{Idl, IdlInstructionAccountItem};
use anyhow::{Context, Result};

use crate::WRITE_CMD;

/// The program's sources, relative to the workspace root.
pub const STATE_DIR: &str = "programs/backhaul/src/state";
pub const SRC_DIR: &str = "programs/backhaul/src";
pub const EVENTS_FILE: &str = "programs/backhaul/src/events.rs";
/// Where the program lists its account types for the IDL (see `complete`).
const ACCOUNT_LIST: &str = "`print_account_types` in programs/backhaul/src/state/mod.rs";

/// PDAs that instructions take without seeds on purpose, and why.
const ROOTS: &[(&str, &str)] = &[(
    "config",
    "the deployment's address, which clients start from (derived from the mint by `initialize`'s \
     seeds); in other instructions nothing it derives from is at hand",
)];

/// A named item of the program's source and the file it is in (relative to the workspace root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceItem {
    pub name: String,
    pub file: String,
}

/// What the program's source declares.
#[derive(Clone, Debug, Default)]
pub struct ProgramSource {
    /// `#[account]` structs of the state module.
    pub account_types: Vec<SourceItem>,
    /// `#[event]` structs, and the events named by `emit!` / `emit_cpi!`.
    pub events: Vec<SourceItem>,
}

impl ProgramSource {
    pub fn read(root: &Path) -> Result<Self> {
        let mut account_types = vec![];
        for (file, text) in rust_files(root, STATE_DIR)? {
            for name in attributed_structs(&text, "account") {
                account_types.push(SourceItem {
                    name,
                    file: file.clone(),
                });
            }
        }
        let mut events = vec![];
        let text = fs::read_to_string(root.join(EVENTS_FILE))
            .with_context(|| format!("cannot read {EVENTS_FILE}"))?;
        for name in attributed_structs(&text, "event") {
            events.push(SourceItem {
                name,
                file: EVENTS_FILE.into(),
            });
        }
        for (file, text) in rust_files(root, SRC_DIR)? {
            for name in emitted_events(&text) {
                if !events.iter().any(|e| e.name == name) {
                    events.push(SourceItem {
                        name,
                        file: file.clone(),
                    });
                }
            }
        }
        Ok(ProgramSource {
            account_types,
            events,
        })
    }
}

/// Every `.rs` file under `dir` (relative to `root`), with its text, in a stable order.
fn rust_files(root: &Path, dir: &str) -> Result<Vec<(String, String)>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut paths = vec![];
    walk(&root.join(dir), &mut paths)?;
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            Ok((rel.display().to_string(), text))
        })
        .collect()
}

/// Names of the structs that carry `#[attr]` or `#[attr(...)]` (docs, other attributes and
/// comments may sit between the attribute and the struct).
pub fn attributed_structs(text: &str, attr: &str) -> Vec<String> {
    let bare = format!("#[{attr}]");
    let with_args = format!("#[{attr}(");
    let mut names = vec![];
    let mut pending = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with(&bare) || line.starts_with(&with_args) {
            pending = true;
            continue;
        }
        if !pending || line.is_empty() || line.starts_with("#[") || line.starts_with("//") {
            continue;
        }
        pending = false;
        let rest = line.strip_prefix("pub ").unwrap_or(line);
        let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
        if let Some(rest) = rest.strip_prefix("struct ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The event types named by `emit!(Name { .. })` and `emit_cpi!(Name { .. })`.
pub fn emitted_events(text: &str) -> Vec<String> {
    let mut names = vec![];
    for macro_call in ["emit!(", "emit_cpi!("] {
        let mut rest = text;
        while let Some(at) = rest.find(macro_call) {
            rest = &rest[at.saturating_add(macro_call.len())..];
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.chars().next().is_some_and(char::is_uppercase) && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// `OperatorClaim` → `operator_claim`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every way `idl` falls short of what a client needs, each with what to do; empty when none.
pub fn problems(idl: &Idl, source: &ProgramSource) -> Vec<String> {
    let mut out = vec![];
    for ty in &source.account_types {
        let listed = idl.accounts.iter().any(|a| a.name == ty.name);
        let defined = idl.types.iter().any(|t| t.name == ty.name);
        if !listed || !defined {
            let missing = match (listed, defined) {
                (false, false) => "from the IDL's `accounts` and `types`",
                (false, true) => "from the IDL's `accounts`",
                _ => "from the IDL's `types`",
            };
            out.push(format!(
                "account type `{}` ({}) is missing {missing}, so clients can neither fetch nor \
                 decode it: list it in {ACCOUNT_LIST} (Anchor's IDL build only sees the types an \
                 instruction takes as `Account<'info, {}>`), then run `{WRITE_CMD}`",
                ty.name, ty.file, ty.name
            ));
        }
    }
    for event in &source.events {
        if !idl.events.iter().any(|e| e.name == event.name) {
            out.push(format!(
                "event `{}` ({}) is missing from the IDL's `events`, so clients cannot decode it: \
                 declare it with `#[event]` in {EVENTS_FILE} and emit it with `emit_cpi!`, then \
                 run `{WRITE_CMD}`",
                event.name, event.file
            ));
        }
    }
    out.extend(pda_problems(idl, source));
    out
}

/// Why an instruction account name is a PDA, by name.
fn pda_names(idl: &Idl, source: &ProgramSource) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for ix in &idl.instructions {
        for account in singles(&ix.accounts) {
            if account.pda.is_some() {
                names
                    .entry(account.name.clone())
                    .or_insert_with(|| format!("it has seeds in `{}`", ix.name));
            }
        }
    }
    let types = idl
        .accounts
        .iter()
        .map(|a| a.name.clone())
        .chain(source.account_types.iter().map(|t| t.name.clone()));
    for ty in types {
        names
            .entry(snake_case(&ty))
            .or_insert_with(|| format!("it is named after the account type `{ty}`"));
    }
    names
        .entry("event_authority".into())
        .or_insert_with(|| "it is the event CPI authority `[\"__event_authority\"]`".into());
    names
}

fn pda_problems(idl: &Idl, source: &ProgramSource) -> Vec<String> {
    let names = pda_names(idl, source);
    let mut out = vec![];
    for ix in &idl.instructions {
        for account in singles(&ix.accounts) {
            let Some(why) = names.get(&account.name) else {
                continue;
            };
            if account.pda.is_some()
                || account.address.is_some()
                || ROOTS.iter().any(|(root, _)| *root == account.name)
            {
                continue;
            }
            out.push(format!(
                "instruction `{}`: account `{}` is a PDA ({why}) but the IDL gives no seeds for \
                 it, so clients cannot derive its address: give it a `seeds = [...]` constraint \
                 (with `bump = <its stored bump>` for an account that exists) in \
                 programs/backhaul/src/instructions/{}.rs, then run `{WRITE_CMD}`",
                ix.name, account.name, ix.name
            ));
        }
    }
    out
}

/// The instruction's accounts, composite groups flattened.
fn singles(
    items: &[IdlInstructionAccountItem],
) -> Vec<&anchor_lang_idl::types::IdlInstructionAccount> {
    let mut out = vec![];
    for item in items {
        match item {
            IdlInstructionAccountItem::Single(account) => out.push(account),
            IdlInstructionAccountItem::Composite(group) => out.extend(singles(&group.accounts)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anchor_lang_idl::serde_json;

    const COMMITTED: &str = include_str!("../../../programs/backhaul/idl/backhaul.json");

    fn committed() -> Idl {
        serde_json::from_str(COMMITTED).expect("the committed IDL parses")
    }

    fn source() -> ProgramSource {
        let root = crate::workspace_root().expect("workspace root");
        ProgramSource::read(&root).expect("the program's source")
    }

    fn account_mut<'a>(
        idl: &'a mut Idl,
        ix: &str,
        name: &str,
    ) -> &'a mut anchor_lang_idl::types::IdlInstructionAccount {
        let ix = idl
            .instructions
            .iter_mut()
            .find(|i| i.name == ix)
            .expect("instruction");
        ix.accounts
            .iter_mut()
            .find_map(|a| match a {
                IdlInstructionAccountItem::Single(a) if a.name == name => Some(a),
                _ => None,
            })
            .expect("account")
    }

    #[test]
    fn the_source_declares_every_account_type_and_event() {
        let source = source();
        let mut types: Vec<&str> = source
            .account_types
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        types.sort_unstable();
        assert_eq!(
            types,
            [
                "Config",
                "CreditAccount",
                "EpochLedger",
                "EpochRecord",
                "OperatorClaim",
                "OracleBond",
                "PendingChange",
                "PriceFeed",
                "ProofBuffer"
            ]
        );
        let claim = source
            .account_types
            .iter()
            .find(|t| t.name == "OperatorClaim")
            .unwrap();
        assert_eq!(claim.file, "programs/backhaul/src/state/operator_claim.rs");
        assert!(source.events.iter().any(|e| e.name == "RewardClaimed"));
        assert!(source.events.iter().any(|e| e.name == "ChangeQueued"));
        assert!(source.events.iter().any(|e| e.name == "FraudProven"));
        assert!(source.events.len() >= 18, "{:?}", source.events);
    }

    #[test]
    fn the_committed_idl_has_everything() {
        assert_eq!(problems(&committed(), &source()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_account_type_fails_and_names_it() {
        let source = source();
        let mut idl = committed();
        idl.accounts.retain(|a| a.name != "OperatorClaim");
        let found = problems(&idl, &source);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("account type `OperatorClaim` (programs/backhaul/src/state/")
                && found[0].contains("missing from the IDL's `accounts`")
                && found[0].contains("print_account_types")
                && found[0].contains(WRITE_CMD),
            "{}",
            found[0]
        );
        // Without its type the account cannot be decoded either.
        let mut idl = committed();
        idl.types.retain(|t| t.name != "CreditAccount");
        let found = problems(&idl, &source);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("`CreditAccount`") && found[0].contains("IDL's `types`"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn a_missing_event_fails_and_names_it() {
        let mut idl = committed();
        idl.events.retain(|e| e.name != "CreditsPurchased");
        let found = problems(&idl, &source());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("event `CreditsPurchased`"),
            "{found:?}"
        );
    }

    #[test]
    fn a_pda_without_seeds_fails_and_names_the_instruction() {
        let source = source();
        for (ix, name) in [
            ("claim", "vault"),
            ("claim", "epoch_record"),
            ("buy_credits", "ledger"),
            ("submit_price", "price_feed"),
            ("settle_usage", "credit_account"),
            ("veto", "event_authority"),
        ] {
            let mut idl = committed();
            account_mut(&mut idl, ix, name).pda = None;
            let found = problems(&idl, &source);
            assert_eq!(found.len(), 1, "{ix}.{name}: {found:?}");
            assert!(
                found[0].starts_with(&format!("instruction `{ix}`: account `{name}` is a PDA ("))
                    && found[0].contains(&format!("instructions/{ix}.rs")),
                "{}",
                found[0]
            );
        }
        // The deployment's config is where clients start.
        let mut idl = committed();
        account_mut(&mut idl, "initialize", "config").pda = None;
        assert_eq!(problems(&idl, &source), Vec::<String>::new());
        assert!(ROOTS.iter().any(|(name, _)| *name == "config"));
    }

    #[test]
    fn attributes_are_found_before_their_struct() {
        let text = "\
/// One.
#[account]
#[derive(InitSpace, Debug)]
pub struct One {
    #[account(mut)]
    pub x: u8,
}
#[account(zero_copy)]
// a comment
struct Two;
#[account]
pub fn not_a_struct() {}
pub struct Three;
";
        assert_eq!(attributed_structs(text, "account"), ["One", "Two"]);
        assert_eq!(attributed_structs(text, "event"), Vec::<String>::new());
        let code = "emit_cpi!(RewardClaimed { a }); emit!( Other {}); emit_cpi!(x); \
                    emit_cpi!(RewardClaimed {})";
        assert_eq!(emitted_events(code), ["Other", "RewardClaimed"]);
        assert_eq!(snake_case("OperatorClaim"), "operator_claim");
    }
}
