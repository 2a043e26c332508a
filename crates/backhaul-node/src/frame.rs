//! The frames of a session (`docs/node.md`, "Frames"): a one-byte type and a borsh body, one per
//! Noise transport message.

use backhaul_protocol::{Sig, SignedGrant, UsageReceipt};
use borsh::{BorshDeserialize, BorshSerialize};

/// The most payload bytes one data frame carries: a Noise message holds at most 65,535 bytes,
/// of which 16 are its tag, one the frame type and four the length of the bytes.
pub const MAX_DATA: usize = 65_535 - 16 - 1 - 4;

/// The longest reason a refusal or a close carries, bytes.
pub const MAX_REASON: usize = 512;

/// What a client presents before anything else.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Hello {
    pub version: u16,
    /// The buyer's grant of the client key that signs this session's receipts.
    pub grant: SignedGrant,
    pub session_id: [u8; 16],
    /// The client key's signature of `backhaul:hello:v1 ‖ handshake hash ‖ session id`.
    pub signature: Sig,
}

/// The node's terms for a session it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Welcome {
    /// The epoch every receipt of the session names.
    pub epoch: u64,
    /// When the session started (unix seconds); receipts carry their age from it.
    pub started_at: i64,
    /// The node asks for a receipt every this many bytes.
    pub receipt_every_bytes: u64,
    /// The most bytes beyond the last countersigned amount the node relays.
    pub max_unreceipted_bytes: u64,
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Hello(Box<Hello>),
    Welcome(Welcome),
    Refused(String),
    Data(Vec<u8>),
    /// The node's count, asking for a receipt.
    ReceiptDue(u64),
    /// A receipt for the client's own count, signed by the client.
    Receipt(UsageReceipt, Sig),
    /// The node's countersignature of the receipt with this sequence.
    Countersigned(u64, Sig),
    Close(String),
}

/// Why bytes are not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("a data frame of {0} bytes, more than {MAX_DATA}")]
    TooLarge(usize),
    #[error("a reason of {0} bytes, more than {MAX_REASON}")]
    ReasonTooLong(usize),
}

const HELLO: u8 = 0x01;
const WELCOME: u8 = 0x02;
const REFUSED: u8 = 0x03;
const DATA: u8 = 0x10;
const RECEIPT_DUE: u8 = 0x20;
const RECEIPT: u8 = 0x21;
const COUNTERSIGNED: u8 = 0x22;
const CLOSE: u8 = 0x30;

impl Frame {
    /// The frame's bytes: its type, then its borsh body.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        let body = |out: &mut Vec<u8>, ty: u8, v: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
            out.push(ty);
            v(out).map_err(|_| FrameError::Malformed("outgoing"))
        };
        match self {
            Frame::Hello(h) => body(&mut out, HELLO, &|o| h.serialize(o))?,
            Frame::Welcome(w) => body(&mut out, WELCOME, &|o| w.serialize(o))?,
            Frame::Refused(r) | Frame::Close(r) => {
                if r.len() > MAX_REASON {
                    return Err(FrameError::ReasonTooLong(r.len()));
                }
                let ty = if matches!(self, Frame::Refused(_)) {
                    REFUSED
                } else {
                    CLOSE
                };
                body(&mut out, ty, &|o| r.serialize(o))?
            }
            Frame::Data(d) => {
                if d.len() > MAX_DATA {
                    return Err(FrameError::TooLarge(d.len()));
                }
                body(&mut out, DATA, &|o| d.serialize(o))?
            }
            Frame::ReceiptDue(n) => body(&mut out, RECEIPT_DUE, &|o| n.serialize(o))?,
            Frame::Receipt(r, s) => body(&mut out, RECEIPT, &|o| (r, s).serialize(o))?,
            Frame::Countersigned(n, s) => body(&mut out, COUNTERSIGNED, &|o| (n, s).serialize(o))?,
        }
        Ok(out)
    }

    /// Decodes one frame; its body must take exactly the bytes given.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        let (&ty, mut body) = bytes.split_first().ok_or(FrameError::Empty)?;
        fn exact<T: BorshDeserialize>(
            body: &mut &[u8],
            what: &'static str,
        ) -> Result<T, FrameError> {
            let v = T::deserialize(body).map_err(|_| FrameError::Malformed(what))?;
            if body.is_empty() {
                Ok(v)
            } else {
                Err(FrameError::Malformed(what))
            }
        }
        let reason = |body: &mut &[u8], what| -> Result<String, FrameError> {
            let r: String = exact(body, what)?;
            if r.len() > MAX_REASON {
                return Err(FrameError::ReasonTooLong(r.len()));
            }
            Ok(r)
        };
        Ok(match ty {
            HELLO => Frame::Hello(Box::new(exact(&mut body, "hello")?)),
            WELCOME => Frame::Welcome(exact(&mut body, "welcome")?),
            REFUSED => Frame::Refused(reason(&mut body, "refused")?),
            CLOSE => Frame::Close(reason(&mut body, "close")?),
            DATA => {
                let d: Vec<u8> = exact(&mut body, "data")?;
                if d.len() > MAX_DATA {
                    return Err(FrameError::TooLarge(d.len()));
                }
                Frame::Data(d)
            }
            RECEIPT_DUE => Frame::ReceiptDue(exact(&mut body, "receipt due")?),
            RECEIPT => {
                let (r, s): (UsageReceipt, Sig) = exact(&mut body, "receipt")?;
                Frame::Receipt(r, s)
            }
            COUNTERSIGNED => {
                let (n, s): (u64, Sig) = exact(&mut body, "countersigned")?;
                Frame::Countersigned(n, s)
            }
            other => return Err(FrameError::UnknownType(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn receipt() -> UsageReceipt {
        UsageReceipt {
            epoch: 3,
            session_id: [1; 16],
            node: [2; 32],
            client: [3; 32],
            buyer: [4; 32],
            sequence: 5,
            cumulative_bytes: 6,
            session_age_secs: 7,
        }
    }

    #[test]
    fn every_frame_round_trips_and_a_full_data_frame_fits_a_noise_message() {
        let frames = [
            Frame::Welcome(Welcome {
                epoch: 1,
                started_at: 2,
                receipt_every_bytes: 3,
                max_unreceipted_bytes: 4,
            }),
            Frame::Refused("no grant".into()),
            Frame::Data(vec![7; MAX_DATA]),
            Frame::ReceiptDue(99),
            Frame::Receipt(receipt(), [9; 64]),
            Frame::Countersigned(4, [8; 64]),
            Frame::Close("done".into()),
        ];
        for f in frames {
            let bytes = f.encode().unwrap();
            assert!(bytes.len() + 16 <= 65_535, "{} bytes", bytes.len());
            assert_eq!(Frame::decode(&bytes).unwrap(), f);
        }
        assert_eq!(
            Frame::Data(vec![0; MAX_DATA + 1]).encode(),
            Err(FrameError::TooLarge(MAX_DATA + 1))
        );
    }

    #[test]
    fn trailing_bytes_unknown_types_and_empty_frames_are_refused() {
        let mut bytes = Frame::ReceiptDue(1).encode().unwrap();
        bytes.push(0);
        assert_eq!(
            Frame::decode(&bytes),
            Err(FrameError::Malformed("receipt due"))
        );
        assert_eq!(Frame::decode(&[0x7f]), Err(FrameError::UnknownType(0x7f)));
        assert_eq!(Frame::decode(&[]), Err(FrameError::Empty));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Frame::decode(&bytes);
        }
    }
}
