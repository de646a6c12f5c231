//! Tests of the real `roundtable` binary as a process: what only a process shows (a crash, a
//! full disk under it, start-up refusals). They live in the server crate because only there
//! does cargo build the binary for them and name it (`CARGO_BIN_EXE_roundtable`). They need
//! root (`chattr`, `unshare --mount`), as the rest of the suite does for its network namespace.

mod bin;
mod changes;
mod crash;
mod record_crash;
mod recordings_cli;
mod startup;
mod storage;
mod webm;
