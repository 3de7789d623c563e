//! What crosses the wire between members, in the canonical encoding, and the framing of
//! the sync protocol.

/// One chain's head as a heads answer carries it: the replica's own type, encoded
/// canonically.
pub use fapiao_chain::HeadSummary;
use fapiao_core::{codec, Attestation, Block, Certificate, Equivocation, Header, MemberCode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};
use std::io;

/// A gossiped object; the topic says which kind.
// Evidence (two headers) is the largest at about 450 bytes; these pass through bounded
// queues as plain values, and boxing would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gossip {
    /// A block's header, published by its chain's owner. Blocks are never gossiped:
    /// gossip reaches every member, and a block goes only to those who may read its
    /// chain (delivered by its owner, or by sync from a responder that checks who asks).
    Header(Header),
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

/// A sync response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Heads`].
    Heads(Vec<HeadSummary>),
    /// Answer to [`Request::Blocks`]: consecutive blocks from the first height asked,
    /// possibly fewer than asked (size bound, or the responder has no more).
    Blocks(Vec<(Block, Option<Certificate>)>),
    /// Answer to [`Request::Certificates`]: the certificates the responder holds in the
    /// range, by increasing height (gaps are left out).
    Certificates(Vec<Certificate>),
    /// The responder could not answer (busy, or a storage error).
    Unavailable,
    /// Answer to [`Request::Blocks`] from a member that may not read the chain: only its
    /// owner, the witnesses and tax offices get blocks (PROTOCOL.md, "Confidentiality").
    NotEntitled,
}

/// Encodes a gossip payload (the topic carries the kind).
pub fn encode_gossip(g: &Gossip) -> Vec<u8> {
    match g {
        Gossip::Header(h) => codec::to_bytes(h),
        Gossip::Attestation(a) => codec::to_bytes(a),
        Gossip::Evidence(e) => codec::to_bytes(e),
    }
}

/// Bytes of a frame's body read before the buffer grows: the buffer grows with the bytes
/// that actually arrive, so a length prefix that promises the limit and then stops (a
/// truncated frame) costs what was sent, not what was promised.
const FRAME_CHUNK_BYTES: usize = 64 * 1024;

/// The three gossip topics of a network, each carrying one kind of payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipTopic {
    /// Block headers.
    Headers,
    /// Attestations.
    Attestations,
    /// Equivocation evidence.
    Evidence,
}

/// Decodes a gossip payload received on `topic`: the inverse of [`encode_gossip`], and
/// what the transport does with every gossiped message before the host validates it.
/// (The size bound is gossipsub's `max_transmit_size`, applied before this.)
pub fn decode_gossip(topic: GossipTopic, payload: &[u8]) -> Result<Gossip, codec::CodecError> {
    match topic {
        GossipTopic::Headers => codec::decode(payload).map(Gossip::Header),
        GossipTopic::Attestations => codec::decode(payload).map(Gossip::Attestation),
        GossipTopic::Evidence => codec::decode(payload).map(Gossip::Evidence),
    }
}

/// Decodes one sync request frame held in memory, exactly as the sync codec reads it
/// from a stream: the `u32` length prefix, the `frame_bytes_max` bound, the canonical
/// value. Bytes after the frame are not read (on the wire the stream ends there). This
/// is the entry point for fuzzing the sync protocol's parser.
pub fn decode_request_frame(frame: &[u8], frame_bytes_max: usize) -> io::Result<Request> {
    futures::executor::block_on(read_frame(&mut &frame[..], frame_bytes_max))
}

/// [`decode_request_frame`] for a sync response frame.
pub fn decode_response_frame(frame: &[u8], frame_bytes_max: usize) -> io::Result<Response> {
    futures::executor::block_on(read_frame(&mut &frame[..], frame_bytes_max))
}

/// Encodes `value` as one sync frame (the inverse of the `decode_*_frame` functions),
/// exactly as the sync codec writes it to a stream.
pub fn encode_frame<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut out = futures::io::Cursor::new(Vec::new());
    futures::executor::block_on(write_frame(&mut out, value))?;
    Ok(out.into_inner())
}

/// Reads one length-prefixed frame (u32 little-endian length, then that many bytes) of at
/// most `limit` bytes and decodes it.
///
/// Errors: a length above `limit` is `InvalidData` before any of the body is read; a body
/// that does not decode is `InvalidData`; a stream that ends before the promised length is
/// `UnexpectedEof` (the same as a connection that dropped mid-frame, so it is not taken as
/// proof of misbehaviour).
pub(crate) async fn read_frame<T, R>(io: &mut R, limit: usize) -> io::Result<T>
where
    T: serde::de::DeserializeOwned,
    R: AsyncRead + Unpin + Send,
{
    let buf = read_frame_bytes(io, limit).await?;
    codec::decode_limited(&buf, limit).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Reads one length-prefixed frame's body, undecoded; see [`read_frame`].
pub(crate) async fn read_frame_bytes<R>(io: &mut R, limit: usize) -> io::Result<Vec<u8>>
where
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
    let mut buf = Vec::with_capacity(len.min(FRAME_CHUNK_BYTES));
    let read = io.take(len as u64).read_to_end(&mut buf).await?;
    if read < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame truncated: {read} of {len} bytes"),
        ));
    }
    Ok(buf)
}

/// Writes one length-prefixed frame.
pub(crate) async fn write_frame<T, W>(io: &mut W, value: &T) -> io::Result<()>
where
    T: Serialize,
    W: AsyncWrite + Unpin + Send,
{
    write_raw_frame(io, &codec::to_bytes(value)).await
}

/// Writes `bytes`, already canonical, as one length-prefixed frame.
pub(crate) async fn write_raw_frame<W>(io: &mut W, bytes: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin + Send,
{
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    /// A frame of `len` (the prefix) followed by `body`.
    fn frame(len: u32, body: &[u8]) -> Vec<u8> {
        let mut f = len.to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    /// Reads a `Request` frame from `bytes` with `limit`: `Ok(request)` or the error kind.
    fn check(bytes: Vec<u8>, limit: usize, expected: Result<Request, io::ErrorKind>) {
        let got: io::Result<Request> = block_on(read_frame(&mut Cursor::new(bytes), limit));
        assert_eq!(got.map_err(|e| e.kind()), expected);
    }

    #[test]
    fn frames_are_bounded_before_their_body_is_read() {
        let heads = codec::to_bytes(&Request::Heads);
        check(frame(heads.len() as u32, &heads), 1024, Ok(Request::Heads));
        // Over the limit: refused on the prefix alone (the cursor holds no body at all).
        check(frame(1025, &[]), 1024, Err(io::ErrorKind::InvalidData));
        check(frame(u32::MAX, &[]), 1024, Err(io::ErrorKind::InvalidData));
        // Truncated: a prefix that promises the limit, then a few bytes and the end.
        check(frame(1024, &[0; 10]), 1024, Err(io::ErrorKind::UnexpectedEof));
        check(vec![1, 0], 1024, Err(io::ErrorKind::UnexpectedEof));
        // Undecodable, trailing bytes, another type: all invalid data.
        check(frame(4, &[99, 0, 0, 0]), 1024, Err(io::ErrorKind::InvalidData));
        let mut long = heads.clone();
        long.push(0);
        check(frame(long.len() as u32, &long), 1024, Err(io::ErrorKind::InvalidData));
        let answer = codec::to_bytes(&Response::Heads(vec![]));
        check(
            frame(answer.len() as u32, &answer),
            1024,
            Err(io::ErrorKind::InvalidData),
        );
    }

    /// A reader that remembers the largest buffer it was asked to fill: the memory a
    /// frame read has committed at any one time.
    struct Recording {
        inner: Cursor<Vec<u8>>,
        asked_max: usize,
    }

    impl AsyncRead for Recording {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.asked_max = self.asked_max.max(buf.len());
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    #[test]
    fn a_truncated_frame_costs_what_was_sent_not_what_was_promised() {
        let limit = 16 * 1024 * 1024;
        let sent = 300_000;
        let mut io = Recording {
            inner: Cursor::new(frame(limit as u32, &vec![7; sent])),
            asked_max: 0,
        };
        let err = block_on(read_frame_bytes(&mut io, limit)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            io.asked_max <= 2 * sent.max(FRAME_CHUNK_BYTES),
            "a buffer of {} bytes for a frame that sent {sent}",
            io.asked_max
        );
    }

    #[test]
    fn a_length_claim_inside_a_frame_allocates_nothing_large() {
        // A blocks answer whose vector claims 2^60 elements in a 13-byte frame.
        let mut body = 1u32.to_le_bytes().to_vec();
        body.extend_from_slice(&(1u64 << 60).to_le_bytes());
        body.push(0);
        let got: io::Result<Response> = block_on(read_frame(&mut Cursor::new(frame(body.len() as u32, &body)), 1024));
        assert_eq!(got.map_err(|e| e.kind()), Err(io::ErrorKind::InvalidData));
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    /// The sync codec's request bound (`codec::REQUEST_BYTES_MAX`).
    const LIMIT: usize = 1024;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    /// Decodes `input` as a request frame: `Ok(request)` must re-encode to the frame
    /// bytes, `Err(kind)` is the error kind expected.
    fn check(input: &[u8], expected: Result<Request, io::ErrorKind>) {
        let got = decode_request_frame(input, LIMIT).map_err(|e| e.kind());
        assert_eq!(got, expected, "input {input:02x?}");
        if let Ok(r) = got {
            let again = encode_frame(&r).unwrap();
            assert_eq!(again, input[..again.len()]);
        }
    }

    #[test]
    fn request_frames() {
        let blocks = Request::Blocks {
            chain: MemberCode::new(110_001).unwrap(),
            from: 1,
            to: 3,
        };
        check(&frame(&[0, 0, 0, 0]), Ok(Request::Heads));
        check(&encode_frame(&blocks).unwrap(), Ok(blocks.clone()));
        // Bytes after the frame are not read: the stream ends there on the wire.
        check(&[frame(&[0, 0, 0, 0]), vec![9]].concat(), Ok(Request::Heads));
        check(&[], Err(io::ErrorKind::UnexpectedEof));
        check(&[4, 0, 0], Err(io::ErrorKind::UnexpectedEof));
        check(&frame(&[0, 0, 0]), Err(io::ErrorKind::InvalidData));
        // The length says more than the stream holds.
        check(&[5, 0, 0, 0, 0, 0, 0, 0], Err(io::ErrorKind::UnexpectedEof));
        // A frame with trailing bytes inside its length, and an unknown variant.
        check(&frame(&[0, 0, 0, 0, 0]), Err(io::ErrorKind::InvalidData));
        check(&frame(&[3, 0, 0, 0]), Err(io::ErrorKind::InvalidData));
        // Over the bound: refused on the length prefix, before reading the body.
        check(&(LIMIT as u32 + 1).to_le_bytes(), Err(io::ErrorKind::InvalidData));
        check(&u32::MAX.to_le_bytes(), Err(io::ErrorKind::InvalidData));
    }

    #[test]
    fn response_frames_and_gossip() {
        let r = Response::Certificates(vec![]);
        let f = encode_frame(&r).unwrap();
        assert_eq!(decode_response_frame(&f, 64).unwrap(), r);
        assert_eq!(
            decode_response_frame(&f, 8).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(decode_gossip(GossipTopic::Headers, &[]).is_err());
        assert!(decode_gossip(GossipTopic::Attestations, &[0; 8]).is_err());
    }
}
