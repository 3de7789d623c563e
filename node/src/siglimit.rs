//! The machine's signature limit, which the benchmarks state their throughput against.
//!
//! Every event a node records is checked with strict ed25519 verification
//! (`fapiao_core::sig::verify_batch`, the one rule every node applies). No ledger can
//! record signed events faster than this machine verifies signatures, so that rate, in
//! batches of 64 on every core at once, is the ceiling: measured in the same run as the
//! benchmark, for 64 distinct signers and for one signer (a POS terminal signs all of its
//! events, and a batch from one key is cheaper to verify).

use fapiao_core::hash::{hash, Domain};
use fapiao_core::sig::{verify_batch, BatchItem};
use fapiao_core::{Hash32, SecretKey, Signature};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Signatures per batch, as the producer verifies them.
const BATCH: usize = 64;

/// The measured limit.
pub(crate) struct Limit {
    /// Signatures verified per second, 64 distinct signers per batch.
    pub(crate) distinct: f64,
    /// Signatures verified per second, one signer.
    pub(crate) one_signer: f64,
    /// Cores used.
    pub(crate) cores: usize,
    /// How long each shape was measured.
    pub(crate) seconds: f64,
}

impl Limit {
    /// Measures both shapes for `each` on every core.
    pub(crate) fn measure(each: Duration) -> Limit {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let keys: Vec<SecretKey> = (0..BATCH as u8).map(|i| SecretKey::from_seed(&[i + 1; 32])).collect();
        Limit {
            distinct: rate(&keys, cores, each),
            one_signer: rate(&keys[..1], cores, each),
            cores,
            seconds: each.as_secs_f64(),
        }
    }

    /// One line for a benchmark's report.
    pub(crate) fn describe(&self) -> String {
        format!(
            "signature limit of this machine (strict ed25519, batches of {BATCH}, {} cores, {:.0} s each): \
             {:.0} events/s with {BATCH} signers, {:.0} with one signer",
            self.cores, self.seconds, self.distinct, self.one_signer
        )
    }

    /// `rate` as a share of each limit.
    pub(crate) fn ratio(&self, rate: f64) -> String {
        format!(
            "{:.1}% of the {BATCH}-signer limit, {:.1}% of the one-signer limit",
            100.0 * rate / self.distinct,
            100.0 * rate / self.one_signer
        )
    }
}

/// Signatures per second over one batch of 64 digests signed by `keys` in turn,
/// verified again and again by `threads` threads for `each`.
fn rate(keys: &[SecretKey], threads: usize, each: Duration) -> f64 {
    let digests: Vec<Hash32> = (0..BATCH as u32)
        .map(|i| hash(Domain::EventBody, &i.to_le_bytes()))
        .collect();
    let signed: Vec<(fapiao_core::PublicKey, Signature)> = digests
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let k = &keys[i % keys.len()];
            (k.public(), k.sign(d))
        })
        .collect();
    let batches = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let items: Vec<BatchItem<'_>> = signed
                    .iter()
                    .zip(&digests)
                    .map(|((key, signature), digest)| BatchItem { key, digest, signature })
                    .collect();
                while start.elapsed() < each {
                    if verify_batch(&items).is_err() {
                        panic!("a batch signed here does not verify");
                    }
                    batches.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (batches.load(Ordering::Relaxed) * BATCH as u64) as f64 / start.elapsed().as_secs_f64()
}
