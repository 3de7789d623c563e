//! Building a block: the one block builder.
//!
//! The node's producer calls [`build_block`] over RocksDB (a store view) and the
//! simulator over memory, so what the simulator runs is what a node signs. Witnesses and
//! replay check the result with [`crate::validate::reexecute`], which runs the same
//! execution (`fapiao_domain::execute`) and the same tree update ([`StateChange::of`]).
//!
//! An event is executed under a guard. **An event that cannot be executed** (its
//! execution panicked, or it read a state record that is undecodable or fails its
//! integrity check, see [`StateRead::is_damage`]) is the poison: it alone is refused and
//! the block goes on without it. **Storage that cannot be used now** (an IO error) is no
//! event's fault: nothing is built, the error is returned, and every event can go into a
//! later attempt.

use crate::replica::StoredHead;
use crate::validate::{ReadError, StateChange};
use fapiao_core::block::entries_root;
use fapiao_core::sig::Cores;
use fapiao_core::smt::NodeStore;
use fapiao_core::{Block, BlockHash, Derived, Entry, Event, Hash32, HeaderBody, SecretKey, Timestamp};
use fapiao_domain::state::ExecError;
use fapiao_domain::{execute, BlockContext, ChainContext, Overlay, Rejection, StateKey, StateRead, StateValue};
use std::collections::BTreeMap;

/// Why an event was left out of its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A ledger rule refused it.
    Rule(Rejection),
    /// It could not be executed (it panicked, or read a damaged record): why.
    Poison(String),
}

/// How executing one event ended.
#[derive(Debug)]
pub enum Guarded {
    /// Accepted, with its derived events.
    Accepted(Vec<Derived>),
    /// Left out of the block.
    Refused(Refusal),
}

/// What one event's execution returns (`fapiao_domain::execute`'s shape).
pub type Execution<E> = Result<Result<Vec<Derived>, Rejection>, ExecError<E>>;

/// Runs `exec` (one event's execution) on `overlay`, turning a panic or a damaged record
/// it reads into [`Refusal::Poison`] with the event's writes dropped; a read failure
/// that is not damage (IO) is returned.
pub fn execute_guarded<S: StateRead>(
    exec: impl FnOnce(&mut Overlay<'_, S>) -> Execution<S::Error>,
    overlay: &mut Overlay<'_, S>,
) -> Result<Guarded, S::Error>
where
    S::Error: std::fmt::Display,
{
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exec(&mut *overlay)));
    let poison = |why: String| Ok(Guarded::Refused(Refusal::Poison(why)));
    match outcome {
        Ok(Ok(Ok(derived))) => Ok(Guarded::Accepted(derived)),
        Ok(Ok(Err(r))) => Ok(Guarded::Refused(Refusal::Rule(r))),
        Ok(Err(ExecError::Corrupt(key))) => poison(format!("state record {key:?} has the wrong type for its key")),
        Ok(Err(ExecError::Read(e))) if S::is_damage(&e) => poison(e.to_string()),
        Ok(Err(ExecError::Read(e))) => Err(e),
        Err(panic) => {
            // `execute` did not get to drop the event's writes: drop them here.
            overlay.discard_event();
            poison(format!("execution panicked: {}", panic_text(&*panic)))
        }
    }
}

/// A panic's message.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// A batch of events after guarded execution.
#[derive(Debug)]
pub struct Executed {
    /// The block's entries: each accepted event followed by its derived events.
    pub entries: Vec<Entry>,
    /// The state records the accepted events write.
    pub writes: BTreeMap<StateKey, StateValue>,
    /// The events left out, by index in the batch, with why.
    pub refused: Vec<(usize, Refusal)>,
}

/// Executes `events` in order on `base`, each under its guard ([`execute_guarded`]).
pub fn execute_events<S: StateRead>(
    ctx: &ChainContext<'_>,
    bc: &BlockContext,
    base: &S,
    events: &[Event],
) -> Result<Executed, S::Error>
where
    S::Error: std::fmt::Display,
{
    let mut overlay = Overlay::new(base);
    let mut entries = Vec::with_capacity(events.len() * 2);
    let mut refused = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match execute_guarded(|o| execute(ctx, bc, o, e), &mut overlay)? {
            Guarded::Accepted(derived) => {
                entries.push(Entry::Event(e.clone()));
                entries.extend(derived.into_iter().map(Entry::Derived));
            }
            Guarded::Refused(why) => refused.push((i, why)),
        }
    }
    Ok(Executed {
        entries,
        writes: overlay.into_writes(),
        refused,
    })
}

/// A block built from a batch.
#[derive(Debug)]
pub struct Built {
    /// The block time: the block's, and the time its refusals are recorded at.
    pub timestamp: Timestamp,
    /// The signed block and what storing it writes; `None` when every event was refused.
    pub block: Option<(Block, StateChange)>,
    /// The events left out, by index in the batch, with why.
    pub refused: Vec<(usize, Refusal)>,
}

/// The height, parent and time of the block after `on` (`None`: the chain's first), at
/// `now` on the owner's clock, held back to the parent's time so block time never goes
/// back.
pub fn next_block(on: Option<&StoredHead>, now: Timestamp) -> (BlockContext, BlockHash) {
    match on {
        Some(h) => (
            BlockContext {
                height: h.height + 1,
                timestamp: Timestamp(now.0.max(h.timestamp.0)),
            },
            h.hash,
        ),
        None => (
            BlockContext {
                height: 1,
                timestamp: now,
            },
            BlockHash(Hash32::ZERO),
        ),
    }
}

/// Builds the next block of `ctx`'s chain, in `ctx`'s epoch, after `on` from `events`
/// (in order) on
/// `base`, the state `on` leaves: executes them under their guards, updates the state
/// tree over the same `base` (so the update walks the pages the reads already fetched;
/// its leaves hashed on `cores`), and signs the header with `key`. `Err` is a storage
/// failure: nothing was built.
pub fn build_block<S, E>(
    ctx: &ChainContext<'_>,
    key: &SecretKey,
    on: Option<&StoredHead>,
    now: Timestamp,
    base: &S,
    events: &[Event],
    cores: Cores,
) -> Result<Built, ReadError<E>>
where
    S: StateRead<Error = E> + NodeStore<Error = E>,
    E: std::fmt::Display,
{
    let (bc, parent) = next_block(on, now);
    let executed = execute_events(ctx, &bc, base, events).map_err(|e| ReadError::State(ExecError::Read(e)))?;
    if executed.entries.is_empty() {
        return Ok(Built {
            timestamp: bc.timestamp,
            block: None,
            refused: executed.refused,
        });
    }
    let change = StateChange::of(base, executed.writes, cores).map_err(ReadError::Tree)?;
    let header = HeaderBody {
        network: ctx.network(),
        chain: ctx.chain(),
        epoch: ctx.config().epoch(),
        height: bc.height,
        parent,
        timestamp: bc.timestamp,
        events_root: entries_root(&executed.entries),
        event_count: executed.entries.len() as u32,
        state_root: change.root,
    }
    .sign(key);
    Ok(Built {
        timestamp: bc.timestamp,
        block: Some((
            Block {
                header,
                entries: executed.entries,
            },
            change,
        )),
        refused: executed.refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fapiao_domain::{StateKey, StateValue};

    /// Why a read failed, the two ways a store's reads fail.
    #[derive(Debug)]
    enum Fault {
        Io,
        Damaged,
    }

    impl std::fmt::Display for Fault {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Fault::Io => f.write_str("No space left on device"),
                Fault::Damaged => f.write_str("record Payment(\"S1\") fails its tree check"),
            }
        }
    }

    /// A state over nothing whose reads fail as told.
    struct Faulty(Option<Fault>);

    impl StateRead for Faulty {
        type Error = Fault;
        fn get(&self, _: &StateKey) -> Result<Option<StateValue>, Fault> {
            match &self.0 {
                None => Ok(None),
                Some(Fault::Io) => Err(Fault::Io),
                Some(Fault::Damaged) => Err(Fault::Damaged),
            }
        }
        fn is_damage(error: &Fault) -> bool {
            matches!(error, Fault::Damaged)
        }
    }

    fn check(base: Faulty, exec: impl FnOnce(&mut Overlay<'_, Faulty>) -> Execution<Fault>, expected: &str) {
        let mut overlay = Overlay::new(&base);
        let got = match execute_guarded(exec, &mut overlay) {
            Ok(Guarded::Accepted(_)) => "accepted".to_string(),
            Ok(Guarded::Refused(Refusal::Rule(r))) => format!("rejected {}", r.code()),
            Ok(Guarded::Refused(Refusal::Poison(why))) => format!("poison: {why}"),
            Err(e) => format!("storage: {e}"),
        };
        assert!(got.starts_with(expected), "got {got:?}, expected {expected:?}");
        // Nothing of a failed event survives into the block.
        if !got.starts_with("accepted") {
            assert!(overlay.into_writes().is_empty());
        }
    }

    #[test]
    fn a_panic_or_a_damaged_record_is_the_events_fault_an_io_error_is_not() {
        let write_then = |then: &'static str| {
            move |o: &mut Overlay<'_, Faulty>| {
                // A read first, as an event half-way through its execution.
                o.get(&StateKey::Meta)?;
                match then {
                    "panic" => panic!("arithmetic overflow"),
                    _ => Ok(Ok(vec![])),
                }
            }
        };
        check(Faulty(None), write_then("ok"), "accepted");
        check(
            Faulty(None),
            write_then("panic"),
            "poison: execution panicked: arithmetic overflow",
        );
        check(
            Faulty(None),
            |_| Err(ExecError::Corrupt(StateKey::Meta)),
            "poison: state record Meta has the wrong type",
        );
        check(
            Faulty(Some(Fault::Damaged)),
            write_then("ok"),
            "poison: record Payment(\"S1\") fails its tree check",
        );
        check(Faulty(Some(Fault::Io)), write_then("ok"), "storage: No space left");
        check(
            Faulty(None),
            |_| Ok(Err(Rejection::Overflow("x"))),
            "rejected AMOUNT_OVERFLOW",
        );
    }

    #[test]
    fn block_time_never_goes_back_and_the_first_block_has_no_parent() {
        let (first, parent) = next_block(None, Timestamp(5_000));
        assert_eq!(
            (first.height, first.timestamp, parent),
            (1, Timestamp(5_000), BlockHash(Hash32::ZERO))
        );
        let head = StoredHead {
            height: 7,
            hash: BlockHash(Hash32([7; 32])),
            timestamp: Timestamp(9_000),
            epoch: 0,
        };
        let (late, parent) = next_block(Some(&head), Timestamp(8_000));
        assert_eq!((late.height, late.timestamp, parent), (8, Timestamp(9_000), head.hash));
        let (on_time, _) = next_block(Some(&head), Timestamp(9_500));
        assert_eq!(on_time.timestamp, Timestamp(9_500));
    }
}
