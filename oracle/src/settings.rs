//! Configuration: a TOML file, then `BACKHAUL_ORACLE_*` environment variables, then command-line
//! flags. See `oracle/settings.example.toml` for every key and its default.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the HTTP API listens (loopback by default).
    pub listen: SocketAddr,
    /// Directory for the embedded database and the published datasets.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL; when absent the oracle uses SQLite in `data_dir`. Never logged.
    #[serde(skip_serializing)]
    pub database_url: Option<String>,
    /// The Solana JSON-RPC endpoint.
    pub rpc_url: String,
    /// The program and the deployment's config account (base58).
    pub program_id: String,
    pub config: String,
    /// Base URLs of the other oracles' APIs (for example `https://oracle-2.example.net`): this
    /// oracle fetches their manifests and input files for each epoch, and a finalized dataset
    /// it missed. See `docs/agreement.md`.
    pub peers: Vec<String>,
    /// Where datasets and agreed inputs are published: unset, the folder `data_dir/datasets`;
    /// or an object store with the S3 API, `s3://bucket/prefix` (region, credentials and
    /// endpoint from the `AWS_*` environment variables). Never logged with credentials: it
    /// holds none.
    pub publish_url: Option<String>,
    /// After its own cutoff, how long this oracle waits for the inputs of oracles it has not
    /// heard from before closing without them, seconds.
    pub sync_wait_secs: u64,
    /// How often the closer looks for an epoch to close, seconds.
    pub close_poll_secs: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Items per second each signing key may submit (with a burst of ten seconds' worth).
    pub per_key_items_per_sec: u32,
    /// This oracle's key (a Solana CLI keypair file). Without it the oracle ingests, closes and
    /// serves proofs but submits nothing.
    pub keypair: Option<PathBuf>,
    /// How often the submitter looks at the chain, seconds.
    pub submit_poll_secs: u64,
    /// A fixed compute-unit limit for each transaction it sends. Unset (the default): each
    /// transaction is simulated first and asks for the units it used plus 10% and 1,000 units.
    pub compute_unit_limit: Option<u32>,
    /// The most it pays per compute unit, micro-lamports (it follows recent fees up to this).
    pub max_priority_fee_micro_lamports: u64,
    /// The credit price this oracle posts, credits per whole token (a fixed figure standing in for
    /// a price feed; with credits pegged at $1 = 100,000 credits, 100,000 means the token at $1).
    pub price_credits_per_token: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            data_dir: PathBuf::from("oracle-data"),
            database_url: None,
            rpc_url: "http://127.0.0.1:8899".into(),
            program_id: backhaul::ID.to_string(),
            config: String::new(),
            peers: Vec::new(),
            publish_url: None,
            sync_wait_secs: 30,
            close_poll_secs: 10,
            max_body_bytes: 4 << 20,
            per_key_items_per_sec: 2_000,
            keypair: None,
            submit_poll_secs: 2,
            compute_unit_limit: None,
            max_priority_fee_micro_lamports: 100_000,
            price_credits_per_token: None,
        }
    }
}

/// Settings that decide the dataset and so must be the same for every oracle: they are the
/// deployment's consensus parameters, on-chain, changed only by governance.
const MOVED_ON_CHAIN: &[&str] = &[
    "credits_per_gib",
    "pair_cap_bytes",
    "max_rate_bytes_per_sec",
    "grace_secs",
];

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{key} (in {place}) is no longer a setting: every oracle reads it from the deployment's on-chain consensus parameters (`backhaul admin show`; changed with `backhaul admin queue-params`). Remove it.")]
    MovedOnChain { key: String, place: String },
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the settings file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {var}={value:?} is not a valid {key}: {reason}")]
    Env {
        var: String,
        value: String,
        key: String,
        reason: String,
    },
}

impl Settings {
    /// Reads `path` (if given) over the defaults, then applies `BACKHAUL_ORACLE_<KEY>` variables
    /// from `env` (for example `BACKHAUL_ORACLE_LISTEN=127.0.0.1:9000`).
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| SettingsError::Parse {
                    path: path.into(),
                    source: Box::new(e),
                })?
            }
            None => toml::Table::new(),
        };

        for (var, value) in env {
            let Some(key) = var.strip_prefix("BACKHAUL_ORACLE_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if key == "peers" {
                // A comma-separated list of URLs.
                let list = value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| toml::Value::String(p.to_string()))
                    .collect();
                table.insert(key, toml::Value::Array(list));
                continue;
            }
            // Numbers stay numbers; everything else is a string.
            let v = value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .unwrap_or_else(|_| toml::Value::String(value.clone()));
            table.insert(key, v);
        }
        if let Some(key) = MOVED_ON_CHAIN.iter().find(|k| table.contains_key(**k)) {
            return Err(SettingsError::MovedOnChain {
                key: (*key).into(),
                place: path.map_or_else(
                    || format!("BACKHAUL_ORACLE_{}", key.to_ascii_uppercase()),
                    |p| p.display().to_string(),
                ),
            });
        }
        let file = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("<defaults and environment>"));
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::Parse {
                path: file,
                source: Box::new(e),
            })
    }

    /// The database URL to use.
    pub fn database(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| crate::db::sqlite_url(&self.data_dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oracle.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9100\"\nsync_wait_secs = 60\ndatabase_url = \"postgres://u:secret@h/db\"\n").unwrap();
        let env = [
            (
                "BACKHAUL_ORACLE_SYNC_WAIT_SECS".to_string(),
                "90".to_string(),
            ),
            ("OTHER".into(), "x".into()),
            (
                "BACKHAUL_ORACLE_PEERS".into(),
                "http://127.0.0.1:8701, http://127.0.0.1:8702".into(),
            ),
        ];
        let s = Settings::load(Some(&path), env).unwrap();
        assert_eq!(s.listen, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(s.sync_wait_secs, 90);
        assert_eq!(s.peers, ["http://127.0.0.1:8701", "http://127.0.0.1:8702"]);
        assert_eq!(s.close_poll_secs, Settings::default().close_poll_secs);
        // The database URL (which may hold a password) is never serialized, hence never logged.
        assert!(!toml::to_string(&s).unwrap().contains("secret"));
    }

    #[test]
    fn the_example_file_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("settings.example.toml");
        let s = Settings::load(Some(&path), []).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn bad_values_and_unknown_keys_are_clear_errors() {
        let env = [(
            "BACKHAUL_ORACLE_SYNC_WAIT_SECS".to_string(),
            "soon".to_string(),
        )];
        assert!(Settings::load(None, env).is_err());
        // What decides the dataset is on-chain now: a leftover setting says so.
        let env = [("BACKHAUL_ORACLE_GRACE_SECS".to_string(), "60".to_string())];
        let err = Settings::load(None, env).unwrap_err().to_string();
        assert!(
            err.contains("grace_secs") && err.contains("on-chain consensus parameters"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oracle.toml");
        std::fs::write(&path, "lisen = \"x\"").unwrap();
        let err = Settings::load(Some(&path), []).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }
}
