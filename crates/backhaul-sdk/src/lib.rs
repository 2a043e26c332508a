//! Addresses and instruction builders for the Backhaul program, shared by the oracle, the command
//! line and the tests.
//!
//! ```ignore
//! let d = Deployment::new(mint);
//! let ix = backhaul_sdk::ix::claim(&d, &payer, epoch, &operator, &recipient, cumulative, index, &siblings);
//! ```

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{InstructionData, ToAccountMetas};
use backhaul::constants::*;

pub mod compute;

pub use backhaul::instructions::InitializeParams;
pub use backhaul::state;
pub use backhaul::state::{GovernanceChange, ParamsChange};
pub use backhaul::ID as PROGRAM_ID;

/// One deployment of the program: everything derives from its mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub mint: Pubkey,
    pub config: Pubkey,
}

fn pda(seeds: &[&[u8]]) -> Pubkey {
    Pubkey::find_program_address(seeds, &backhaul::ID).0
}

impl Deployment {
    pub fn new(mint: Pubkey) -> Self {
        Deployment {
            mint,
            config: pda(&[CONFIG_SEED, mint.as_ref()]),
        }
    }

    /// The accounts that every claim and settlement of this deployment names, whatever the
    /// operator, buyer or epoch: what its address lookup table holds ([`lookup_table`]), so that
    /// claims and settlements, sent as v0 transactions, load them by a one-byte index instead of
    /// 32 bytes each. Program ids that a transaction invokes are never loaded from a table; the
    /// associated token program is listed for transactions that only pass it.
    pub fn lookup_table_addresses(&self) -> Vec<Pubkey> {
        vec![
            self.config,
            self.mint,
            self.vault(),
            event_authority(),
            spl_token_interface::ID,
            anchor_lang::system_program::ID,
            spl_associated_token_account_interface::program::ID,
        ]
    }

    /// The rewards vault `["vault", config]`.
    pub fn vault(&self) -> Pubkey {
        pda(&[VAULT_SEED, self.config.as_ref()])
    }

    /// The credit price feed `["price", config]`.
    pub fn price_feed(&self) -> Pubkey {
        pda(&[PRICE_SEED, self.config.as_ref()])
    }

    /// An epoch's record `["epoch", config, epoch]`.
    pub fn epoch_record(&self, epoch: u64) -> Pubkey {
        pda(&[EPOCH_SEED, self.config.as_ref(), &epoch.to_le_bytes()])
    }

    /// An epoch's ledger `["ledger", config, epoch]`.
    pub fn ledger(&self, epoch: u64) -> Pubkey {
        pda(&[LEDGER_SEED, self.config.as_ref(), &epoch.to_le_bytes()])
    }

    /// An operator's claim record `["claim", config, operator]`.
    pub fn operator_claim(&self, operator: &Pubkey) -> Pubkey {
        pda(&[CLAIM_SEED, self.config.as_ref(), operator.as_ref()])
    }

    /// A buyer's credits `["credits", config, buyer]`.
    pub fn credits(&self, buyer: &Pubkey) -> Pubkey {
        pda(&[CREDITS_SEED, self.config.as_ref(), buyer.as_ref()])
    }

    /// Queued governance change `id`: `["change", config, id]`.
    pub fn pending_change(&self, id: u64) -> Pubkey {
        pda(&[CHANGE_SEED, self.config.as_ref(), &id.to_le_bytes()])
    }

    /// An oracle's bond `["bond", config, oracle]`.
    pub fn bond(&self, oracle: &Pubkey) -> Pubkey {
        pda(&[BOND_SEED, self.config.as_ref(), oracle.as_ref()])
    }

    /// `owner`'s proof buffer number `id`: `["proof", config, owner, id]`.
    pub fn proof_buffer(&self, owner: &Pubkey, id: u64) -> Pubkey {
        pda(&[
            PROOF_BUFFER_SEED,
            self.config.as_ref(),
            owner.as_ref(),
            &id.to_le_bytes(),
        ])
    }

    /// `owner`'s associated token account for the network token.
    pub fn ata(&self, owner: &Pubkey) -> Pubkey {
        spl_associated_token_account_interface::address::get_associated_token_address(
            owner, &self.mint,
        )
    }
}

/// The epoch `buy_credits` must name: the epoch of `config` that the chain's clock is in, given
/// the Clock sysvar's `unix_timestamp` (epoch 0 before genesis). Read the clock from the cluster,
/// not from the local machine.
pub fn purchase_epoch(config: &state::Config, clock_unix_timestamp: i64) -> u64 {
    backhaul::instructions::buy_credits::epoch_at_time(config, clock_unix_timestamp)
}

/// The deployment's address lookup table (see [`Deployment::lookup_table_addresses`]).
pub mod lookup_table {
    use super::*;
    use solana_address_lookup_table_interface::instruction as alt;

    /// Creates a lookup table owned by `authority` and fills it with the deployment's fixed
    /// accounts, in one transaction. `recent_slot` is a slot of the bank's `SlotHashes` (the
    /// table's address derives from it). Returns the instructions and the table's address; the
    /// table can be used from the slot after the one it was filled in.
    pub fn create(
        d: &Deployment,
        authority: &Pubkey,
        payer: &Pubkey,
        recent_slot: u64,
    ) -> (Vec<Instruction>, Pubkey) {
        let (create, table) = alt::create_lookup_table(*authority, *payer, recent_slot);
        let extend =
            alt::extend_lookup_table(table, *authority, Some(*payer), d.lookup_table_addresses());
        (vec![create, extend], table)
    }
}

/// The program's event authority (`emit_cpi!`).
pub fn event_authority() -> Pubkey {
    pda(&[b"__event_authority"])
}

/// The program's ProgramData account, which names its upgrade authority.
pub fn program_data() -> Pubkey {
    Pubkey::find_program_address(
        &[backhaul::ID.as_ref()],
        &anchor_lang::solana_program::bpf_loader_upgradeable::ID,
    )
    .0
}

/// Instruction builders, one per instruction.
pub mod ix {
    use super::*;
    use anchor_lang::system_program::ID as SYSTEM;
    use backhaul::state::{EpochProposal, ProofNode};
    use backhaul_core::sum_tree::SumNode;
    use spl_token_interface::ID as TOKEN;

    fn build(accounts: impl ToAccountMetas, data: impl InstructionData) -> Instruction {
        Instruction {
            program_id: backhaul::ID,
            accounts: accounts.to_account_metas(None),
            data: data.data(),
        }
    }

    /// Creates the network token's mint at `d.mint` for a new deployment: the account (`rent`
    /// lamports from `payer`), the mint with `payer` as its authority for now and no freeze
    /// authority, `supply` tokens (if any) minted to the owner's associated token account
    /// (created if missing), and the mint authority handed to the config PDA, as `initialize`
    /// requires. Signed by `payer` and the mint's keypair.
    pub fn create_mint(
        d: &Deployment,
        payer: &Pubkey,
        rent: u64,
        decimals: u8,
        supply: Option<(&Pubkey, u64)>,
    ) -> Result<Vec<Instruction>, anchor_lang::prelude::ProgramError> {
        use anchor_lang::solana_program::program_pack::Pack;
        use spl_token_interface::instruction as token_ix;
        let space = spl_token_interface::state::Mint::LEN;
        let mut ixs = vec![
            solana_system_interface::instruction::create_account(
                payer,
                &d.mint,
                rent,
                space as u64,
                &TOKEN,
            ),
            token_ix::initialize_mint2(&TOKEN, &d.mint, payer, None, decimals)?,
        ];
        if let Some((owner, amount)) = supply {
            ixs.push(
                spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                    payer, owner, &d.mint, &TOKEN,
                ),
            );
            ixs.push(token_ix::mint_to(
                &TOKEN,
                &d.mint,
                &d.ata(owner),
                payer,
                &[],
                amount,
            )?);
        }
        ixs.push(token_ix::set_authority(
            &TOKEN,
            &d.mint,
            Some(&d.config),
            token_ix::AuthorityType::MintTokens,
            payer,
            &[],
        )?);
        Ok(ixs)
    }

    pub fn initialize(
        d: &Deployment,
        initializer: &Pubkey,
        params: InitializeParams,
    ) -> Instruction {
        build(
            backhaul::accounts::Initialize {
                initializer: *initializer,
                program_data: program_data(),
                config: d.config,
                mint: d.mint,
                price_feed: d.price_feed(),
                vault: d.vault(),
                token_program: TOKEN,
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::Initialize { params },
        )
    }

    pub fn propose_root(
        d: &Deployment,
        oracle: &Pubkey,
        epoch: u64,
        proposal: EpochProposal,
    ) -> Instruction {
        build(
            backhaul::accounts::ProposeRoot {
                oracle: *oracle,
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                ledger: d.ledger(epoch),
                bond: d.bond(oracle),
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::ProposeRoot { epoch, proposal },
        )
    }

    pub fn veto(d: &Deployment, guardian: &Pubkey, epoch: u64) -> Instruction {
        build(
            backhaul::accounts::Veto {
                guardian: *guardian,
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::Veto { epoch },
        )
    }

    pub fn finalize(d: &Deployment, epoch: u64) -> Instruction {
        build(
            backhaul::accounts::Finalize {
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                mint: d.mint,
                vault: d.vault(),
                token_program: TOKEN,
                ledger: d.ledger(epoch),
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::Finalize { epoch },
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn claim(
        d: &Deployment,
        payer: &Pubkey,
        epoch: u64,
        operator: &Pubkey,
        recipient: &Pubkey,
        cumulative: u64,
        index: u64,
        siblings: &[SumNode],
    ) -> Instruction {
        build(
            backhaul::accounts::Claim {
                payer: *payer,
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                operator: *operator,
                operator_claim: d.operator_claim(operator),
                vault: d.vault(),
                recipient: *recipient,
                token_program: TOKEN,
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::Claim {
                epoch,
                cumulative,
                index,
                proof: siblings.iter().map(ProofNode::from).collect(),
            },
        )
    }

    pub fn submit_price(d: &Deployment, oracle: &Pubkey, credits_per_token: u64) -> Instruction {
        build(
            backhaul::accounts::SubmitPrice {
                oracle: *oracle,
                config: d.config,
                price_feed: d.price_feed(),
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::SubmitPrice { credits_per_token },
        )
    }

    /// `epoch` is the epoch the chain's clock is in (see [`super::purchase_epoch`]): the
    /// program refuses the purchase with `WrongEpoch`, changing nothing, when it lands in another
    /// one (sent just before an epoch boundary, say); its ledger records the burn.
    #[allow(clippy::too_many_arguments)]
    pub fn buy_credits(
        d: &Deployment,
        payer: &Pubkey,
        payer_tokens: &Pubkey,
        token_amount: u64,
        min_credits: u64,
        beneficiary: Pubkey,
        epoch: u64,
    ) -> Instruction {
        build(
            backhaul::accounts::BuyCredits {
                payer: *payer,
                config: d.config,
                price_feed: d.price_feed(),
                mint: d.mint,
                payer_tokens: *payer_tokens,
                credit_account: d.credits(&beneficiary),
                ledger: d.ledger(epoch),
                token_program: TOKEN,
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::BuyCredits {
                token_amount,
                min_credits,
                beneficiary,
                epoch,
            },
        )
    }

    pub fn seal_epoch(d: &Deployment, payer: &Pubkey, epoch: u64) -> Instruction {
        build(
            backhaul::accounts::SealEpoch {
                payer: *payer,
                config: d.config,
                price_feed: d.price_feed(),
                ledger: d.ledger(epoch),
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::SealEpoch { epoch },
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn settle_usage(
        d: &Deployment,
        payer: &Pubkey,
        epoch: u64,
        buyer: &Pubkey,
        consumed_cumulative: u64,
        index: u64,
        siblings: &[SumNode],
    ) -> Instruction {
        build(
            backhaul::accounts::SettleUsage {
                payer: *payer,
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                ledger: d.ledger(epoch),
                buyer: *buyer,
                credit_account: d.credits(buyer),
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::SettleUsage {
                epoch,
                consumed_cumulative,
                index,
                proof: siblings.iter().map(ProofNode::from).collect(),
            },
        )
    }

    /// Queues `change` as change `id`, which must be the config's `next_change_id`.
    pub fn queue_change(
        d: &Deployment,
        admin: &Pubkey,
        id: u64,
        change: GovernanceChange,
    ) -> Instruction {
        build(
            backhaul::accounts::QueueChange {
                admin: *admin,
                config: d.config,
                pending_change: d.pending_change(id),
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::QueueChange { id, change },
        )
    }

    /// Cancels change `id`; `queued_by` (the change's field) gets its rent back.
    pub fn cancel_change(
        d: &Deployment,
        authority: &Pubkey,
        id: u64,
        queued_by: &Pubkey,
    ) -> Instruction {
        build(
            backhaul::accounts::CancelChange {
                authority: *authority,
                config: d.config,
                pending_change: d.pending_change(id),
                queued_by: *queued_by,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::CancelChange { id },
        )
    }

    /// Applies change `id` after its delay; `queued_by` (the change's field) gets its rent back.
    pub fn apply_change(d: &Deployment, id: u64, queued_by: &Pubkey) -> Instruction {
        build(
            backhaul::accounts::ApplyChange {
                config: d.config,
                pending_change: d.pending_change(id),
                queued_by: *queued_by,
                price_feed: d.price_feed(),
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::ApplyChange { id },
        )
    }

    pub fn propose_admin(d: &Deployment, admin: &Pubkey, new_admin: Pubkey) -> Instruction {
        build(
            backhaul::accounts::ProposeAdmin {
                admin: *admin,
                config: d.config,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::ProposeAdmin { new_admin },
        )
    }

    pub fn accept_admin(d: &Deployment, new_admin: &Pubkey) -> Instruction {
        build(
            backhaul::accounts::AcceptAdmin {
                new_admin: *new_admin,
                config: d.config,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::AcceptAdmin {},
        )
    }

    pub fn set_paused(d: &Deployment, authority: &Pubkey, paused: bool) -> Instruction {
        build(
            backhaul::accounts::SetPaused {
                authority: *authority,
                config: d.config,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::SetPaused { paused },
        )
    }

    /// `claim` with the proof in `payer`'s proof buffer `buffer_id` ([`buffer::leaf_proof`]).
    #[allow(clippy::too_many_arguments)]
    pub fn claim_from_buffer(
        d: &Deployment,
        payer: &Pubkey,
        epoch: u64,
        operator: &Pubkey,
        recipient: &Pubkey,
        cumulative: u64,
        buffer_id: u64,
    ) -> Instruction {
        build(
            backhaul::accounts::ClaimFromBuffer {
                payer: *payer,
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                operator: *operator,
                operator_claim: d.operator_claim(operator),
                vault: d.vault(),
                recipient: *recipient,
                buffer: d.proof_buffer(payer, buffer_id),
                token_program: TOKEN,
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::ClaimFromBuffer {
                epoch,
                cumulative,
                buffer_id,
            },
        )
    }

    /// `settle_usage` with the proof in `payer`'s proof buffer `buffer_id`
    /// ([`buffer::leaf_proof`]).
    pub fn settle_from_buffer(
        d: &Deployment,
        payer: &Pubkey,
        epoch: u64,
        buyer: &Pubkey,
        consumed_cumulative: u64,
        buffer_id: u64,
    ) -> Instruction {
        build(
            backhaul::accounts::SettleFromBuffer {
                payer: *payer,
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                ledger: d.ledger(epoch),
                buyer: *buyer,
                credit_account: d.credits(buyer),
                buffer: d.proof_buffer(payer, buffer_id),
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::SettleFromBuffer {
                epoch,
                consumed_cumulative,
                buffer_id,
            },
        )
    }

    /// Opens `owner`'s proof buffer `id` with `len` payload bytes.
    pub fn open_proof_buffer(d: &Deployment, owner: &Pubkey, id: u64, len: u32) -> Instruction {
        build(
            backhaul::accounts::OpenProofBuffer {
                owner: *owner,
                config: d.config,
                buffer: d.proof_buffer(owner, id),
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::OpenProofBuffer { id, len },
        )
    }

    /// Writes `bytes` at `offset` into `owner`'s proof buffer `id`.
    pub fn write_proof_buffer(
        d: &Deployment,
        owner: &Pubkey,
        id: u64,
        offset: u32,
        bytes: Vec<u8>,
    ) -> Instruction {
        build(
            backhaul::accounts::WriteProofBuffer {
                owner: *owner,
                config: d.config,
                buffer: d.proof_buffer(owner, id),
            },
            backhaul::instruction::WriteProofBuffer { id, offset, bytes },
        )
    }

    /// Closes `owner`'s unused proof buffer `id`.
    pub fn close_proof_buffer(d: &Deployment, owner: &Pubkey, id: u64) -> Instruction {
        build(
            backhaul::accounts::CloseProofBuffer {
                owner: *owner,
                config: d.config,
                buffer: d.proof_buffer(owner, id),
            },
            backhaul::instruction::CloseProofBuffer { id },
        )
    }

    /// Refutes `epoch`'s proposal with the fraud proof in `prover`'s buffer `buffer_id`.
    /// `earlier_epoch` is a decrease proof's earlier epoch, `buyer` an overspend proof's buyer,
    /// `voters` the oracles that voted the challenged digest, in vote order.
    pub fn prove_fraud(
        d: &Deployment,
        prover: &Pubkey,
        epoch: u64,
        buffer_id: u64,
        earlier_epoch: Option<u64>,
        buyer: Option<&Pubkey>,
        voters: &[Pubkey],
    ) -> Instruction {
        let mut ix = build(
            backhaul::accounts::ProveFraud {
                prover: *prover,
                config: d.config,
                epoch_record: d.epoch_record(epoch),
                earlier_record: earlier_epoch.map(|e| d.epoch_record(e)),
                credit_account: buyer.map(|b| d.credits(b)),
                buffer: d.proof_buffer(prover, buffer_id),
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::ProveFraud {
                epoch,
                buffer_id,
                buyer: buyer.copied().unwrap_or_default(),
            },
        );
        ix.accounts.extend(
            voters.iter().map(|v| {
                anchor_lang::solana_program::instruction::AccountMeta::new(d.bond(v), false)
            }),
        );
        ix
    }

    /// Adds `amount` lamports to `oracle`'s bond.
    pub fn deposit_bond(d: &Deployment, oracle: &Pubkey, amount: u64) -> Instruction {
        build(
            backhaul::accounts::DepositBond {
                oracle: *oracle,
                config: d.config,
                bond: d.bond(oracle),
                system_program: SYSTEM,
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::DepositBond { amount },
        )
    }

    /// Starts withdrawing `oracle`'s bond.
    pub fn unbond(d: &Deployment, oracle: &Pubkey) -> Instruction {
        build(
            backhaul::accounts::Unbond {
                oracle: *oracle,
                config: d.config,
                bond: d.bond(oracle),
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::Unbond {},
        )
    }

    /// Withdraws `oracle`'s unbonded bond.
    pub fn withdraw_bond(d: &Deployment, oracle: &Pubkey) -> Instruction {
        build(
            backhaul::accounts::WithdrawBond {
                oracle: *oracle,
                config: d.config,
                bond: d.bond(oracle),
                event_authority: event_authority(),
                program: backhaul::ID,
            },
            backhaul::instruction::WithdrawBond {},
        )
    }
}

/// Writing proofs that do not fit one transaction into a proof buffer.
pub mod buffer {
    use super::*;

    /// Payload bytes per `write_proof_buffer` instruction: a write transaction signed by the
    /// owner and a separate fee payer, with a compute-budget instruction, stays under the
    /// 1,232-byte limit (`tests/program/tx_size.rs` lands one).
    pub const CHUNK: usize = 800;

    /// The payload of a buffered claim or settlement: the leaf's index and siblings.
    pub fn leaf_proof(index: u64, siblings: &[backhaul_core::sum_tree::SumNode]) -> Vec<u8> {
        let proof = backhaul::state::BufferedProof {
            index,
            siblings: siblings
                .iter()
                .map(backhaul::state::ProofNode::from)
                .collect(),
        };
        anchor_lang::prelude::borsh::to_vec(&proof).unwrap_or_default()
    }

    /// The instructions that open `owner`'s buffer `id` and fill it with `payload`, in order:
    /// `open_proof_buffer`, then one `write_proof_buffer` per [`CHUNK`] bytes, each to be sent in
    /// its own transaction (the open may share the first write's).
    pub fn fill(d: &Deployment, owner: &Pubkey, id: u64, payload: &[u8]) -> Vec<Instruction> {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let mut out = vec![ix::open_proof_buffer(d, owner, id, len)];
        let mut offset = 0usize;
        for chunk in payload.chunks(CHUNK) {
            out.push(ix::write_proof_buffer(
                d,
                owner,
                id,
                u32::try_from(offset).unwrap_or(u32::MAX),
                chunk.to_vec(),
            ));
            offset += chunk.len();
        }
        out
    }
}

/// Fraud proofs in the program's terms, from the proofs the tree builder hands out.
pub mod fraud {
    use anchor_lang::prelude::borsh;
    use backhaul::state::{FraudProof, ProofNode, ProvenLeaf, Standing};
    use backhaul_core::sum_tree::{Absence, OwnedAbsence, OwnedProof};

    /// A leaf and its proof as a fraud proof carries it.
    pub fn proven(p: &OwnedProof) -> ProvenLeaf {
        ProvenLeaf {
            account: anchor_lang::prelude::Pubkey::new_from_array(p.leaf.account),
            amount: p.leaf.amount,
            index: p.index,
            siblings: p.siblings.iter().map(ProofNode::from).collect(),
        }
    }

    /// An absence as a fraud proof carries it.
    pub fn absent(a: &OwnedAbsence) -> Standing {
        match a {
            Absence::Empty => Standing::Empty,
            Absence::BeforeFirst(p) => Standing::BeforeFirst(proven(p)),
            Absence::AfterLast(p) => Standing::AfterLast(proven(p)),
            Absence::Between(l, r) => Standing::Between(proven(l), proven(r)),
        }
    }

    /// The borsh bytes a proof buffer holds for `proof`.
    pub fn payload(proof: &FraudProof) -> Vec<u8> {
        borsh::to_vec(proof).unwrap_or_default()
    }
}
