//! A connection the fake can break on demand: it fails its next read or write once the
//! fake's generation has moved past the one it was accepted in. An idle connection breaks
//! when it is next used (a request arrives, or a subscription has an event to send), which
//! is how a client meets a dropped connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

pub struct Severable {
    inner: TcpStream,
    accepted_in: u64,
    generation: Arc<AtomicU64>,
}

impl Severable {
    pub fn new(inner: TcpStream, generation: Arc<AtomicU64>) -> Self {
        let accepted_in = generation.load(Ordering::SeqCst);
        Self { inner, accepted_in, generation }
    }

    fn check(&self) -> io::Result<()> {
        if self.generation.load(Ordering::SeqCst) == self.accepted_in {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection dropped by the fake"))
        }
    }
}

impl AsyncRead for Severable {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Severable {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for Severable {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
