//! The test harness every integration test shares (`mod common;`): a real
//! recording upstream, authgate in-process or as the real binary, a small
//! HTTP client, and the servers the tests run as plain child processes
//! (slapd, redis-server, the pysaml2 IdP), each on a free loopback port,
//! every wait bounded, every process stopped on drop.
//!
//! Test files import what they use by module (`common::gate::Gate`,
//! `common::idp::Idp`, ...).
// Each test binary uses a part of it.
#![allow(dead_code)]

pub mod audit;
pub mod browser;
pub mod client;
pub mod cookies;
pub mod gate;
pub mod headers;
pub mod idp;
pub mod pki;
pub mod ports;
pub mod process;
pub mod python;
pub mod redis;
pub mod slapd;
pub mod store_suite;
pub mod upstream;
