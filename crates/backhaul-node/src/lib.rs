//! Backhaul nodes and gateways (`docs/node.md`).
//!
//! | module | for |
//! |---|---|
//! | [`keys`] | a node's ed25519 key as the Noise static key that pins the channel |
//! | [`frame`] | the frames a session carries, and their encoding |
//! | [`channel`] | the Noise handshake and framed, encrypted transport over any byte stream |
//! | [`hello`] | what a client presents: the buyer's grant and its signature binding it to the channel |
//! | [`proxy`] | the SOCKS5, HTTP `CONNECT` or plain-HTTP request that starts a session's byte stream |
//! | [`egress`] | where a node connects: public addresses on allowed ports, checked after resolution |
//! | [`meter`] | the node's count of a session and its rules for receipts |
//! | [`session`] | one session on the node's side: hello, proxy request, egress, metered relay |
//! | [`queue`] | the node's durable receipt queue and its delivery to every oracle |
//! | [`relay`] | how gateways reach nodes behind NAT: a rendezvous that splices ciphertext |
//! | [`directory`] | the node directory: a node's signed adverts to the oracles, a gateway's reading of them |
//! | [`client`] | one session on the client's (gateway's) side: its own count, its receipts |
//! | [`delivery`] | a queue sent to every oracle for as long as a service runs |
//! | [`settings`] | a node's settings: file, environment, validation |
//! | [`server`] | the node as a service: accept loop, limits, metrics, graceful shutdown |
//! | [`gateway`] | the firm's local SOCKS5 / HTTP proxy, one session per connection |

pub mod channel;
pub mod client;
pub mod delivery;
pub mod directory;
pub mod egress;
pub mod frame;
pub mod gateway;
pub mod hello;
pub mod keys;
pub mod meter;
pub mod proxy;
pub mod queue;
pub mod relay;
pub mod server;
pub mod session;
pub mod settings;

/// The session protocol's version, carried in the hello.
pub const PROTOCOL_VERSION: u16 = 1;
