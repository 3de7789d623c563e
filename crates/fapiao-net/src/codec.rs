//! The sync protocol's codec: one length-prefixed canonical frame per request and per
//! response, each bounded.

use crate::wire::{read_frame, write_frame, Request, Response};
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
const REQUEST_BYTES_MAX: usize = 1024;

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, REQUEST_BYTES_MAX).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.frame_bytes_max).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}
