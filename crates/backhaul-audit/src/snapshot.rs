//! What the audit reads: the deployment's accounts as already fetched from the chain, and each
//! epoch's dataset bytes as already fetched from an oracle or a folder.

use anchor_lang::prelude::Pubkey;
use backhaul::state::{
    Config, CreditAccount, EpochLedger, EpochRecord, OperatorClaim, PendingChange, PriceFeed,
};

/// The SPL mint of the deployment, as read from the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MintInfo {
    pub supply: u64,
    pub decimals: u8,
    pub mint_authority: Option<Pubkey>,
}

/// The rewards vault (an SPL token account), as read from the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaultInfo {
    pub amount: u64,
    pub mint: Pubkey,
    pub owner: Pubkey,
}

/// Who can replace the program's code, from its ProgramData account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramUpgrade {
    /// The ProgramData account names this upgrade authority.
    Authority(Pubkey),
    /// The ProgramData account names none: the program is immutable.
    Immutable,
    /// The ProgramData account could not be read, with the reason.
    Unknown(String),
}

/// Every on-chain account of one deployment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The program the accounts belong to.
    pub program_id: Pubkey,
    /// Where the config account was read.
    pub config_address: Pubkey,
    pub config: Config,
    /// The price feed at its address, when it exists.
    pub price_feed: Option<(Pubkey, PriceFeed)>,
    /// The mint, when it exists and decodes.
    pub mint: Option<MintInfo>,
    /// The vault, when it exists and decodes.
    pub vault: Option<(Pubkey, VaultInfo)>,
    /// Who can upgrade the program.
    pub upgrade: ProgramUpgrade,
    pub records: Vec<(Pubkey, EpochRecord)>,
    pub ledgers: Vec<(Pubkey, EpochLedger)>,
    pub claims: Vec<(Pubkey, OperatorClaim)>,
    pub credits: Vec<(Pubkey, CreditAccount)>,
    /// Queued governance changes.
    pub changes: Vec<(Pubkey, PendingChange)>,
    /// Program accounts naming this config that are none of the above, with the reason.
    pub unknown: Vec<(Pubkey, String)>,
}

impl Snapshot {
    /// The snapshot of the deployment whose config was read at `config_address`, owned by
    /// `program_id`, before its other accounts are added (none read yet).
    pub fn new(program_id: Pubkey, config_address: Pubkey, config: Config) -> Snapshot {
        Snapshot {
            program_id,
            config_address,
            config,
            price_feed: None,
            mint: None,
            vault: None,
            upgrade: ProgramUpgrade::Unknown("not read".into()),
            records: vec![],
            ledgers: vec![],
            claims: vec![],
            credits: vec![],
            changes: vec![],
            unknown: vec![],
        }
    }

    /// Sorts raw program accounts (address, data) into the snapshot by their Anchor
    /// discriminator; a known discriminator whose data does not decode, or an unknown one, goes
    /// to `unknown`.
    pub fn add_program_account(&mut self, key: Pubkey, data: &[u8]) {
        use anchor_lang::{AccountDeserialize, Discriminator};
        fn decode<T: AccountDeserialize>(data: &[u8]) -> Result<T, String> {
            T::try_deserialize(&mut &data[..]).map_err(|e| e.to_string())
        }
        let d = |disc: &[u8]| data.starts_with(disc);
        let result = if d(EpochRecord::DISCRIMINATOR) {
            decode::<EpochRecord>(data).map(|a| self.records.push((key, a)))
        } else if d(EpochLedger::DISCRIMINATOR) {
            decode::<EpochLedger>(data).map(|a| self.ledgers.push((key, a)))
        } else if d(OperatorClaim::DISCRIMINATOR) {
            decode::<OperatorClaim>(data).map(|a| self.claims.push((key, a)))
        } else if d(CreditAccount::DISCRIMINATOR) {
            decode::<CreditAccount>(data).map(|a| self.credits.push((key, a)))
        } else if d(PendingChange::DISCRIMINATOR) {
            decode::<PendingChange>(data).map(|a| self.changes.push((key, a)))
        } else if d(PriceFeed::DISCRIMINATOR) {
            // Read on its own too; here it only has to decode.
            decode::<PriceFeed>(data).map(|_| ())
        } else {
            Err("unknown account type (discriminator)".to_string())
        };
        if let Err(e) = result {
            self.unknown.push((key, e));
        }
    }
}

/// One epoch's dataset as fetched: where from, and its bytes or why there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub source: String,
    pub bytes: Result<Vec<u8>, String>,
}
