//! Fetching what the audit reads: the deployment's accounts from the cluster, and each epoch's
//! dataset from an oracle or from a folder.

use crate::context::Context;
use anchor_lang::AccountDeserialize;
use anyhow::{anyhow, Context as _};
use backhaul_audit::{Fetched, MintInfo, ProgramUpgrade, Snapshot, VaultInfo};
use backhaul_client::OracleClient;
use backhaul_core::merkle::sha256v;
use backhaul_sdk::state::{Config, PriceFeed};
use futures::StreamExt;
use solana_sdk::program_pack::Pack;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Reads the config, price feed, mint and vault, and every program account whose config field
/// is this deployment's (`getProgramAccounts` with a memcmp).
pub async fn snapshot(ctx: &Context) -> anyhow::Result<Snapshot> {
    let d = ctx.deployment().await?;
    let keys = [d.config, d.price_feed(), d.mint, d.vault()];
    let accounts = ctx
        .rpc
        .get_multiple_accounts_with_commitment(&keys, ctx.rpc.commitment())
        .await
        .map_err(|e| ctx.rpc_error(e))?
        .value;
    let [config, price_feed, mint, vault] = <[_; 4]>::try_from(accounts)
        .map_err(|_| anyhow!("the cluster answered getMultipleAccounts with the wrong count"))?;
    let config = config.ok_or_else(|| {
        anyhow!(
            "no config account at {} on {}: check --mint/--config and --url",
            d.config,
            ctx.url
        )
    })?;
    let program_id = config.owner;
    let config_state = Config::try_deserialize(&mut &config.data[..])
        .map_err(|e| anyhow!("the config account {} does not decode: {e}", d.config))?;
    let price_feed = price_feed
        .and_then(|a| PriceFeed::try_deserialize(&mut &a.data[..]).ok())
        .map(|f| (d.price_feed(), f));
    let mint = mint
        .and_then(|a| spl_token_interface::state::Mint::unpack(&a.data).ok())
        .map(|m| MintInfo {
            supply: m.supply,
            decimals: m.decimals,
            mint_authority: m.mint_authority.into(),
        });
    let vault = vault
        .and_then(|a| spl_token_interface::state::Account::unpack(&a.data).ok())
        .map(|v| {
            (
                d.vault(),
                VaultInfo {
                    amount: v.amount,
                    mint: v.mint,
                    owner: v.owner,
                },
            )
        });

    let program_accounts = ctx
        .deployment_accounts(&program_id, &d.config, None)
        .await?;
    tracing::info!(
        accounts = program_accounts.len(),
        config = %d.config,
        "read the deployment's program accounts"
    );
    let upgrade = match crate::admin::upgrade_authority(ctx).await {
        Ok(Some(key)) => ProgramUpgrade::Authority(key),
        Ok(None) => ProgramUpgrade::Immutable,
        Err(e) => ProgramUpgrade::Unknown(format!("{e:#}")),
    };
    let mut snapshot = Snapshot {
        price_feed,
        mint,
        vault,
        upgrade,
        ..Snapshot::new(program_id, d.config, config_state)
    };
    for (key, data) in program_accounts {
        match data {
            Some(data) => snapshot.add_program_account(key, &data),
            None => snapshot.unknown.push((
                key,
                "the cluster sent data that does not decode as base64".into(),
            )),
        }
    }
    Ok(snapshot)
}

/// Where datasets come from.
#[derive(Clone, Debug)]
pub enum DatasetSource {
    /// A folder holding `epoch-<n>.json`, as the oracles write them.
    Folder(PathBuf),
    /// Oracles, asked in order.
    Oracles(Vec<OracleClient>),
}

/// Fetches each wanted epoch's dataset; `expected` is the chain's sha256, used to prefer an
/// oracle that serves the committed bytes when several are given. Calls `tick` once per epoch.
pub async fn datasets(
    source: &DatasetSource,
    wanted: &[(u64, [u8; 32])],
    tick: impl Fn(u64),
) -> BTreeMap<u64, Fetched> {
    // Owned keys: the futures borrow nothing from `wanted`, so a spawned task can hold them.
    let fetches = wanted.iter().copied().map(|(epoch, expected)| {
        let source = source.clone();
        let tick = &tick;
        async move {
            let fetched = fetch_one(&source, epoch, &expected).await;
            tick(epoch);
            (epoch, fetched)
        }
    });
    futures::stream::iter(fetches)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn fetch_one(source: &DatasetSource, epoch: u64, expected: &[u8; 32]) -> Fetched {
    match source {
        DatasetSource::Folder(dir) => {
            let path = dir.join(format!("epoch-{epoch}.json"));
            Fetched {
                source: path.display().to_string(),
                bytes: tokio::fs::read(&path).await.map_err(|e| e.to_string()),
            }
        }
        DatasetSource::Oracles(clients) => {
            let mut first: Option<Fetched> = None;
            for client in clients {
                let source = format!(
                    "{}/v1/epochs/{epoch}/dataset",
                    client.base_url().as_str().trim_end_matches('/')
                );
                let bytes = client.dataset(epoch).await.map_err(|e| e.to_string());
                if let Ok(b) = &bytes {
                    if sha256v(&[b]) == *expected {
                        return Fetched { source, bytes };
                    }
                    tracing::warn!(%source, "the oracle's dataset does not hash to the chain's dataset_hash");
                }
                first.get_or_insert(Fetched { source, bytes });
            }
            first.unwrap_or(Fetched {
                source: "no oracle".into(),
                bytes: Err("no oracle URL was given".into()),
            })
        }
    }
}

/// Fetches each epoch's agreed input (`epoch-<n>.input` in a folder, or
/// `/v1/epochs/<n>/input` from the first oracle that has it).
pub async fn inputs(source: &DatasetSource, epochs: &[u64]) -> BTreeMap<u64, Fetched> {
    let fetches = epochs.iter().map(|&epoch| {
        let source = source.clone();
        async move {
            let fetched = match &source {
                DatasetSource::Folder(dir) => {
                    let path = dir.join(format!("epoch-{epoch}.input"));
                    Fetched {
                        source: path.display().to_string(),
                        bytes: tokio::fs::read(&path).await.map_err(|e| e.to_string()),
                    }
                }
                DatasetSource::Oracles(clients) => {
                    let mut last = Fetched {
                        source: "no oracle".into(),
                        bytes: Err("no oracle URL was given".into()),
                    };
                    for client in clients {
                        let source = format!(
                            "{}/v1/epochs/{epoch}/input",
                            client.base_url().as_str().trim_end_matches('/')
                        );
                        match client.agreed_input(epoch).await {
                            Ok(bytes) => {
                                return (
                                    epoch,
                                    Fetched {
                                        source,
                                        bytes: Ok(bytes),
                                    },
                                )
                            }
                            Err(e) => {
                                last = Fetched {
                                    source,
                                    bytes: Err(e.to_string()),
                                }
                            }
                        }
                    }
                    last
                }
            };
            (epoch, fetched)
        }
    });
    futures::stream::iter(fetches)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_report<T: serde::Serialize>(path: &std::path::Path, report: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report).context("cannot encode the report")?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the report to {}", path.display()))
}
