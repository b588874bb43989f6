//! Harness for end-to-end tests: the whole gateway started on loopback (`stack`), the real clients
//! run against it (`clients`), and where the tools outside cargo are found (`tools`).

pub mod clients;
pub mod dns;
pub mod envoy;
pub mod process;
pub mod ptc;
pub mod stack;
pub mod stub_translator;
pub mod tools;
