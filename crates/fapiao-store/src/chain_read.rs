//! The store as the replication protocol reads it (`fapiao_chain::disk::ChainRead`).

use crate::tables::{chain_prefix, Certs, Table, Votes};
use crate::{Store, StoreError};
use fapiao_chain::disk::ChainRead;
use fapiao_chain::StoredHead;
use fapiao_core::{Block, MemberCode};

/// The store as the protocol reads it ([`fapiao_chain::disk`]): the restart loader and
/// the sync responder run the same rules here as in the simulator.
impl ChainRead for Store {
    type Error = StoreError;

    fn heads(&self) -> Result<Vec<(MemberCode, StoredHead)>, StoreError> {
        let mut out = Vec::new();
        for (chain, h) in self.heads()? {
            let epoch = self.header(chain, h.height)?.map_or(0, |hd| hd.body.epoch);
            let head = StoredHead {
                height: h.height,
                hash: h.hash,
                timestamp: h.timestamp,
                epoch,
            };
            out.push((chain, head));
        }
        Ok(out)
    }

    fn block(&self, chain: MemberCode, height: u64) -> Result<Option<Block>, StoreError> {
        self.block(chain, height)
    }

    fn block_hash(&self, chain: MemberCode, height: u64) -> Result<Option<fapiao_core::BlockHash>, StoreError> {
        Ok(self.header(chain, height)?.map(|h| h.hash()))
    }

    fn certificate(&self, chain: MemberCode, height: u64) -> Result<Option<fapiao_core::Certificate>, StoreError> {
        self.certificate(chain, height)
    }

    fn certificates(
        &self,
        chain: MemberCode,
        from: u64,
        limit: usize,
    ) -> Result<Vec<fapiao_core::Certificate>, StoreError> {
        let start = Certs::key(&(chain, from));
        Ok(self
            .scan::<Certs>(&chain_prefix(chain), Some(&start), limit)?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    fn votes(
        &self,
        chain: MemberCode,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, fapiao_core::BlockHash)>, StoreError> {
        let start = Votes::key(&(chain, from));
        self.scan::<Votes>(&chain_prefix(chain), Some(&start), limit)?
            .into_iter()
            .map(|(k, b)| Ok((Votes::decode(&k)?.1, b)))
            .collect()
    }

    fn evidence(&self) -> Result<Vec<fapiao_core::Equivocation>, StoreError> {
        self.evidence()
    }

    fn certified_prefix(&self, chain: MemberCode) -> Result<u64, StoreError> {
        self.certified_prefix(chain)
    }
}
