//! The codecs of the two request-response protocols, sync and block delivery: one
//! length-prefixed canonical frame per request and per response, each bounded.

use crate::wire::{read_frame, read_frame_bytes, write_frame, write_raw_frame, Request, Response};
use fapiao_core::Block;
use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use std::io;

/// Reads and writes sync frames of at most `frame_bytes_max` bytes.
#[derive(Debug, Clone)]
pub(crate) struct SyncCodec {
    frame_bytes_max: usize,
}

impl SyncCodec {
    pub(crate) fn new(frame_bytes_max: usize) -> Self {
        SyncCodec { frame_bytes_max }
    }
}

/// Requests are tiny; anything bigger is garbage.
pub(crate) const REQUEST_BYTES_MAX: usize = 1024;

/// A sync response as the codec carries it: decoded when read, already encoded when
/// written. The transport encodes an answer itself so that it knows its size, and bounds
/// the bytes of answers a peer has not read yet (a peer that asks and never reads must
/// not hold our memory).
#[derive(Debug)]
pub(crate) enum Answer {
    /// A response read from a peer.
    Read(Response),
    /// The canonical bytes of a response we send.
    Encoded(Vec<u8>),
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Answer;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, REQUEST_BYTES_MAX).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Answer>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.frame_bytes_max).await.map(Answer::Read)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Answer) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            Answer::Encoded(bytes) => write_raw_frame(io, &bytes).await,
            Answer::Read(r) => write_frame(io, &r).await,
        }
    }
}

/// The delivery protocol's codec: a request is one block of the sender's own chain, of at
/// most `frame_bytes_max` bytes; the answer is an empty acknowledgement (received, not
/// judged).
#[derive(Debug, Clone)]
pub(crate) struct DeliverCodec {
    frame_bytes_max: usize,
}

impl DeliverCodec {
    pub(crate) fn new(frame_bytes_max: usize) -> Self {
        DeliverCodec { frame_bytes_max }
    }
}

/// The acknowledgement is the empty frame.
const ACK_BYTES_MAX: usize = 16;

/// A delivered block, with the length of the frame it came in (what it costs the
/// receiver's memory budget; 0 on the sending side, where it is not read).
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) block: Block,
    pub(crate) bytes: usize,
}

impl libp2p::request_response::Codec for DeliverCodec {
    type Protocol = StreamProtocol;
    type Request = Delivery;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Delivery>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame_bytes(io, self.frame_bytes_max).await?;
        let block = fapiao_core::codec::decode_limited(&frame, self.frame_bytes_max)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Delivery {
            block,
            bytes: frame.len(),
        })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, ACK_BYTES_MAX).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, d: Delivery) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &d.block).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, ack: ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &ack).await
    }
}
