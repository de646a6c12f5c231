//! `roundtable recordings ...`: the recordings commands' flags. The commands themselves run
//! in `main.rs`, through `crate::recordings`, as the admin API does.

use clap::Subcommand;

/// `roundtable recordings ...`: each reads the database and the recordings folder directly.
#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// List recording sessions, newest first, with their files' totals.
    List {
        /// Only this room's sessions.
        #[arg(long)]
        room: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a session: its files (speaker, kind, length, size, id) and its consent ledger.
    Show {
        /// The session's id.
        session: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a session's files and its row. The consent ledger keeps every entry.
    Delete {
        /// The session's id.
        session: String,
    },
    /// Purge a speaker who withdrew after the session: their files go, the mixdown is
    /// rebuilt without them, and the ledger keeps their withdrawal.
    Purge {
        /// The session's id.
        session: String,
        /// The speaker's participant id, as `recordings show` lists it.
        participant: String,
    },
}
