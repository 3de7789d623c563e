//! A durable client-side outbox for point-of-sale and back-office clients.
//!
//! A signed event is first written to disk (temporary file, fsync, rename, fsync of the
//! directory); from then on it is the client's record of the sale, whatever happens to
//! the network or the node. [`Outbox::flush`] submits waiting events in the order they
//! were queued, in batches. An admitted event (or one the node already had: resubmitting
//! the same signed event returns its original outcome) moves to `admitted/` and stays
//! there until the node reports it certified: admission is not yet safety, because a
//! node restored from an older backup no longer has what it admitted after the backup.
//! Each flush first asks the node about the admitted events: certified ones leave the
//! outbox, ones the node has never seen go back to `pending/` (in their original order)
//! and are submitted again. Resubmitting is harmless: the event id, and its business ids,
//! keep it from being recorded twice. Events the node refuses for good, such as a bad
//! signature or a payment id already used by another event, move to `failed/`, with the
//! node's answer beside them. When the node is unreachable, busy or in maintenance, they
//! stay, and the caller retries with [`Backoff`].
//!
//! Layout: `DIR/pending/SEQUENCE-EVENTID.event` (canonical bytes),
//! `DIR/admitted/SEQUENCE-EVENTID.event`, `DIR/failed/SEQUENCE-EVENTID.event` and
//! `.error.json`. No other state is kept: the directory listings are the queues.

use crate::client::{Client, ClientError};
use crate::dto::ApiError;
use fapiao_core::{codec, Event, EventId};
use fapiao_domain::ErrorCode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Events per submission.
const FLUSH_BATCH_MAX: usize = 500;
/// Admitted events asked about per flush (oldest first): one status read each.
const CONFIRM_MAX: usize = 1000;
/// Largest event file read back (the node's own limit is lower).
const EVENT_FILE_BYTES_MAX: usize = 1024 * 1024;

/// An outbox failure.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The disk failed.
    #[error("outbox {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A queued file is not a canonical event (damaged on disk).
    #[error("outbox file {0} is not a valid event; it was moved to failed/")]
    Corrupt(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Admitted now, or already known to the node.
    pub delivered: usize,
    /// Refused for good, moved to `failed/`.
    pub failed: usize,
    /// Still waiting to be admitted.
    pub pending: usize,
    /// Certified since the last flush: they left the outbox.
    pub certified: usize,
    /// Admitted earlier but unknown to the node now (a restored node): sent again.
    pub resubmitted: usize,
    /// Admitted, not yet certified: kept until they are.
    pub awaiting: usize,
    /// Why the node could not say whether admitted events were certified (status reads
    /// refused), if it could not; they stay until it can.
    pub unconfirmed: Option<String>,
    /// Why the flush stopped early (unreachable, busy, maintenance), if it did.
    pub deferred: Option<String>,
    /// The node's `Retry-After`, when it asked for one (seconds).
    pub retry_after_s: Option<u64>,
    /// Each event the node answered for, with its answer.
    pub outcomes: Vec<(EventId, Result<crate::dto::SubmitResult, ApiError>)>,
}

/// Exponential backoff between flush attempts, capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait.
    pub initial_ms: u64,
    /// The longest wait (also caps a node's `Retry-After`).
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 200,
            max_ms: 30_000,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (0-based), honouring a `Retry-After`.
    pub fn wait(&self, attempt: u32, retry_after_s: Option<u64>) -> Duration {
        let exp = self.initial_ms.saturating_mul(1u64 << attempt.min(16));
        let ms = retry_after_s.map_or(exp, |s| s.saturating_mul(1000).max(exp));
        Duration::from_millis(ms.min(self.max_ms))
    }
}

/// The outbox in a directory.
pub struct Outbox {
    pending: PathBuf,
    admitted: PathBuf,
    failed: PathBuf,
    next: std::sync::Mutex<u64>,
}

impl Outbox {
    /// Opens (creating) the outbox in `dir`.
    pub fn open(dir: &Path) -> Result<Outbox, OutboxError> {
        let pending = dir.join("pending");
        let admitted = dir.join("admitted");
        let failed = dir.join("failed");
        for d in [&pending, &admitted, &failed] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        let ob = Outbox {
            pending,
            admitted,
            failed,
            next: std::sync::Mutex::new(0),
        };
        let last = [listed(&ob.pending)?, listed(&ob.admitted)?]
            .iter()
            .filter_map(|l| l.last().map(|(seq, _)| *seq))
            .max()
            .unwrap_or(0);
        *ob.next.lock().unwrap_or_else(|p| p.into_inner()) = last + 1;
        Ok(ob)
    }

    /// Durably queues a signed event. When this returns, the event survives a crash of
    /// this process, of the machine, or of the node.
    pub fn enqueue(&self, event: &Event) -> Result<EventId, OutboxError> {
        let id = event.id();
        let seq = {
            let mut n = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let s = *n;
            *n += 1;
            s
        };
        let name = format!("{seq:012}-{id}.event");
        let tmp = self.pending.join(format!(".{name}.tmp"));
        let path = self.pending.join(&name);
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&codec::to_bytes(event)).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.pending)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.pending))?;
        Ok(id)
    }

    /// Waiting events, oldest first: (sequence, file).
    fn queued(&self) -> Result<Vec<(u64, PathBuf)>, OutboxError> {
        listed(&self.pending)
    }

    /// How many events wait to be admitted.
    pub fn pending(&self) -> Result<usize, OutboxError> {
        Ok(self.queued()?.len())
    }

    /// How many admitted events wait to be certified.
    pub fn awaiting(&self) -> Result<usize, OutboxError> {
        Ok(listed(&self.admitted)?.len())
    }

    /// Moves `path` into `dir` under the same name (the sequence keeps its order). Not
    /// synced: if a crash undoes the move, the event is in its former queue, where the
    /// next flush handles it again (resubmitting returns the original outcome).
    fn move_to(path: &Path, dir: &Path) -> Result<(), OutboxError> {
        let to = dir.join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &to).map_err(io(&to))
    }

    /// Asks the node about admitted events, oldest first: certified ones leave, ones the
    /// node has never seen go back to `pending/`, ones it dropped when building its block
    /// move to `failed/`. Returns the sequence below which pending events may be sent
    /// now: when admitted events older than some pending ones were not asked about (more
    /// than [`CONFIRM_MAX`]), a newer event must not overtake one the node may have lost
    /// (a refund before its payment). A node that cannot be reached defers the flush; a
    /// node that refuses status reads (no read token, a proxy) leaves the admitted
    /// events as they are and does not stop the sending.
    fn confirm(&self, client: &Client, report: &mut FlushReport) -> Result<u64, OutboxError> {
        let admitted = listed(&self.admitted)?;
        let limit = admitted.get(CONFIRM_MAX).map_or(u64::MAX, |(seq, _)| *seq);
        for (_, path) in admitted.into_iter().take(CONFIRM_MAX) {
            let Some(id) = event_id_of(&path) else {
                let err = ApiError {
                    code: "OUTBOX_CORRUPT".into(),
                    message: "the admitted file's name holds no event id".into(),
                    field: None,
                };
                self.fail(&path, &err)?;
                report.failed += 1;
                continue;
            };
            match client.event_status(&id) {
                Ok(s) if s.status == "certified" => {
                    std::fs::remove_file(&path).map_err(io(&path))?;
                    report.certified += 1;
                }
                Ok(s) if s.status == "rejected" => {
                    let err = ApiError {
                        code: s.code.unwrap_or_else(|| "REJECTED".into()),
                        message: s.message.unwrap_or_default(),
                        field: s.field,
                    };
                    self.fail(&path, &err)?;
                    report.failed += 1;
                    report.outcomes.push((id, Err(err)));
                }
                Ok(_) => {} // pending or committed: ask again next time
                Err(ClientError::Api { status: 404, .. }) => {
                    Self::move_to(&path, &self.pending)?;
                    report.resubmitted += 1;
                }
                Err(e) if e.is_transient() => {
                    report.deferred = Some(e.to_string());
                    return Ok(limit);
                }
                Err(e) => {
                    report.unconfirmed = Some(e.to_string());
                    return Ok(limit);
                }
            }
        }
        Ok(limit)
    }

    /// How many events the node refused for good.
    pub fn failed(&self) -> Result<Vec<(PathBuf, ApiError)>, OutboxError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.failed).map_err(io(&self.failed))? {
            let p = entry.map_err(io(&self.failed))?.path();
            if p.extension().and_then(|e| e.to_str()) == Some("json") {
                let text = std::fs::read_to_string(&p).map_err(io(&p))?;
                let err = serde_json::from_str(&text).unwrap_or(ApiError {
                    code: "UNKNOWN".into(),
                    message: text,
                    field: None,
                });
                out.push((p, err));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn fail(&self, path: &Path, error: &ApiError) -> Result<(), OutboxError> {
        let name = path.file_name().map(PathBuf::from).unwrap_or_default();
        let to = self.failed.join(&name);
        let note = self.failed.join(format!("{}.error.json", name.display()));
        std::fs::write(&note, serde_json::to_vec_pretty(error).unwrap_or_default()).map_err(io(&note))?;
        std::fs::rename(path, &to).map_err(io(&to))
    }

    /// Submits waiting events in order, in batches, until the outbox is empty or the
    /// node cannot take more now.
    // Long: one flush: send the pending events in order, in batches, stopping at the first refusal that waiting can
    // lift; the batches share the report and the ordering rule.
    pub fn flush(&self, client: &Client) -> Result<FlushReport, OutboxError> {
        let mut report = FlushReport::default();
        let limit = self.confirm(client, &mut report)?;
        if report.deferred.is_some() {
            report.pending = self.pending()?;
            report.awaiting = self.awaiting()?;
            return Ok(report);
        }
        let queued: Vec<_> = self.queued()?.into_iter().filter(|(seq, _)| *seq < limit).collect();
        for chunk in queued.chunks(FLUSH_BATCH_MAX) {
            let mut events = Vec::with_capacity(chunk.len());
            let mut paths = Vec::with_capacity(chunk.len());
            for (_, p) in chunk {
                let bytes = std::fs::read(p).map_err(io(p))?;
                match (bytes.len() <= EVENT_FILE_BYTES_MAX)
                    .then(|| codec::decode::<Event>(&bytes).ok())
                    .flatten()
                {
                    Some(e) => {
                        events.push(e);
                        paths.push(p.clone());
                    }
                    None => {
                        let err = ApiError {
                            code: "OUTBOX_CORRUPT".into(),
                            message: "the queued file is not a valid event".into(),
                            field: None,
                        };
                        self.fail(p, &err)?;
                        report.failed += 1;
                    }
                }
            }
            if events.is_empty() {
                continue;
            }
            match client.submit_batch(&events) {
                Ok(answer) => {
                    let mut transient = None;
                    for ((path, r), ev) in paths.iter().zip(&answer.results).zip(&events) {
                        match (&r.ok, &r.error) {
                            (Some(ok), _) => {
                                Self::move_to(path, &self.admitted)?;
                                report.delivered += 1;
                                report.outcomes.push((ev.id(), Ok(ok.clone())));
                            }
                            // A refusal that waiting can lift (busy, maintenance, a full
                            // disk, ...): the code says so.
                            (None, Some(e))
                                if e.code.parse::<ErrorCode>().is_ok_and(|c| c.retry_after_s().is_some()) =>
                            {
                                transient.get_or_insert_with(|| format!("{}: {}", e.code, e.message));
                            }
                            (None, Some(e)) => {
                                self.fail(path, e)?;
                                report.failed += 1;
                                report.outcomes.push((ev.id(), Err(e.clone())));
                            }
                            (None, None) => {}
                        }
                    }
                    if let Some(t) = transient {
                        report.deferred = Some(t);
                        break;
                    }
                }
                Err(e) if e.is_transient() => {
                    report.retry_after_s = e.retry_after_s();
                    report.deferred = Some(e.to_string());
                    break;
                }
                Err(e) => {
                    // The whole submission was refused (e.g. too large): nothing in it
                    // can succeed as it is.
                    let err = match e {
                        ClientError::Api { error, .. } => error,
                        ClientError::Transport { message, .. } => ApiError {
                            code: "TRANSPORT".into(),
                            message,
                            field: None,
                        },
                    };
                    for (p, ev) in paths.iter().zip(&events) {
                        self.fail(p, &err)?;
                        report.failed += 1;
                        report.outcomes.push((ev.id(), Err(err.clone())));
                    }
                }
            }
        }
        report.pending = self.pending()?;
        report.awaiting = self.awaiting()?;
        Ok(report)
    }

    /// Flushes until the outbox is empty (every event certified or refused for good),
    /// waiting with `backoff` between attempts, for at most `deadline`. Returns the
    /// totals, with the last counts of pending and awaiting events.
    pub fn drain(&self, client: &Client, backoff: Backoff, deadline: Duration) -> Result<FlushReport, OutboxError> {
        let start = std::time::Instant::now();
        let mut attempt = 0u32;
        let mut total = FlushReport::default();
        loop {
            let r = self.flush(client)?;
            total.delivered += r.delivered;
            total.failed += r.failed;
            total.certified += r.certified;
            total.resubmitted += r.resubmitted;
            total.pending = r.pending;
            total.awaiting = r.awaiting;
            total.unconfirmed = r.unconfirmed.clone();
            total.deferred = r.deferred.clone();
            total.retry_after_s = r.retry_after_s;
            total.outcomes.extend(r.outcomes);
            // Nothing more to send, and certification confirmed or not confirmable.
            let settled = r.pending == 0 && (r.awaiting == 0 || r.unconfirmed.is_some());
            if settled || start.elapsed() >= deadline {
                return Ok(total);
            }
            if r.delivered > 0 || r.certified > 0 {
                attempt = 0;
            }
            let wait = backoff.wait(attempt, r.retry_after_s);
            attempt = attempt.saturating_add(1);
            std::thread::sleep(wait.min(deadline.saturating_sub(start.elapsed())));
        }
    }
}

/// The queued events in `dir`, oldest first: (sequence, file).
fn listed(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OutboxError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = entry.map_err(io(dir))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(".event") {
            continue; // a temporary file from an interrupted enqueue
        }
        if let Some(seq) = name.split('-').next().and_then(|s| s.parse::<u64>().ok()) {
            out.push((seq, p));
        }
    }
    out.sort();
    Ok(out)
}

/// The event id in a queued file's name (`SEQUENCE-EVENTID.event`).
fn event_id_of(path: &Path) -> Option<EventId> {
    let name = path.file_name()?.to_str()?.strip_suffix(".event")?;
    fapiao_core::Hash32::from_hex(name.split_once('-')?.1).ok().map(EventId)
}
