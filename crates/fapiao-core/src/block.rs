//! Block headers, blocks, attestations, certificates and equivocation evidence.

use crate::codec;
use crate::config::{Config, Epochs};
use crate::event::Entry;
use crate::hash::{hash, Domain, Hash32};
use crate::ids::{BlockHash, MemberCode, NetworkId, Timestamp};
use crate::merkle;
use crate::sig::{self, BatchItem, SecretKey, SigError, Signature};
use serde::{Deserialize, Serialize};

/// What the chain owner signs for a block.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HeaderBody {
    /// The network.
    pub network: NetworkId,
    /// The chain (owner's member code).
    pub chain: MemberCode,
    /// The epoch this block is made in: its owner's key and the rules it executes under
    /// are that epoch's, and the chain is in it from this block on. It is certified by
    /// its parent's epoch (the chain's first epoch at height 1), so the committee the
    /// chain leaves certifies the block that moves it (PROTOCOL.md "Epochs").
    pub epoch: u32,
    /// 1 for the first block, then +1.
    pub height: u64,
    /// The previous block's hash; [`Hash32::ZERO`] at height 1.
    pub parent: BlockHash,
    /// The owner's block time.
    pub timestamp: Timestamp,
    /// RFC 6962 root over the entries' canonical bytes, in order.
    pub events_root: Hash32,
    /// Number of entries (input and derived).
    pub event_count: u32,
    /// Commitment to the chain's state after executing this block.
    pub state_root: Hash32,
}

impl HeaderBody {
    /// `H_header(canonical(body))`: the block hash, and the digest the owner signs.
    pub fn hash(&self) -> BlockHash {
        BlockHash(hash(Domain::Header, &codec::to_bytes(self)))
    }

    /// Signs with the chain owner's key.
    pub fn sign(self, key: &SecretKey) -> Header {
        let signature = key.sign(&self.hash().0);
        Header { body: self, signature }
    }
}

/// A signed block header.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Header {
    /// The signed fields.
    pub body: HeaderBody,
    /// The chain owner's signature on the block hash.
    pub signature: Signature,
}

/// Why a header, block, attestation, certificate or evidence is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Another network's object.
    #[error("object is for another network")]
    WrongNetwork,
    /// The chain has no owner in the object's epoch.
    #[error("chain {0} has no owner in that epoch")]
    UnknownChain(MemberCode),
    /// An attestation's or certificate's signer is not a witness of its epoch.
    #[error("member {0} is not a witness of that epoch")]
    NotAWitness(MemberCode),
    /// The epoch's configuration is not known (not yet, or never certified).
    #[error("epoch {0} is not known")]
    UnknownEpoch(u32),
    /// A signature is invalid.
    #[error("signature by {member} invalid: {error}")]
    Signature {
        /// Who signed.
        member: MemberCode,
        /// Why it is invalid.
        error: SigError,
    },
    /// The entries do not match the header's root or count.
    #[error("entries do not match the header (root or count)")]
    EntriesMismatch,
    /// A certificate's witnesses are not strictly increasing (so not distinct).
    #[error("certificate witnesses are not distinct and in increasing order")]
    WitnessesNotDistinct,
    /// Too few witnesses.
    #[error("certificate has {have} witnesses, quorum is {need}")]
    BelowQuorum {
        /// Distinct valid witnesses.
        have: usize,
        /// The quorum.
        need: usize,
    },
    /// Evidence headers are not for the same (chain, height), or are the same block.
    #[error("evidence headers are not two different blocks at one (chain, height)")]
    NotEquivocation,
}

impl Header {
    /// The block hash.
    pub fn hash(&self) -> BlockHash {
        self.body.hash()
    }

    /// Checks network, that the chain has an owner in the header's epoch, and the
    /// owner's signature under that epoch's key.
    pub fn verify(&self, epochs: &Epochs, network: &NetworkId) -> Result<BlockHash, BlockError> {
        if self.body.network != *network {
            return Err(BlockError::WrongNetwork);
        }
        let config = config_at(epochs, self.body.epoch)?;
        let owner = config
            .chain_owner(self.body.chain)
            .ok_or(BlockError::UnknownChain(self.body.chain))?;
        let h = self.hash();
        sig::verify(&owner.key, &h.0, &self.signature).map_err(|error| BlockError::Signature {
            member: self.body.chain,
            error,
        })?;
        Ok(h)
    }
}

fn config_at(epochs: &Epochs, epoch: u32) -> Result<&Config, BlockError> {
    epochs.at(epoch).ok_or(BlockError::UnknownEpoch(epoch))
}

/// A block: its signed header and its entries.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// Input events, each followed by the events derived from it.
    pub entries: Vec<Entry>,
}

/// The RFC 6962 root of a list of entries.
pub fn entries_root(entries: &[Entry]) -> Hash32 {
    let leaves: Vec<Hash32> = entries.iter().map(Entry::leaf_hash).collect();
    merkle::root(&leaves)
}

impl Block {
    /// Checks that the entries match the header's events root and count. (Signatures and
    /// re-execution are the validator's job.)
    pub fn check_entries(&self) -> Result<(), BlockError> {
        let count_ok = u32::try_from(self.entries.len()).is_ok_and(|n| n == self.header.body.event_count);
        if !count_ok || entries_root(&self.entries) != self.header.body.events_root {
            return Err(BlockError::EntriesMismatch);
        }
        Ok(())
    }
}

/// What a witness signs: "I accept this block at this (chain, height)".
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AttestationBody {
    /// The network.
    pub network: NetworkId,
    /// The chain.
    pub chain: MemberCode,
    /// The epoch whose committee certifies the block (its parent's epoch).
    pub epoch: u32,
    /// The height.
    pub height: u64,
    /// The block.
    pub block: BlockHash,
    /// The witnessing member.
    pub witness: MemberCode,
}

impl AttestationBody {
    /// `H_attestation(canonical(body))`, the digest the witness signs.
    pub fn digest(&self) -> Hash32 {
        hash(Domain::Attestation, &codec::to_bytes(self))
    }

    /// Signs with the witness's member key.
    pub fn sign(self, key: &SecretKey) -> Attestation {
        let signature = key.sign(&self.digest());
        Attestation { body: self, signature }
    }
}

/// A signed attestation.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Attestation {
    /// The signed fields.
    pub body: AttestationBody,
    /// The witness's signature.
    pub signature: Signature,
}

impl Attestation {
    /// Checks the network, that the signer is a witness of the attestation's epoch, and
    /// its signature under that epoch's key.
    pub fn verify(&self, epochs: &Epochs, network: &NetworkId) -> Result<(), BlockError> {
        if self.body.network != *network {
            return Err(BlockError::WrongNetwork);
        }
        let m = config_at(epochs, self.body.epoch)?
            .witness(self.body.witness)
            .ok_or(BlockError::NotAWitness(self.body.witness))?;
        sig::verify(&m.key, &self.body.digest(), &self.signature).map_err(|error| BlockError::Signature {
            member: self.body.witness,
            error,
        })
    }
}

/// One witness's signature inside a certificate.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WitnessSignature {
    /// The witness.
    pub witness: MemberCode,
    /// Its attestation signature.
    pub signature: Signature,
}

/// A quorum of attestations for one block: the block is final.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Certificate {
    /// The network.
    pub network: NetworkId,
    /// The chain.
    pub chain: MemberCode,
    /// The epoch whose committee signed (the block's parent's epoch).
    pub epoch: u32,
    /// The height.
    pub height: u64,
    /// The block.
    pub block: BlockHash,
    /// Signatures, by strictly increasing witness code.
    pub signatures: Vec<WitnessSignature>,
}

impl Certificate {
    /// Builds a certificate from attestations for the same block (deduplicated and
    /// sorted by witness). Does not check quorum; see [`Certificate::verify`].
    pub fn from_attestations<'a>(atts: impl IntoIterator<Item = &'a Attestation>) -> Option<Certificate> {
        let mut atts: Vec<&Attestation> = atts.into_iter().collect();
        let first = atts.first()?.body.clone();
        if atts.iter().any(|a| {
            a.body.network != first.network
                || a.body.chain != first.chain
                || a.body.epoch != first.epoch
                || a.body.height != first.height
                || a.body.block != first.block
        }) {
            return None;
        }
        atts.sort_by_key(|a| a.body.witness);
        atts.dedup_by_key(|a| a.body.witness);
        Some(Certificate {
            network: first.network,
            chain: first.chain,
            epoch: first.epoch,
            height: first.height,
            block: first.block,
            signatures: atts
                .iter()
                .map(|a| WitnessSignature {
                    witness: a.body.witness,
                    signature: a.signature,
                })
                .collect(),
        })
    }

    /// Checks network, distinct witnesses of the certificate's epoch, every signature
    /// (batched) under that epoch's keys, and that epoch's quorum.
    pub fn verify(&self, epochs: &Epochs, network: &NetworkId) -> Result<(), BlockError> {
        if self.network != *network {
            return Err(BlockError::WrongNetwork);
        }
        let config = config_at(epochs, self.epoch)?;
        if self.signatures.windows(2).any(|w| w[0].witness >= w[1].witness) {
            return Err(BlockError::WitnessesNotDistinct);
        }
        let mut digests = Vec::with_capacity(self.signatures.len());
        let mut keys = Vec::with_capacity(self.signatures.len());
        for ws in &self.signatures {
            let m = config.witness(ws.witness).ok_or(BlockError::NotAWitness(ws.witness))?;
            keys.push(m.key);
            digests.push(
                AttestationBody {
                    network: self.network,
                    chain: self.chain,
                    epoch: self.epoch,
                    height: self.height,
                    block: self.block,
                    witness: ws.witness,
                }
                .digest(),
            );
        }
        let items: Vec<BatchItem<'_>> = self
            .signatures
            .iter()
            .enumerate()
            .map(|(i, ws)| BatchItem {
                key: &keys[i],
                digest: &digests[i],
                signature: &ws.signature,
            })
            .collect();
        if let Err(e) = sig::verify_batch(&items) {
            let (i, error) = e.bad[0];
            return Err(BlockError::Signature {
                member: self.signatures[i].witness,
                error,
            });
        }
        let need = config.quorum() as usize;
        if self.signatures.len() < need {
            return Err(BlockError::BelowQuorum {
                have: self.signatures.len(),
                need,
            });
        }
        Ok(())
    }
}

/// Two validly signed headers for one (chain, height): proof that the chain owner
/// equivocated.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Equivocation {
    /// One header (the one with the smaller hash).
    pub first: Header,
    /// The other.
    pub second: Header,
}

impl Equivocation {
    /// Orders two conflicting headers canonically.
    pub fn new(a: Header, b: Header) -> Self {
        if a.hash() <= b.hash() {
            Equivocation { first: a, second: b }
        } else {
            Equivocation { first: b, second: a }
        }
    }

    /// Checks that both headers are validly signed by the owner for the same network,
    /// chain and height, and differ.
    pub fn verify(&self, epochs: &Epochs, network: &NetworkId) -> Result<(MemberCode, u64), BlockError> {
        let (a, b) = (&self.first.body, &self.second.body);
        if a.chain != b.chain || a.height != b.height || self.first.hash() == self.second.hash() {
            return Err(BlockError::NotEquivocation);
        }
        self.first.verify(epochs, network)?;
        self.second.verify(epochs, network)?;
        Ok((a.chain, a.height))
    }
}
