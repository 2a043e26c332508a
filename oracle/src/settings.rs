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
    /// Items per second each signing key may submit (with a burst of ten seconds' worth),
    /// charged only for items whose signatures verified and that were stored anew.
    pub per_key_items_per_sec: u32,
    /// Requests per second each remote address may make (with a burst of five seconds' worth;
    /// IPv6 addresses count by their /64). Over it a request is answered `429` with
    /// `Retry-After` before its body is read. Behind a reverse proxy every request comes from
    /// the proxy's address: raise this accordingly.
    pub per_address_requests_per_sec: u32,
    /// Items (receipts, grants, bindings) per second each remote address may send, counted from
    /// a request's declared length before its body is read (a burst of five seconds' worth):
    /// what bounds the signature checks one address can make the oracle do.
    pub per_address_items_per_sec: u32,
    /// Requests one remote address may have in progress at once; more are answered `429`. So
    /// that one address sending bodies slowly cannot hold every one of `max_concurrent_requests`.
    pub max_requests_per_address: usize,
    /// Whether loopback addresses (127.0.0.0/8, ::1) are limited per address too. Off by
    /// default: on loopback the oracle sees a reverse proxy on the same host (the documented
    /// deployment), which speaks for every client, or a local tool.
    pub limit_loopback_addresses: bool,
    /// Requests handled at once; more are answered `503` with `Retry-After`. In-flight bodies
    /// use at most `max_concurrent_requests × max_body_bytes` of memory (256 MiB by default).
    pub max_concurrent_requests: usize,
    /// Time a client has to send a request's headers (and an idle connection stays open),
    /// seconds; then the connection is closed.
    pub header_timeout_secs: u64,
    /// Time a client has to send a request's body, seconds; then it is answered `408`.
    pub request_timeout_secs: u64,
    /// Connections open at once; more wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Nodes one operator may have bound at this oracle (bindings in force, a node counting once
    /// whatever it signed); more are refused `too_many_nodes` until some expire or move.
    pub max_nodes_per_operator: usize,
    /// Clients one buyer may have granted at this oracle; more are refused `too_many_grants`
    /// until replaced ones are pruned after finalization.
    pub max_grants_per_buyer: usize,
    /// Seconds a buyer found without a credit account is answered from memory before it is
    /// looked up again (a buyer that just bought waits at most this long for its grants).
    pub unfunded_buyer_cache_secs: u64,
    /// Receipts held in memory while their binding or grant has not arrived (each about 300
    /// bytes); when full, more such receipts are refused `held_full`.
    pub max_held_receipts: usize,
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
    /// The price schedule, seconds: time (the chain's clock) is cut into slots this long and the
    /// submitter sends at most one price transaction per slot. Unset (the default): half of the
    /// deployment's on-chain `price_max_age_secs`, at least 1.
    pub price_interval_secs: Option<u64>,
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
            per_address_requests_per_sec: 50,
            per_address_items_per_sec: 20_000,
            max_requests_per_address: 8,
            limit_loopback_addresses: false,
            max_concurrent_requests: 64,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 1_024,
            max_nodes_per_operator: 10_000,
            max_grants_per_buyer: 100_000,
            unfunded_buyer_cache_secs: 10,
            max_held_receipts: 100_000,
            keypair: None,
            submit_poll_secs: 2,
            compute_unit_limit: None,
            max_priority_fee_micro_lamports: 100_000,
            price_credits_per_token: None,
            price_interval_secs: None,
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

/// The largest request body the settings accept, bytes.
const MAX_BODY_BYTES: usize = 256 << 20;
/// The most memory the settings let in-flight request bodies take, bytes.
const MAX_IN_FLIGHT_BYTES: usize = 16 << 30;

/// Checks that `url` is an absolute http or https URL with a host.
fn http_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is {:?}, not http or https",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(())
}

/// A URL cut to `scheme://host[:port]`: no user, password, path, query or fragment, where API
/// keys hide (`https://mainnet.helius-rpc.com/?api-key=…`). Text that does not parse as a URL
/// with a host becomes `<redacted>`.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url.trim()) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => {
            let host = u.host_str().unwrap_or_default();
            match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        _ => "<redacted>".into(),
    }
}

/// `text` with every `http://` or `https://` URL in it cut to `scheme://host[:port]` (see
/// [`redact_url`]): for error messages of libraries that quote the URL they failed to reach.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["http://", "https://"]
            .iter()
            .filter_map(|p| rest.to_ascii_lowercase().find(p))
            .min();
        let Some(start) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | '<'))
            .unwrap_or(tail.len());
        out.push_str(&redact_url(&tail[..end]));
        rest = &tail[end..];
    }
}

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
    #[error("{key} = {value} is not usable: {fix}")]
    Invalid {
        key: &'static str,
        value: String,
        fix: String,
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
            if key == "settings" {
                // BACKHAUL_ORACLE_SETTINGS is the settings file's path (`--settings`), not a key.
                continue;
            }
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

    /// Refuses zero or absurd values, saying what to change. Run after every override (file,
    /// environment, flags) has been applied.
    pub fn validate(&self) -> Result<(), SettingsError> {
        fn invalid(key: &'static str, value: impl ToString, fix: impl ToString) -> SettingsError {
            SettingsError::Invalid {
                key,
                value: value.to_string(),
                fix: fix.to_string(),
            }
        }
        let secs = |key: &'static str, v: u64, default: u64, max: u64| {
            if v == 0 || v > max {
                Err(invalid(
                    key,
                    v,
                    format!("set it between 1 and {max} seconds (default {default})"),
                ))
            } else {
                Ok(())
            }
        };
        let d = Settings::default();
        secs(
            "close_poll_secs",
            self.close_poll_secs,
            d.close_poll_secs,
            3_600,
        )?;
        secs(
            "submit_poll_secs",
            self.submit_poll_secs,
            d.submit_poll_secs,
            3_600,
        )?;
        secs(
            "header_timeout_secs",
            self.header_timeout_secs,
            d.header_timeout_secs,
            3_600,
        )?;
        secs(
            "request_timeout_secs",
            self.request_timeout_secs,
            d.request_timeout_secs,
            3_600,
        )?;
        // The smallest useful body is one item and its count; a body is held whole in memory.
        let min_body = 4 + backhaul_protocol::SIGNED_RECEIPT_LEN
            .max(backhaul_protocol::SIGNED_GRANT_LEN)
            .max(backhaul_protocol::SIGNED_BINDING_LEN);
        if self.max_body_bytes < min_body || self.max_body_bytes > MAX_BODY_BYTES {
            return Err(invalid(
                "max_body_bytes",
                self.max_body_bytes,
                format!(
                    "set it between {min_body} (one item) and {MAX_BODY_BYTES} bytes (default {})",
                    d.max_body_bytes
                ),
            ));
        }
        if self.per_key_items_per_sec == 0 {
            return Err(invalid(
                "per_key_items_per_sec",
                0,
                format!("set it to at least 1 (default {})", d.per_key_items_per_sec),
            ));
        }
        if self.per_address_items_per_sec == 0 {
            return Err(invalid(
                "per_address_items_per_sec",
                0,
                format!(
                    "set it to at least 1 (default {}; behind a reverse proxy, what the proxy forwards in all)",
                    d.per_address_items_per_sec
                ),
            ));
        }
        if self.max_requests_per_address == 0 {
            return Err(invalid(
                "max_requests_per_address",
                0,
                format!(
                    "set it to at least 1 (default {}; at most max_concurrent_requests counts)",
                    d.max_requests_per_address
                ),
            ));
        }
        if self.per_address_requests_per_sec == 0 {
            return Err(invalid(
                "per_address_requests_per_sec",
                0,
                format!(
                    "set it to at least 1 (default {}; behind a reverse proxy, what the proxy forwards in all)",
                    d.per_address_requests_per_sec
                ),
            ));
        }
        let memory = self
            .max_concurrent_requests
            .saturating_mul(self.max_body_bytes);
        if self.max_concurrent_requests == 0 || memory > MAX_IN_FLIGHT_BYTES {
            return Err(invalid(
                "max_concurrent_requests",
                self.max_concurrent_requests,
                format!(
                    "set it to at least 1 and so that max_concurrent_requests × max_body_bytes ({}) stays within {} GiB of bodies in memory (default {})",
                    self.max_body_bytes,
                    MAX_IN_FLIGHT_BYTES >> 30,
                    d.max_concurrent_requests
                ),
            ));
        }
        for (key, v, default) in [
            (
                "max_nodes_per_operator",
                self.max_nodes_per_operator,
                d.max_nodes_per_operator,
            ),
            (
                "max_grants_per_buyer",
                self.max_grants_per_buyer,
                d.max_grants_per_buyer,
            ),
            (
                "max_held_receipts",
                self.max_held_receipts,
                d.max_held_receipts,
            ),
            ("max_connections", self.max_connections, d.max_connections),
            (
                "unfunded_buyer_cache_secs",
                usize::try_from(self.unfunded_buyer_cache_secs).unwrap_or(usize::MAX),
                usize::try_from(d.unfunded_buyer_cache_secs).unwrap_or(usize::MAX),
            ),
        ] {
            if v == 0 || v > 100_000_000 {
                return Err(invalid(
                    key,
                    v,
                    format!("set it between 1 and 100,000,000 (default {default})"),
                ));
            }
        }
        if self.price_interval_secs == Some(0) {
            return Err(invalid(
                "price_interval_secs",
                0,
                "set it to at least 1 second, or remove it to post every half of the deployment's price_max_age_secs",
            ));
        }
        if let Err(e) = http_url(&self.rpc_url) {
            return Err(invalid(
                "rpc_url",
                format!("{:?}", redact_url(&self.rpc_url)),
                format!("{e}; set it to the Solana JSON-RPC endpoint, e.g. https://api.mainnet-beta.solana.com"),
            ));
        }
        for peer in &self.peers {
            if let Err(e) = http_url(peer) {
                return Err(invalid(
                    "peers",
                    format!("[.., {:?}, ..]", redact_url(peer)),
                    format!("{e}; each peer is another oracle's API base URL, e.g. https://oracle-2.example.net"),
                ));
            }
        }
        if let Some(url) = &self.publish_url {
            let bucket = url
                .strip_prefix("s3://")
                .map(|r| r.split('/').next().unwrap_or(""));
            if bucket.is_none_or(str::is_empty) {
                return Err(invalid(
                    "publish_url",
                    format!("{url:?}"),
                    "set it to s3://bucket[/prefix] for an object store, or remove it to publish to data_dir/datasets",
                ));
            }
        }
        Ok(())
    }

    /// These settings with secrets left out: the RPC URL cut to `scheme://host[:port]` (its path
    /// or query often holds an API key) and no database URL. What is printed and logged.
    pub fn redacted(&self) -> Settings {
        Settings {
            rpc_url: redact_url(&self.rpc_url),
            database_url: None,
            ..self.clone()
        }
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

    #[test]
    fn urls_are_redacted_to_scheme_host_and_port() {
        assert_eq!(
            redact_url("https://mainnet.helius-rpc.com/?api-key=SECRET123"),
            "https://mainnet.helius-rpc.com"
        );
        assert_eq!(
            redact_url("https://user:pw@rpc.example.net:8443/v2/TOKEN?x=1#f"),
            "https://rpc.example.net:8443"
        );
        assert_eq!(redact_url("http://127.0.0.1:8899"), "http://127.0.0.1:8899");
        assert_eq!(redact_url("not a url SECRET"), "<redacted>");
        let text = "error sending request for url (https://rpc.example.net/TOKEN?api-key=SECRET): \
                    connection refused; retried http://h:1/p?k=SECRET2 twice";
        let r = redact_urls(text);
        assert_eq!(
            r,
            "error sending request for url (https://rpc.example.net): \
                    connection refused; retried http://h:1 twice"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        let s = Settings {
            rpc_url: "https://a.example/path-TOKEN?api-key=SECRET".into(),
            database_url: Some("postgres://u:pw@h/db".into()),
            ..Settings::default()
        };
        let printed = toml::to_string(&s.redacted()).unwrap();
        assert!(
            !printed.contains("SECRET") && !printed.contains("TOKEN"),
            "{printed}"
        );
        assert!(
            printed.contains("rpc_url = \"https://a.example\""),
            "{printed}"
        );
    }

    #[test]
    fn the_settings_path_variable_is_not_a_key() {
        let env = [(
            "BACKHAUL_ORACLE_SETTINGS".to_string(),
            "/etc/backhaul/oracle.toml".to_string(),
        )];
        assert_eq!(Settings::load(None, env).unwrap(), Settings::default());
    }

    #[test]
    fn zero_and_absurd_values_say_what_to_change() {
        Settings::default().validate().unwrap();
        let err = |s: Settings| s.validate().unwrap_err().to_string();
        let d = Settings::default;
        let e = err(Settings {
            close_poll_secs: 0,
            ..d()
        });
        assert!(
            e.contains("close_poll_secs = 0") && e.contains("between 1 and"),
            "{e}"
        );
        let e = err(Settings {
            max_body_bytes: 0,
            ..d()
        });
        assert!(
            e.contains("max_body_bytes = 0") && e.contains("one item"),
            "{e}"
        );
        let e = err(Settings {
            per_key_items_per_sec: 0,
            ..d()
        });
        assert!(
            e.contains("per_key_items_per_sec = 0") && e.contains("at least 1"),
            "{e}"
        );
        let e = err(Settings {
            per_address_requests_per_sec: 0,
            ..d()
        });
        assert!(e.contains("per_address_requests_per_sec"), "{e}");
        let e = err(Settings {
            max_concurrent_requests: 0,
            ..d()
        });
        assert!(e.contains("max_concurrent_requests = 0"), "{e}");
        let e = err(Settings {
            max_concurrent_requests: 1_000_000,
            ..d()
        });
        assert!(e.contains("GiB"), "{e}");
        let e = err(Settings {
            request_timeout_secs: 0,
            ..d()
        });
        assert!(e.contains("request_timeout_secs"), "{e}");
        let e = err(Settings {
            header_timeout_secs: 0,
            ..d()
        });
        assert!(e.contains("header_timeout_secs"), "{e}");
        let e = err(Settings {
            price_interval_secs: Some(0),
            ..d()
        });
        assert!(
            e.contains("price_interval_secs = 0") && e.contains("at least 1 second"),
            "{e}"
        );
        Settings {
            price_interval_secs: Some(1),
            ..d()
        }
        .validate()
        .unwrap();
        let e = err(Settings {
            publish_url: Some("/var/datasets".into()),
            ..d()
        });
        assert!(
            e.contains("publish_url") && e.contains("s3://bucket"),
            "{e}"
        );
        let e = err(Settings {
            publish_url: Some("s3://".into()),
            ..d()
        });
        assert!(e.contains("publish_url"), "{e}");
        Settings {
            publish_url: Some("s3://bucket/prefix".into()),
            ..d()
        }
        .validate()
        .unwrap();
        let e = err(Settings {
            peers: vec!["http://ok.example".into(), "oracle-2:8700".into()],
            ..d()
        });
        assert!(e.contains("peers") && e.contains("http"), "{e}");
        let e = err(Settings {
            peers: vec!["ftp://oracle-2.example".into()],
            ..d()
        });
        assert!(e.contains("peers") && e.contains("ftp"), "{e}");
        let e = err(Settings {
            rpc_url: "localhost:8899?api-key=SECRET".into(),
            ..d()
        });
        assert!(e.contains("rpc_url") && !e.contains("SECRET"), "{e}");
    }
}
