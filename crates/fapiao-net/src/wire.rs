//! What crosses the wire between members, in the canonical encoding, and the framing of
//! the sync protocol.

use fapiao_chain::HeadSummary;
use fapiao_core::{codec, Attestation, Block, BlockHash, Certificate, Equivocation, MemberCode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};
use std::io;

/// A gossiped object; the topic says which kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gossip {
    /// A block, published by its chain's owner.
    Block(Block),
    /// An attestation, published by its witness.
    Attestation(Attestation),
    /// Equivocation evidence.
    Evidence(Equivocation),
}

/// A sync request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Every chain's head and certified prefix.
    Heads,
    /// Blocks `from..=to` of `chain`, with their certificates.
    Blocks {
        /// The chain.
        chain: MemberCode,
        /// First height.
        from: u64,
        /// Last height.
        to: u64,
    },
    /// The certificates of `chain`'s blocks `from..=to` (the asker holds the blocks).
    Certificates {
        /// The chain.
        chain: MemberCode,
        /// First height.
        from: u64,
        /// Last height.
        to: u64,
    },
}

/// One chain's head, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireHead {
    /// The chain.
    pub chain: MemberCode,
    /// Head height.
    pub height: u64,
    /// Head hash.
    pub hash: BlockHash,
    /// Certified prefix.
    pub certified: u64,
    /// Evidence known.
    pub frozen: bool,
}

impl From<HeadSummary> for WireHead {
    fn from(h: HeadSummary) -> Self {
        WireHead {
            chain: h.chain,
            height: h.height,
            hash: h.hash,
            certified: h.certified,
            frozen: h.frozen,
        }
    }
}

impl From<WireHead> for HeadSummary {
    fn from(h: WireHead) -> Self {
        HeadSummary {
            chain: h.chain,
            height: h.height,
            hash: h.hash,
            certified: h.certified,
            frozen: h.frozen,
        }
    }
}

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Heads`].
    Heads(Vec<WireHead>),
    /// Answer to [`Request::Blocks`]: consecutive blocks from the first height asked,
    /// possibly fewer than asked (size bound, or the responder has no more).
    Blocks(Vec<(Block, Option<Certificate>)>),
    /// Answer to [`Request::Certificates`]: the certificates the responder holds in the
    /// range, by increasing height (gaps are left out).
    Certificates(Vec<Certificate>),
    /// The responder could not answer (busy, or a storage error).
    Unavailable,
}

/// Encodes a gossip payload (the topic carries the kind).
pub fn encode_gossip(g: &Gossip) -> Vec<u8> {
    match g {
        Gossip::Block(b) => codec::to_bytes(b),
        Gossip::Attestation(a) => codec::to_bytes(a),
        Gossip::Evidence(e) => codec::to_bytes(e),
    }
}

/// Reads one length-prefixed frame (u32 little-endian length, then that many bytes) of at
/// most `limit` bytes and decodes it.
pub(crate) async fn read_frame<T, R>(io: &mut R, limit: usize) -> io::Result<T>
where
    T: serde::de::DeserializeOwned,
    R: AsyncRead + Unpin + Send,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {limit}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    codec::decode_limited(&buf, limit).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Writes one length-prefixed frame.
pub(crate) async fn write_frame<T, W>(io: &mut W, value: &T) -> io::Result<()>
where
    T: Serialize,
    W: AsyncWrite + Unpin + Send,
{
    let bytes = codec::to_bytes(value);
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}
