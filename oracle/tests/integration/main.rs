//! The oracle's integration tests: the real HTTP server on loopback and a real database
//! (SQLite always; PostgreSQL too when `BACKHAUL_TEST_POSTGRES_URL` is set, as `.ci/run` does).

mod admission;
mod close;
mod common;
mod directory;
mod http;
mod ingest;
mod storage;
