//! A node's configuration (`backhaul node serve`): a TOML file, then `BACKHAUL_NODE_<KEY>`
//! environment variables, then command-line flags. `crates/backhaul-node/node.example.toml` lists
//! every key with its default.

use crate::egress::Policy;
use backhaul_protocol::advert::Endpoint;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One MiB.
pub const MIB: u64 = 1 << 20;

/// Everything a node reads at start.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// Where gateways connect (TCP). Open this port to the internet. `"off"`: no port, the node is
    /// reached through `relay` only.
    #[serde(with = "listen_serde")]
    pub listen: Option<SocketAddr>,
    /// A relay (`host:port`, `backhaul relay`) the node keeps a link to, so that gateways reach it
    /// without an open port (behind NAT). Unset: none.
    pub relay: Option<String>,
    /// Where gateways are told to reach the node, in the adverts it signs and sends to every
    /// oracle every half hour: `host:port` (its public address) or `relay://host:port`. Unset:
    /// the relay when one is set, otherwise no advert.
    pub advertise: Option<String>,
    /// The node's key (a Solana CLI keypair file): it pins the channel and countersigns
    /// receipts. Bind it to your wallet once with `backhaul operator bind --node-keypair`.
    pub node_keypair: PathBuf,
    /// The Solana JSON-RPC endpoint. Unset: the command line's `--url` (`BACKHAUL_URL`).
    pub rpc_url: Option<String>,
    /// The program; unset, the one this build serves (a different one is refused).
    pub program_id: Option<String>,
    /// The deployment, by its config account or its token mint. Unset: the command line's
    /// `--config` / `--mint` (`BACKHAUL_CONFIG`, `BACKHAUL_MINT`).
    pub config: Option<String>,
    pub mint: Option<String>,
    /// The oracles' base URLs, where countersigned receipts go. Empty: the command line's
    /// `--oracle` (`BACKHAUL_ORACLES`).
    pub oracles: Vec<String>,
    /// The receipt queue (SQLite) and the month's volume live here.
    pub data_dir: PathBuf,
    /// The node asks for a receipt every this many bytes of a session.
    pub receipt_every_bytes: u64,
    /// The most bytes a session relays beyond its last countersigned receipt; the node stops
    /// relaying there and ends the session when no receipt comes within `timeout_secs`.
    pub max_unreceipted_bytes: u64,
    /// How long the node waits for a handshake, a hello, a proxy request, a destination's
    /// connection and a receipt it asked for, seconds.
    pub timeout_secs: u64,
    /// On shutdown, how long sessions in progress may go on before they are cut, seconds.
    pub drain_secs: u64,
    /// Destination ports sessions may connect to.
    pub ports: Vec<u16>,
    /// Loopback destinations allowed: for tests with a local origin only, never in production.
    pub allow_loopback: bool,
    /// This machine's own addresses, never destinations (the listen address is added when it
    /// is a specific, non-loopback one).
    pub own_addresses: Vec<IpAddr>,
    /// Sessions served at once; more are refused with the reason (the gateway tries another
    /// node).
    pub max_sessions: usize,
    /// Bytes per second across all sessions (both directions of the gateways' connections);
    /// 0: no limit.
    pub bandwidth_limit_bytes_per_sec: u64,
    /// Bytes per calendar month (UTC, both directions of the gateways' connections) after which
    /// new sessions are refused until the month ends; 0: no limit. Sessions in progress go on.
    pub monthly_limit_bytes: u64,
    /// Prometheus metrics on `http://<this>/metrics`; unset: none.
    pub metrics_listen: Option<SocketAddr>,
    /// How often queued receipts are sent to the oracles when nothing new arrives, seconds (a
    /// new receipt is sent within a second; an oracle that fails is retried with a backoff up to
    /// a minute).
    pub deliver_every_secs: u64,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 7700))),
            relay: None,
            advertise: None,
            node_keypair: PathBuf::from("node.json"),
            rpc_url: None,
            program_id: None,
            config: None,
            mint: None,
            oracles: Vec::new(),
            data_dir: PathBuf::from("node-data"),
            receipt_every_bytes: MIB,
            max_unreceipted_bytes: 4 * MIB,
            timeout_secs: 30,
            drain_secs: 10,
            ports: vec![80, 443],
            allow_loopback: false,
            own_addresses: Vec::new(),
            max_sessions: 256,
            bandwidth_limit_bytes_per_sec: 0,
            monthly_limit_bytes: 0,
            metrics_listen: None,
            deliver_every_secs: 10,
        }
    }
}

/// Why settings cannot be used; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
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
    #[error("cannot read the node key {path}: {why}. Pass --node-keypair <FILE> (a Solana CLI keypair, as `solana-keygen new -o <FILE>` writes)")]
    Key { path: PathBuf, why: String },
}

/// Keys whose environment variable holds a comma-separated list.
const LISTS: &[&str] = &["oracles", "ports", "own_addresses"];
/// Keys that are always strings, even when they look like numbers.
const STRINGS: &[&str] = &[
    "rpc_url",
    "program_id",
    "config",
    "mint",
    "node_keypair",
    "data_dir",
    "listen",
    "relay",
    "advertise",
];

/// `listen`: an address, or `"off"` for none.
mod listen_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::SocketAddr;

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_listen(&text).map_err(serde::de::Error::custom)
    }
}

/// `listen`'s value: `host:port` (an IP address), or `off`.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| {
        format!("listen = {t:?} is neither an IP address and port (0.0.0.0:7700) nor \"off\"")
    })
}

impl NodeSettings {
    /// Reads `path` (if given) over the defaults, then applies `BACKHAUL_NODE_<KEY>` variables
    /// from `env` (for example `BACKHAUL_NODE_LISTEN=0.0.0.0:7700`,
    /// `BACKHAUL_NODE_PORTS=80,443`).
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
        let scalar = |key: &str, v: &str| -> toml::Value {
            if STRINGS.contains(&key) {
                return toml::Value::String(v.to_string());
            }
            if let Ok(i) = v.parse::<i64>() {
                return toml::Value::Integer(i);
            }
            match v {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => toml::Value::String(v.to_string()),
            }
        };
        for (var, value) in env {
            let Some(key) = var.strip_prefix("BACKHAUL_NODE_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if key == "settings" {
                // BACKHAUL_NODE_SETTINGS is the file's path (`--settings`), not a key.
                continue;
            }
            let v = if LISTS.contains(&key.as_str()) {
                toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| scalar(&key, p))
                        .collect(),
                )
            } else {
                scalar(&key, value.trim())
            };
            table.insert(key, v);
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

    /// Refuses zero or absurd values, saying what to change. Run after every override.
    pub fn validate(&self) -> Result<(), SettingsError> {
        fn invalid(key: &'static str, value: impl ToString, fix: impl ToString) -> SettingsError {
            SettingsError::Invalid {
                key,
                value: value.to_string(),
                fix: fix.to_string(),
            }
        }
        let d = NodeSettings::default();
        for (key, v, default, max) in [
            ("timeout_secs", self.timeout_secs, d.timeout_secs, 3_600),
            ("drain_secs", self.drain_secs, d.drain_secs, 3_600),
            (
                "deliver_every_secs",
                self.deliver_every_secs,
                d.deliver_every_secs,
                3_600,
            ),
        ] {
            if v == 0 || v > max {
                return Err(invalid(
                    key,
                    v,
                    format!("set it between 1 and {max} seconds (default {default})"),
                ));
            }
        }
        if self.receipt_every_bytes < 16 * 1024 || self.receipt_every_bytes > 1 << 30 {
            return Err(invalid(
                "receipt_every_bytes",
                self.receipt_every_bytes,
                format!(
                    "set it between 16384 and 1073741824 bytes (default {})",
                    d.receipt_every_bytes
                ),
            ));
        }
        // The node asks at `receipt_every_bytes` and stops at the bound: the bound must leave
        // room for a receipt request and the frames in flight while it is answered.
        let least = self.receipt_every_bytes.saturating_mul(2);
        if self.max_unreceipted_bytes < least {
            return Err(invalid(
                "max_unreceipted_bytes",
                self.max_unreceipted_bytes,
                format!(
                    "set it to at least twice receipt_every_bytes ({least}; default {})",
                    d.max_unreceipted_bytes
                ),
            ));
        }
        if self.ports.is_empty() || self.ports.contains(&0) {
            return Err(invalid(
                "ports",
                format!("{:?}", self.ports),
                "list the destination ports sessions may use, e.g. [80, 443] (the default)",
            ));
        }
        if self.max_sessions == 0 || self.max_sessions > 1_000_000 {
            return Err(invalid(
                "max_sessions",
                self.max_sessions,
                format!("set it between 1 and 1000000 (default {})", d.max_sessions),
            ));
        }
        if self.bandwidth_limit_bytes_per_sec != 0 && self.bandwidth_limit_bytes_per_sec < 16_384 {
            return Err(invalid(
                "bandwidth_limit_bytes_per_sec",
                self.bandwidth_limit_bytes_per_sec,
                "set it to at least 16384 bytes per second, or 0 for no limit",
            ));
        }
        for url in &self.oracles {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "oracles",
                    format!("[.., {url:?}, ..]"),
                    "each oracle is its API's base URL, e.g. https://oracle-1.example.net",
                ));
            }
        }
        if let Some(r) = &self.relay {
            if !matches!(Endpoint::parse(r), Some(Endpoint::Direct { .. })) {
                return Err(invalid(
                    "relay",
                    format!("{r:?}"),
                    "name the relay as host:port, e.g. relay.example.net:7800",
                ));
            }
        }
        if let Some(a) = &self.advertise {
            if Endpoint::parse(a).is_none() {
                return Err(invalid(
                    "advertise",
                    format!("{a:?}"),
                    "advertise host:port (the node's public address) or relay://host:port",
                ));
            }
        }
        if self.listen.is_none() && self.relay.is_none() {
            return Err(invalid(
                "listen",
                "\"off\"",
                "a node without a listening port needs a relay: set relay = \"host:port\", or \
                 listen on an address",
            ));
        }
        if self.mint.is_some() && self.config.is_some() {
            return Err(invalid(
                "mint",
                format!("{:?}", self.mint.as_deref().unwrap_or_default()),
                "name the deployment by its mint or by its config, not both",
            ));
        }
        Ok(())
    }

    /// The egress rules these settings give.
    pub fn policy(&self) -> Policy {
        let mut own: std::collections::BTreeSet<IpAddr> =
            self.own_addresses.iter().copied().collect();
        // A loopback listen address is covered by the loopback rule (and tests with a loopback
        // origin allow loopback).
        if let Some(listen) = self.listen {
            let ip = listen.ip();
            if !ip.is_unspecified() && !ip.is_loopback() {
                own.insert(ip);
            }
        }
        Policy {
            ports: self.ports.iter().copied().collect(),
            own,
            allow_loopback: self.allow_loopback,
            ..Policy::default()
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// What the node advertises: `advertise`, else the relay, else nothing.
    pub fn advertised(&self) -> Option<Endpoint> {
        match (&self.advertise, &self.relay) {
            (Some(a), _) => Endpoint::parse(a),
            (None, Some(r)) => Endpoint::parse(&format!("relay://{r}")),
            (None, None) => None,
        }
    }
}

/// Reads a Solana CLI keypair file (a JSON array of 64 bytes: the secret, then the public key)
/// as an ed25519 signing key, checking that its halves match.
pub fn read_keypair(path: &Path) -> Result<ed25519_dalek::SigningKey, SettingsError> {
    let err = |why: String| SettingsError::Key {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let bytes: Vec<u8> = serde_json::from_str(text.trim())
        .map_err(|e| err(format!("not a JSON array of 64 numbers ({e})")))?;
    let (secret, public) = match (bytes.get(..32), bytes.get(32..)) {
        (Some(s), Some(p)) if bytes.len() == 64 => (s, p),
        _ => return Err(err(format!("{} bytes, not 64", bytes.len()))),
    };
    let mut seed = [0u8; 32];
    seed.copy_from_slice(secret);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    if key.verifying_key().as_bytes() != public {
        return Err(err("its public half does not match its secret half".into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_then_validation() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nports = [443]\nmonthly_limit_bytes = 1000000000\n",
        )
        .expect("write");
        let env = [
            ("BACKHAUL_NODE_PORTS".to_string(), "80, 8080".to_string()),
            ("BACKHAUL_NODE_ALLOW_LOOPBACK".into(), "true".into()),
            (
                "BACKHAUL_NODE_ORACLES".into(),
                "http://127.0.0.1:8700,http://127.0.0.1:8701".into(),
            ),
            ("BACKHAUL_NODE_CONFIG".into(), "123".into()),
            ("BACKHAUL_NODE_SETTINGS".into(), "ignored.toml".into()),
            ("OTHER".into(), "x".into()),
        ];
        let s = NodeSettings::load(Some(&path), env).expect("load");
        assert_eq!(s.listen, Some("127.0.0.1:9000".parse().expect("addr")));
        assert_eq!(s.ports, vec![80, 8080]);
        assert!(s.allow_loopback);
        assert_eq!(s.oracles.len(), 2);
        assert_eq!(s.config.as_deref(), Some("123"));
        assert_eq!(s.monthly_limit_bytes, 1_000_000_000);
        assert_eq!(s.receipt_every_bytes, MIB);
        assert_eq!(s.max_unreceipted_bytes, 4 * MIB);
        s.validate().expect("valid");
        let p = s.policy();
        assert!(p.own.is_empty(), "loopback is the loopback rule's");
        assert!(p.allow_loopback);
        let public = NodeSettings {
            listen: Some("203.0.113.7:7700".parse().expect("addr")),
            ..NodeSettings::default()
        };
        assert!(public
            .policy()
            .own
            .contains(&"203.0.113.7".parse().expect("ip")));

        // Unknown keys and bad values say what to change.
        std::fs::write(&path, "listen_on = \"x\"\n").expect("write");
        let e = NodeSettings::load(Some(&path), []).expect_err("unknown key");
        assert!(e.to_string().contains("listen_on"), "{e}");
        let bad = NodeSettings {
            max_unreceipted_bytes: MIB,
            ..NodeSettings::default()
        };
        let e = bad.validate().expect_err("bound below two receipts");
        assert!(e.to_string().contains("at least twice"), "{e}");
        let bad = NodeSettings {
            ports: vec![],
            ..NodeSettings::default()
        };
        assert!(bad.validate().is_err());

        // Reached through a relay only, advertising it.
        std::fs::write(&path, "listen = \"off\"\nrelay = \"relay.example:7800\"\n").expect("write");
        let s = NodeSettings::load(Some(&path), []).expect("load");
        assert_eq!(s.listen, None);
        s.validate().expect("valid");
        assert_eq!(
            s.advertised().map(|e| e.to_string()).as_deref(),
            Some("relay://relay.example:7800")
        );
        assert!(toml::to_string(&s)
            .expect("toml")
            .contains("listen = \"off\""));
        let no_way_in = NodeSettings {
            relay: None,
            ..s.clone()
        };
        let e = no_way_in.validate().expect_err("unreachable");
        assert!(e.to_string().contains("needs a relay"), "{e}");
        let bad = NodeSettings {
            advertise: Some("ftp://x".into()),
            ..s
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_example_file_holds_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("node.example.toml");
        let s = NodeSettings::load(Some(&path), []).expect("the example parses");
        assert_eq!(s, NodeSettings::default());
        s.validate().expect("valid");
    }

    #[test]
    fn keypair_files() {
        let dir = tempfile::tempdir().expect("dir");
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let mut bytes = key.to_bytes().to_vec();
        bytes.extend_from_slice(key.verifying_key().as_bytes());
        let path = dir.path().join("node.json");
        std::fs::write(&path, serde_json::to_string(&bytes).expect("json")).expect("write");
        assert_eq!(
            read_keypair(&path).expect("read").to_bytes(),
            key.to_bytes()
        );
        bytes[40] ^= 1;
        std::fs::write(&path, serde_json::to_string(&bytes).expect("json")).expect("write");
        let e = read_keypair(&path).expect_err("mismatched halves");
        assert!(e.to_string().contains("does not match"), "{e}");
        let e = read_keypair(&dir.path().join("missing.json")).expect_err("missing");
        assert!(e.to_string().contains("--node-keypair"), "{e}");
    }
}
