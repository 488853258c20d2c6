//! The one integration test binary: the compiled `callvault` against the simulator over real
//! HTTP on 127.0.0.1, checked by opening the real SQLite archive.

mod suite;
mod util;
