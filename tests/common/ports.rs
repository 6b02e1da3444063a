//! Free loopback ports. A port is free when asked; a server started on it a
//! moment later may still lose it to another process (callers that can,
//! retry: see `process::start_on_free_port`).

use std::net::{SocketAddr, TcpListener};

/// A loopback address nothing listens on right now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// The port of [`free_addr`].
pub fn free_port() -> u16 {
    free_addr().port()
}
