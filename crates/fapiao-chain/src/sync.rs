//! Sync between members, both sides, written once for every host: the answers a member
//! gives from its storage ([`answer_blocks`], [`answer_certificates`]; heads come from
//! [`crate::Replica::heads`]) and the checks a member makes of an answer before the
//! replica sees it ([`check_heads`], [`check_blocks`], [`check_certificates`]). A check
//! that fails means the peer is not honest: the node penalises it, the simulator (whose
//! peers answer honestly) records a violation.

use crate::disk::ChainRead;
use crate::replica::{Config, HeadSummary};
use fapiao_core::{Block, Certificate, MemberCode};
use std::collections::BTreeSet;

/// A block in a sync answer, with its certificate when one certifies it.
pub type BlockAnswer = (Block, Option<Certificate>);

/// The answer to `asker`'s request for the blocks of `chain` from `from` to `to`: `None`
/// when `asker` may not read that chain (confidentiality: the sender refuses), else the
/// consecutive blocks held from `from`, each with its certificate when one certifies
/// that very block, at most `config.sync_blocks_max` of them and, past the first, at most
/// `bytes_max` encoded bytes in all (so the answer fits the transport's frame).
pub fn answer_blocks<S: ChainRead>(
    s: &S,
    latest: &fapiao_core::Config,
    config: &Config,
    asker: MemberCode,
    (chain, from, to): (MemberCode, u64, u64),
    bytes_max: usize,
) -> Result<Option<Vec<BlockAnswer>>, S::Error> {
    if !latest.may_read(asker, chain) {
        return Ok(None);
    }
    let last = to.min(from.saturating_add(config.sync_blocks_max.saturating_sub(1)));
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for h in from..=last {
        let Some(b) = s.block(chain, h)? else { break };
        bytes = bytes.saturating_add(fapiao_core::codec::to_bytes(&b).len());
        if !out.is_empty() && bytes > bytes_max {
            break;
        }
        let cert = s.certificate(chain, h)?.filter(|c| c.block == b.header.hash());
        out.push((b, cert));
    }
    Ok(Some(out))
}

/// The answer to a request for the certificates of `chain` from `from` to `to`: those
/// held, by height, at most `config.sync_certificates_max`. Certificates are public
/// (every member may check any chain's certified heads).
pub fn answer_certificates<S: ChainRead>(
    s: &S,
    config: &Config,
    (chain, from, to): (MemberCode, u64, u64),
) -> Result<Vec<Certificate>, S::Error> {
    let last = to.min(from.saturating_add(config.sync_certificates_max.saturating_sub(1)));
    if last < from {
        return Ok(Vec::new());
    }
    let span = usize::try_from(last - from + 1).unwrap_or(usize::MAX);
    let mut out = s.certificates(chain, from, span)?;
    out.retain(|c| c.height <= last);
    Ok(out)
}

/// Most chains a heads answer may name: every chain that ever existed, and a consortium
/// has at most [`fapiao_core::genesis::MEMBERS_MAX`] members at a time.
pub const HEADS_MAX: usize = 4096;

/// A heads answer names each chain at most once, at most [`HEADS_MAX`] of them, with its
/// certified prefix at or below its head: what an honest member's answer always is. A
/// chain the asker does not know (a peer may know a newer epoch) is allowed; the replica
/// skips it.
pub fn check_heads(heads: &[HeadSummary]) -> Result<(), String> {
    if heads.len() > HEADS_MAX {
        return Err(format!("heads name {} chains, more than {HEADS_MAX}", heads.len()));
    }
    let mut seen = BTreeSet::new();
    for h in heads {
        if !seen.insert(h.chain) {
            return Err(format!("heads name chain {} twice", h.chain));
        }
        if h.certified > h.height {
            return Err(format!(
                "heads claim chain {} certified to {} above its head {}",
                h.chain, h.certified, h.height
            ));
        }
    }
    Ok(())
}

/// A blocks answer to a request from height `lo` of `chain` is consecutive blocks of that
/// chain from `lo`, each linked to the one before; and it holds at least one block when
/// the peer's last heads (`claimed`) put the chain at or above `lo` (blocks are never
/// removed, so an honest peer always has it).
pub fn check_blocks(chain: MemberCode, lo: u64, blocks: &[BlockAnswer], claimed: Option<u64>) -> Result<(), String> {
    let in_order = blocks
        .iter()
        .enumerate()
        .all(|(i, (b, _))| b.header.body.chain == chain && b.header.body.height == lo.saturating_add(i as u64));
    if !in_order {
        return Err("blocks are not the consecutive range asked for".into());
    }
    if !blocks
        .windows(2)
        .all(|w| w[1].0.header.body.parent == w[0].0.header.hash())
    {
        return Err("blocks in the answer do not link".into());
    }
    if let Some(claimed) = claimed.filter(|h| *h >= lo) {
        if blocks.is_empty() {
            return Err(format!(
                "no block from height {lo} of chain {chain}, after claiming height {claimed}"
            ));
        }
    }
    Ok(())
}

/// A certificates answer to a request for `chain` from `lo` to `hi` holds certificates of
/// that chain within the range, by strictly rising height.
pub fn check_certificates(chain: MemberCode, (lo, hi): (u64, u64), certificates: &[Certificate]) -> Result<(), String> {
    let in_range = certificates.windows(2).all(|w| w[0].height < w[1].height)
        && certificates
            .iter()
            .all(|c| c.chain == chain && (lo..=hi).contains(&c.height));
    if in_range {
        Ok(())
    } else {
        Err("certificates are not the range asked for".into())
    }
}
