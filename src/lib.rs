//! callvault: a local, incrementally synced archive of voice-AI call logs.
//!
//! The modules follow the flow of data: `providers` speak each platform's HTTP API and turn
//! its JSON into canonical records; `sync` decides what to fetch and drives the providers;
//! `store` owns the SQLite archive; `query` reads it back; `sim` is a local server that speaks
//! the providers' APIs for tests, benches and the demo; `delete` turns an SQL selection into a
//! frozen, journalled plan of provider deletes. `cli` wires them to the command line.
//! Arrows only point one way: providers never touch the store, the store knows no HTTP.

pub mod cli;
pub mod config;
pub mod delete;
pub mod providers;
pub mod query;
pub mod secret;
pub mod sim;
pub mod store;
pub mod sync;
pub mod time;
