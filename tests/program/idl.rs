//! The committed IDL read as a client with nothing else reads it (an Anchor TypeScript client,
//! an explorer): every account the program creates decodes, by the IDL's discriminator and field
//! list, to exactly the program's own struct; every address an instruction takes derives from
//! the IDL's seeds and addresses, or is one the caller names.

use anchor_lang::AccountDeserialize;
use backhaul_sdk::{ix, Deployment};
use backhaul_tests::*;
use serde_json::Value;
use solana_sdk::instruction::Instruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};

const TOKEN: u64 = 1_000_000;
const PRICE: u64 = 100_000;

fn committed_idl() -> Idl {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../programs/backhaul/idl/backhaul.json"
    );
    let text = std::fs::read_to_string(path).expect("the committed IDL");
    Idl(serde_json::from_str(&text).expect("the IDL is JSON"))
}

/// The IDL as plain JSON, with the few look-ups a client makes.
#[derive(Clone)]
struct Idl(Value);

impl Idl {
    fn list(&self, key: &str) -> &Vec<Value> {
        self.0[key]
            .as_array()
            .unwrap_or_else(|| panic!("the IDL has no `{key}`"))
    }

    fn named(&self, key: &str, name: &str) -> &Value {
        self.list(key)
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("the IDL's `{key}` has no `{name}`"))
    }

    fn discriminator(&self, key: &str, name: &str) -> Vec<u8> {
        self.named(key, name)["discriminator"]
            .as_array()
            .expect("a discriminator")
            .iter()
            .map(|b| u8::try_from(b.as_u64().expect("a byte")).expect("a byte"))
            .collect()
    }

    fn type_def(&self, name: &str) -> &Value {
        self.named("types", name)
    }
}

/// Reads borsh data by the IDL's types, rendering what it reads as Rust's `{:?}` would render
/// the matching Rust value, and keeping the raw bytes of each value for seeds.
struct Reader<'a> {
    idl: &'a Idl,
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(self.data.len() >= n, "the data ends early");
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn int<const N: usize>(&mut self) -> [u8; N] {
        self.take(N).try_into().expect("length")
    }

    /// One value of IDL type `ty`.
    fn value(&mut self, ty: &Value) -> String {
        if let Some(prim) = ty.as_str() {
            return match prim {
                "u8" => self.int::<1>()[0].to_string(),
                "i8" => i8::from_le_bytes(self.int()).to_string(),
                "u16" => u16::from_le_bytes(self.int()).to_string(),
                "i16" => i16::from_le_bytes(self.int()).to_string(),
                "u32" => u32::from_le_bytes(self.int()).to_string(),
                "i32" => i32::from_le_bytes(self.int()).to_string(),
                "u64" => u64::from_le_bytes(self.int()).to_string(),
                "i64" => i64::from_le_bytes(self.int()).to_string(),
                "u128" => u128::from_le_bytes(self.int()).to_string(),
                "i128" => i128::from_le_bytes(self.int()).to_string(),
                "bool" => match self.int::<1>()[0] {
                    0 => "false".into(),
                    1 => "true".into(),
                    b => panic!("bool byte {b}"),
                },
                "pubkey" => format!("{:?}", Pubkey::new_from_array(self.int())),
                "string" => {
                    let len = u32::from_le_bytes(self.int()) as usize;
                    let s = std::str::from_utf8(self.take(len)).expect("utf-8");
                    format!("{s:?}")
                }
                "bytes" => {
                    let len = u32::from_le_bytes(self.int()) as usize;
                    format!("{:?}", self.take(len))
                }
                other => panic!("IDL type {other} is not handled"),
            };
        }
        if let Some([inner, len]) = ty["array"].as_array().map(Vec::as_slice) {
            let len = len.as_u64().expect("array length");
            let items: Vec<String> = (0..len).map(|_| self.value(inner)).collect();
            return format!("[{}]", items.join(", "));
        }
        if !ty["vec"].is_null() {
            let len = u32::from_le_bytes(self.int());
            let items: Vec<String> = (0..len).map(|_| self.value(&ty["vec"])).collect();
            return format!("[{}]", items.join(", "));
        }
        if !ty["option"].is_null() {
            return match self.int::<1>()[0] {
                0 => "None".into(),
                1 => format!("Some({})", self.value(&ty["option"])),
                b => panic!("option tag {b}"),
            };
        }
        if let Some(name) = ty["defined"]["name"].as_str() {
            return self.defined(name);
        }
        panic!("IDL type {ty} is not handled")
    }

    /// A value of the IDL's type `name`.
    fn defined(&mut self, name: &str) -> String {
        let def = &self.idl.type_def(name)["type"];
        match def["kind"].as_str() {
            Some("struct") => {
                let fields = self.fields(name);
                if fields.is_empty() {
                    return name.to_string();
                }
                let body: Vec<String> =
                    fields.iter().map(|(f, v, _)| format!("{f}: {v}")).collect();
                format!("{name} {{ {} }}", body.join(", "))
            }
            Some("enum") => {
                let variants = def["variants"].as_array().expect("variants");
                let at = self.int::<1>()[0] as usize;
                let variant = &variants[at];
                let vname = variant["name"].as_str().expect("variant name");
                let Some(fields) = variant["fields"].as_array() else {
                    return vname.to_string();
                };
                // Named fields render as a struct's, tuple fields as a tuple's.
                let body: Vec<String> = fields
                    .iter()
                    .map(|f| match f["name"].as_str() {
                        Some(field) => format!("{field}: {}", self.value(&f["type"])),
                        None => self.value(f),
                    })
                    .collect();
                if fields.iter().all(|f| f["name"].is_string()) {
                    format!("{vname} {{ {} }}", body.join(", "))
                } else {
                    format!("{vname}({})", body.join(", "))
                }
            }
            other => panic!("type kind {other:?} of {name} is not handled"),
        }
    }

    /// The named fields of struct `name`: (field, rendered value, raw bytes).
    fn fields(&mut self, name: &str) -> Vec<(String, String, &'a [u8])> {
        let def = &self.idl.type_def(name)["type"];
        let Some(fields) = def["fields"].as_array() else {
            return vec![];
        };
        fields
            .iter()
            .map(|f| {
                let before = self.data;
                let value = self.value(&f["type"]);
                let raw = &before[..before.len() - self.data.len()];
                let field = f["name"].as_str().expect("field name").to_string();
                (field, value, raw)
            })
            .collect()
    }
}

/// Decodes account data by the IDL: its discriminator must be the IDL's for `name`, its fields
/// read by the IDL's field list, and what follows them must be zeros (the unused room of a
/// vector below its maximum length).
fn decode_account(idl: &Idl, name: &str, data: &[u8]) -> String {
    let tag = idl.discriminator("accounts", name);
    assert_eq!(&data[..tag.len()], tag.as_slice(), "{name}: discriminator");
    let mut reader = Reader {
        idl,
        data: &data[tag.len()..],
    };
    let rendered = reader.defined(name);
    assert!(
        reader.data.iter().all(|b| *b == 0),
        "{name}: {} bytes after the IDL's fields are not zero",
        reader.data.len()
    );
    rendered
}

/// `address`'s data, decoded by the IDL as `name` and as the program's struct `T`; both must
/// agree field for field.
async fn assert_decodes<T: AccountDeserialize + std::fmt::Debug>(
    env: &mut Env,
    idl: &Idl,
    name: &str,
    address: &Pubkey,
) -> String {
    let account = env
        .ctx
        .banks_client
        .get_account(*address)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no {name} at {address}"));
    assert_eq!(account.owner, backhaul::ID, "{name}: owner");
    let from_idl = decode_account(idl, name, &account.data);
    let from_program = T::try_deserialize(&mut account.data.as_slice()).expect("the program's own");
    assert_eq!(from_idl, format!("{from_program:?}"), "{name}");
    from_idl
}

/// A deployment in which every account type exists with non-trivial contents: a posted price,
/// a purchase, epoch 0 finalized with rewards and usage, a claim and a settlement, and a vote
/// in epoch 1.
struct World {
    env: Env,
    operator: Pubkey,
    buyer: Keypair,
}

async fn world() -> World {
    let mut env = Env::new().await;
    env.post_price(PRICE).await;
    let buyer = Keypair::new();
    crate::util::fund(&mut env, &buyer.pubkey()).await;
    env.give_tokens(&buyer.pubkey(), 5 * TOKEN).await;
    env.buy(&buyer, 2 * TOKEN, 0, buyer.pubkey()).await.unwrap();
    let operator = Pubkey::new_unique();
    let other = Pubkey::new_unique();
    let r0 = env.reward_tree(0, &[(operator, 300), (other, 700)]);
    let u0 = env.usage_tree(0, &[(buyer.pubkey(), 50_000)]);
    let p0 = env.proposal_with_usage(&r0, 0, &u0, 0);
    env.run_epoch(0, Env::with_cost(p0, 0, 1_000)).await;
    env.claim_from(&r0, 0, &operator).await.unwrap();
    env.settle_from(&u0, &buyer.pubkey()).await.unwrap();
    env.end_epoch(1).await;
    let r1 = env.reward_tree(1, &[(operator, 500), (other, 900)]);
    let u1 = env.usage_tree(1, &[(buyer.pubkey(), 60_000)]);
    let p1 = Env::with_cost(
        env.proposal_with_usage(&r1, 1_000, &u1, 50_000),
        1_000,
        1_400,
    );
    env.vote(0, 1, p1).await.unwrap();
    // Two queued changes: a tuple variant and one with named fields.
    env.queue(GovernanceChange::Params(ParamsChange {
        emission: Some(backhaul::state::EmissionParams {
            floor_per_epoch: default_emission().floor_per_epoch / 2,
            ..default_emission()
        }),
        ..ParamsChange::default()
    }))
    .await
    .unwrap();
    let oracles = env.oracles.iter().map(|k| k.pubkey()).collect();
    env.queue(GovernanceChange::Oracles {
        oracles,
        threshold: 3,
    })
    .await
    .unwrap();
    World {
        env,
        operator,
        buyer,
    }
}

#[tokio::test]
async fn every_account_type_decodes_by_the_idl_to_the_programs_struct() {
    let idl = committed_idl();
    let World {
        mut env,
        operator,
        buyer,
    } = world().await;
    let config = env.config;
    let b = buyer.pubkey();
    let claim = assert_decodes::<OperatorClaim>(
        &mut env,
        &idl,
        "OperatorClaim",
        &claim_address(&config, &operator),
    )
    .await;
    assert!(claim.contains("claimed: 300, last_epoch: 0"), "{claim}");
    let credits = assert_decodes::<CreditAccount>(
        &mut env,
        &idl,
        "CreditAccount",
        &credits_address(&config, &b),
    )
    .await;
    assert!(
        credits.contains("balance: 150000, issued: 200000, settled: 50000"),
        "{credits}"
    );
    let cfg = assert_decodes::<Config>(&mut env, &idl, "Config", &config).await;
    assert!(cfg.contains("total_claimed: 300"), "{cfg}");
    let feed =
        assert_decodes::<PriceFeed>(&mut env, &idl, "PriceFeed", &price_feed_address(&config))
            .await;
    assert!(feed.contains("credits_per_token: 100000"), "{feed}");
    let ledger =
        assert_decodes::<EpochLedger>(&mut env, &idl, "EpochLedger", &ledger_address(&config, 0))
            .await;
    assert!(ledger.contains("sealed: true"), "{ledger}");
    let finalized =
        assert_decodes::<EpochRecord>(&mut env, &idl, "EpochRecord", &epoch_address(&config, 0))
            .await;
    assert!(finalized.contains("status: Finalized"), "{finalized}");
    let voting =
        assert_decodes::<EpochRecord>(&mut env, &idl, "EpochRecord", &epoch_address(&config, 1))
            .await;
    assert!(
        voting.contains("status: Voting") && voting.contains("votes: [Vote {"),
        "{voting}"
    );
    let d = env.deployment();
    let params =
        assert_decodes::<PendingChange>(&mut env, &idl, "PendingChange", &d.pending_change(0))
            .await;
    assert!(params.contains("change: Params(ParamsChange {"), "{params}");
    let oracles =
        assert_decodes::<PendingChange>(&mut env, &idl, "PendingChange", &d.pending_change(1))
            .await;
    assert!(oracles.contains("threshold: 3 }"), "{oracles}");
    // The IDL lists exactly these account types, with distinct discriminators.
    let mut names: Vec<&str> = idl
        .list("accounts")
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
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
}

/// Every account of a deployment except the config itself starts with the config's address,
/// right after the discriminator: the audit finds them all with one `getProgramAccounts` memcmp
/// at offset 8, and an account that breaks the rule would be missed by every audit.
#[test]
fn every_account_but_the_config_names_its_config_first() {
    let idl = committed_idl();
    let accounts: Vec<String> = idl
        .list("accounts")
        .iter()
        .map(|a| a["name"].as_str().expect("a name").to_string())
        .collect();
    assert!(accounts.len() >= 7, "{accounts:?}");
    for name in accounts.iter().filter(|n| *n != "Config") {
        let first = &idl.type_def(name)["type"]["fields"][0];
        assert_eq!(
            (first["name"].as_str(), first["type"].as_str()),
            (Some("config"), Some("pubkey")),
            "{name}'s first field must be its config"
        );
    }
}

/// The comparison above would notice an IDL whose layout drifted from the struct: two fields
/// of the same type swapped, or a field missing.
#[tokio::test]
async fn a_drifted_idl_layout_does_not_decode_to_the_struct() {
    let idl = committed_idl();
    let World { env, operator, .. } = world().await;
    let address = claim_address(&env.config, &operator);
    let data = env
        .ctx
        .banks_client
        .get_account(address)
        .await
        .unwrap()
        .unwrap()
        .data;
    let rust = format!(
        "{:?}",
        OperatorClaim::try_deserialize(&mut data.as_slice()).unwrap()
    );
    assert_eq!(decode_account(&idl, "OperatorClaim", &data), rust);
    fn claim_fields(idl: &mut Idl) -> &mut Vec<Value> {
        let types = idl.0["types"].as_array_mut().unwrap();
        let def = types
            .iter_mut()
            .find(|t| t["name"] == "OperatorClaim")
            .unwrap();
        def["type"]["fields"].as_array_mut().unwrap()
    }
    let mut swapped = idl.clone();
    claim_fields(&mut swapped).swap(2, 3); // claimed <-> last_epoch, both u64
    assert_ne!(decode_account(&swapped, "OperatorClaim", &data), rust);
    let mut shorter = idl.clone();
    claim_fields(&mut shorter).remove(4); // bump
    let outcome = std::panic::catch_unwind(|| decode_account(&shorter, "OperatorClaim", &data));
    assert!(outcome.map_or(true, |decoded| decoded != rust));
}

/// Where an instruction's accounts come from when only the IDL is at hand.
#[derive(Debug, PartialEq)]
enum Source {
    /// A fixed `address`.
    Address,
    /// The `pda` seeds.
    Seeds,
    /// Named by the caller: the deployment, a party, a token account, a signer.
    Given,
}

/// Derives `ix`'s account addresses from the IDL alone (seeds from constants, the instruction's
/// own arguments and the other accounts) and checks each against the SDK's, with the IDL's
/// writable and signer flags. Returns where each account came from, by name.
fn resolve(idl: &Idl, name: &str, ix: &Instruction) -> Vec<(String, Source)> {
    let def = idl.named("instructions", name);
    let tag = idl.discriminator("instructions", name);
    assert_eq!(
        &ix.data[..tag.len()],
        tag.as_slice(),
        "{name}: discriminator"
    );
    // The raw bytes of each argument, read by the IDL's argument list.
    let mut reader = Reader {
        idl,
        data: &ix.data[tag.len()..],
    };
    let mut args = vec![];
    for arg in def["args"].as_array().unwrap() {
        let before = reader.data;
        reader.value(&arg["type"]);
        let raw = &before[..before.len() - reader.data.len()];
        args.push((arg["name"].as_str().unwrap().to_string(), raw.to_vec()));
    }
    assert!(reader.data.is_empty(), "{name}: data after the arguments");
    let accounts = def["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), ix.accounts.len(), "{name}: account count");
    let key_of = |account: &str| -> Pubkey {
        let at = accounts
            .iter()
            .position(|a| a["name"] == account)
            .unwrap_or_else(|| panic!("{name}: no account {account}"));
        ix.accounts[at].pubkey
    };
    let mut out = vec![];
    for (account, meta) in accounts.iter().zip(&ix.accounts) {
        let account_name = account["name"].as_str().unwrap().to_string();
        let flag = |key: &str| account[key].as_bool().unwrap_or(false);
        assert_eq!(
            flag("writable"),
            meta.is_writable,
            "{name}.{account_name}: writable"
        );
        assert_eq!(
            flag("signer"),
            meta.is_signer,
            "{name}.{account_name}: signer"
        );
        let source = if let Some(address) = account["address"].as_str() {
            assert_eq!(address, meta.pubkey.to_string(), "{name}.{account_name}");
            Source::Address
        } else if !account["pda"].is_null() {
            let seed = |s: &Value| -> Vec<u8> {
                match s["kind"].as_str().unwrap() {
                    "const" => s["value"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b.as_u64().unwrap() as u8)
                        .collect(),
                    "arg" => {
                        let path = s["path"].as_str().unwrap();
                        args.iter()
                            .find(|(n, _)| n == path)
                            .unwrap_or_else(|| panic!("{name}: no argument {path}"))
                            .1
                            .clone()
                    }
                    "account" => {
                        let path = s["path"].as_str().unwrap();
                        assert!(
                            !path.contains('.'),
                            "{name}.{account_name}: a seed read from account data ({path}) needs \
                             a fetch; none is expected"
                        );
                        key_of(path).to_bytes().to_vec()
                    }
                    kind => panic!("seed kind {kind}"),
                }
            };
            let pda = &account["pda"];
            let seeds: Vec<Vec<u8>> = pda["seeds"].as_array().unwrap().iter().map(seed).collect();
            let program = if pda["program"].is_null() {
                backhaul::ID
            } else {
                Pubkey::try_from(seed(&pda["program"]).as_slice()).unwrap()
            };
            let refs: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
            let (derived, _) = Pubkey::find_program_address(&refs, &program);
            assert_eq!(
                derived, meta.pubkey,
                "{name}.{account_name}: derived from the seeds"
            );
            Source::Seeds
        } else {
            Source::Given
        };
        out.push((account_name, source));
    }
    out
}

/// Accounts a caller names: the deployment (its mint follows from it through `relations`), the
/// operator or buyer a leaf is for, their token accounts, who queued a change (its account
/// names it and gets the rent back), and signers.
const GIVEN: &[&str] = &[
    "config",
    "mint",
    "operator",
    "buyer",
    "recipient",
    "payer_tokens",
    "queued_by",
    // A decrease proof's earlier finalized epoch: any, the prover's choice.
    "earlier_record",
];

#[tokio::test]
async fn every_pda_an_instruction_takes_derives_from_the_idl() {
    let idl = committed_idl();
    let d = Deployment::new(Pubkey::new_unique());
    let (who, other) = (Pubkey::new_unique(), Pubkey::new_unique());
    let env = Env::new().await;
    let params = env.default_params();
    let proposal = backhaul::state::EpochProposal::default();
    let change = GovernanceChange::Guardians {
        guardians: vec![other],
    };
    let instructions = [
        ("initialize", ix::initialize(&d, &who, params)),
        ("propose_root", ix::propose_root(&d, &who, 7, proposal)),
        ("veto", ix::veto(&d, &who, 7)),
        ("finalize", ix::finalize(&d, 7)),
        (
            "claim",
            ix::claim(
                &d,
                &who,
                7,
                &other,
                &who,
                5,
                1,
                &[backhaul_core::sum_tree::SumNode {
                    hash: [1; 32],
                    sum: 2,
                }],
            ),
        ),
        ("submit_price", ix::submit_price(&d, &who, 9)),
        (
            "buy_credits",
            ix::buy_credits(&d, &who, &who, 5, 1, other, 7),
        ),
        ("seal_epoch", ix::seal_epoch(&d, &who, 7)),
        (
            "settle_usage",
            ix::settle_usage(&d, &who, 7, &other, 5, 0, &[]),
        ),
        ("queue_change", ix::queue_change(&d, &who, 3, change)),
        ("cancel_change", ix::cancel_change(&d, &who, 3, &other)),
        ("apply_change", ix::apply_change(&d, 3, &other)),
        ("propose_admin", ix::propose_admin(&d, &who, other)),
        ("accept_admin", ix::accept_admin(&d, &who)),
        ("set_paused", ix::set_paused(&d, &who, true)),
        (
            "prove_fraud",
            ix::prove_fraud(&d, &who, 7, 2, Some(6), Some(&other), &[]),
        ),
        ("open_proof_buffer", ix::open_proof_buffer(&d, &who, 2, 64)),
        (
            "write_proof_buffer",
            ix::write_proof_buffer(&d, &who, 2, 0, vec![1, 2]),
        ),
        ("close_proof_buffer", ix::close_proof_buffer(&d, &who, 2)),
        ("deposit_bond", ix::deposit_bond(&d, &who, 5)),
        ("unbond", ix::unbond(&d, &who)),
        ("withdraw_bond", ix::withdraw_bond(&d, &who)),
        (
            "claim_from_buffer",
            ix::claim_from_buffer(&d, &who, 7, &other, &who, 5, 2),
        ),
        (
            "settle_from_buffer",
            ix::settle_from_buffer(&d, &who, 7, &other, 5, 2),
        ),
    ];
    assert_eq!(
        instructions.len(),
        idl.list("instructions").len(),
        "one SDK builder per instruction"
    );
    let mut by_seeds = 0;
    for (name, ix) in &instructions {
        for (account, source) in resolve(&idl, name, ix) {
            let signer = idl.named("instructions", name)["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["name"] == account.as_str() && a["signer"] == true);
            if source == Source::Given {
                assert!(
                    signer || GIVEN.contains(&account.as_str()),
                    "{name}.{account}: neither derivable from the IDL nor one the caller names"
                );
            }
            by_seeds += usize::from(source == Source::Seeds);
        }
    }
    // The 22 event authorities, and: initialize's program data, config, price feed and vault;
    // propose_root's record, ledger and bond; veto's record; finalize's record, vault and ledger;
    // claim's record, claim record and vault; submit_price's feed; buy_credits' feed, credit
    // account and ledger; seal_epoch's feed and ledger; settle_usage's record, ledger and credit
    // account; queue_change's and cancel_change's pending change; apply_change's pending change
    // and feed; prove_fraud's record, credit account and buffer; the buffer of open, write and
    // close; the bond of deposit_bond, unbond and withdraw_bond; claim_from_buffer's record, claim
    // record, vault and buffer; settle_from_buffer's record, ledger, credit account and buffer.
    assert_eq!(by_seeds, 22 + 44, "accounts derived from seeds");
    // The deployment itself derives from its mint with `initialize`'s seeds.
    let init = resolve(&idl, "initialize", &instructions[0].1);
    assert!(init.contains(&("config".into(), Source::Seeds)));
}
