//! What is known about a request before anything decides on it, parsed
//! once at the edge: the connection and request context, the normalized
//! path (the one policy checks and the upstream receives), and the header
//! rules (hop-by-hop, protected identity names). Pure: no I/O.

pub mod context;
pub mod headers;
pub mod path;

pub use context::{ConnInfo, RequestCtx};
