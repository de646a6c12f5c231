//! The `roundtable` binary: parse the command line, then serve or run a CLI command.

use anyhow::Context;
use clap::Parser;
use roundtable::config::{Cli, Command, Config, RoomCommand, log_filter};
use roundtable::http::check_room;
use roundtable::{Server, new_room, store};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(std::env::var("ROUNDTABLE_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for a log file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let config = Config::resolve(&cli.opts)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Room { command } => room_command(config, command).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::bind(&config).await?;
    let started = &server.started;
    // stdout is for people and scripts: the first line names the address.
    println!("listening on http://{}", started.addr);
    if let Some(token) = &started.new_admin_token {
        println!("admin token (shown once, keep it): {token}");
    }
    println!("demo room: {}", started.demo_link);
    server.run(stop_signal()?).await
}

/// Resolves on SIGTERM (service managers, `docker stop`) or SIGINT (Ctrl-C).
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}

async fn room_command(config: Config, command: RoomCommand) -> anyhow::Result<()> {
    let store = store::open(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", store::redacted(&config.database_url)))?;
    let base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.bind));
    match command {
        RoomCommand::Create {
            title,
            capacity,
            json,
        } => {
            check_room(&title, capacity).map_err(anyhow::Error::msg)?;
            let room = new_room(title.trim().to_string(), capacity);
            store.create_room(&room).await?;
            let join_url = format!("{}/r/{}", base.trim_end_matches('/'), room.id);
            if json {
                let out = serde_json::json!({
                    "id": room.id, "title": room.title, "capacity": room.policy.capacity, "join_url": join_url,
                });
                println!("{out}");
            } else {
                println!(
                    "created room {} ({}, capacity {})\njoin link: {join_url}",
                    room.id, room.title, room.policy.capacity
                );
            }
        }
        RoomCommand::List { json } => {
            let rooms = store.list_rooms().await?;
            if json {
                println!("{}", serde_json::to_string(&rooms)?);
            } else {
                for r in rooms {
                    println!("{}\t{}\tcapacity {}", r.id, r.title, r.policy.capacity);
                }
            }
        }
    }
    Ok(())
}
