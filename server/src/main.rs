//! The `roundtable` binary: parse the command line, then serve or run a CLI command.

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use roundtable::agendas::{self, AgendaReport};
use roundtable::config::{
    AgendaArgs, Cli, Command, Config, NewPlan, RecordingsCommand, RoomCommand, log_filter,
};
use roundtable::invites::{self, InviteState, InviteView, Minted};
use roundtable::recordings::{self, SessionDetail, SessionSummary};
use roundtable::room::now;
use roundtable::rooms::{CreatedRoom, create_room};
use roundtable::store::{AuditEntry, InviteRecord, RoomRecord, Store};
use roundtable::{Server, store};
use signaling::agenda::{Phase, Plan};
use signaling::policy::{RoomPolicy, WhenFull};
use signaling::roles::Role;

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
        Command::Recordings { command } => recordings_command(config, command).await,
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
    let store = store.as_ref();
    let base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.bind));
    let base = base.trim_end_matches('/');
    match command {
        RoomCommand::Create(args) => {
            let room = args.changes().new_room().map_err(anyhow::Error::msg)?;
            let created = create_room(store, base, &room).await?;
            print_created(&created, args.json)?;
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
        RoomCommand::Invite(args) => {
            let now = now().unix_ms;
            let minted = invites::mint(store, base, &args.room, &args.spec(), now).await?;
            print_minted(&minted, now, args.json)?;
        }
        RoomCommand::Invites { room, json } => {
            existing_room(store, &room).await?;
            print_invites(&store.list_invites(&room).await?, now().unix_ms, json)?;
        }
        RoomCommand::Revoke { room, invite } => {
            existing_room(store, &room).await?;
            if !store.revoke_invite(&room, &invite, now().unix_ms).await? {
                bail!("room `{room}` has no invite `{invite}`");
            }
            println!("revoked invite {invite}: it admits nobody from now on");
        }
        RoomCommand::Update(args) => {
            let mut room = existing_room(store, &args.room).await?;
            args.changes()
                .apply(&mut room)
                .map_err(anyhow::Error::msg)?;
            store.update_room(&room).await?;
            println!("updated room {}: {}", room.id, rules(&room.policy));
        }
        RoomCommand::Audit { room, json } => {
            existing_room(store, &room).await?;
            print_audit(&store.audit_log(&room).await?, json)?;
        }
        RoomCommand::Agenda(args) => agenda_command(store, &args).await?,
    }
    Ok(())
}

/// `room agenda`: print the agenda, after storing a new plan if asked to. An agenda under
/// way is not edited here: its room runs (or will resume) with its own copy.
async fn agenda_command(store: &dyn Store, args: &AgendaArgs) -> anyhow::Result<()> {
    let room = &args.room;
    let mut agenda = agendas::stored(store, room).await?;
    if let Some(new) = args.new_plan() {
        if agenda.is_live() {
            let phase = if agenda.state.phase == Phase::Paused {
                "paused"
            } else {
                "running"
            };
            bail!(
                "the agenda of room `{room}` is under way ({phase}): edit a live agenda in \
                 the web client or through the API"
            );
        }
        let plan = match new {
            NewPlan::File(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                agendas::parse_plan(&text).with_context(|| path.display().to_string())?
            }
            NewPlan::Template(n) => Plan::skill_share(n),
        };
        agendas::replace_plan(store, room, &mut agenda, plan, now().unix_ms).await?;
        if !args.json {
            println!("stored a new plan for room {room}");
        }
    }
    let report = AgendaReport::new(&agenda, now().unix_ms);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let invites = store.list_invites(room).await?;
        let names = invites.into_iter().map(|i| (i.id, i.name)).collect();
        print!("{}", agendas::render(room, &report, &names));
    }
    Ok(())
}

async fn existing_room(store: &dyn Store, id: &str) -> anyhow::Result<RoomRecord> {
    store
        .get_room(id)
        .await?
        .ok_or_else(|| anyhow!("no room `{id}`"))
}

fn print_created(created: &CreatedRoom, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(created)?);
        return Ok(());
    }
    println!(
        "created room {} ({}, capacity {})",
        created.id, created.title, created.capacity
    );
    println!("facilitator link (shown once): {}", created.facilitator_url);
    match &created.open_url {
        Some(url) => println!("open link: {url}"),
        None => println!("open link: off (only invites get in)"),
    }
    Ok(())
}

fn print_minted(minted: &Minted, now_ms: i64, json: bool) -> anyhow::Result<()> {
    let invite = &minted.invite;
    if json {
        let mut out = serde_json::to_value(InviteView::at(invite, now_ms))?;
        out["url"] = minted.url.clone().into();
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} (shown once)\n{}",
        invite_line(invite, now_ms),
        minted.url
    );
    Ok(())
}

fn print_invites(invites: &[InviteRecord], now_ms: i64, json: bool) -> anyhow::Result<()> {
    if json {
        let views = InviteView::all(invites, now_ms);
        println!("{}", serde_json::to_string(&views)?);
        return Ok(());
    }
    for invite in invites {
        println!("{}", invite_line(invite, now_ms));
    }
    Ok(())
}

/// One invite on one line: id, role, state, then what sets it apart.
fn invite_line(invite: &InviteRecord, now_ms: i64) -> String {
    let mut line = format!(
        "{}\t{}\t{}",
        invite.id,
        invite.role,
        InviteState::of(invite, now_ms).as_str()
    );
    if let Some(name) = &invite.name {
        line += &format!("\tfor \"{name}\"");
    }
    if invite.reserve {
        line += "\treserved seat";
    }
    line += &match invite.max_uses {
        Some(max) => format!("\tused {}/{max}", invite.uses),
        None => format!("\tused {}", invite.uses),
    };
    line + &format!("\texpires {}", invites::utc(invite.expires_at))
}

fn print_audit(entries: &[AuditEntry], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(entries)?);
        return Ok(());
    }
    for e in entries {
        let mut line = format!(
            "{}\t{} ({})\t{}",
            invites::utc(e.ts),
            e.actor_name,
            e.actor,
            e.action
        );
        if let Some(target) = &e.target {
            let name = e.target_name.as_deref().unwrap_or("?");
            line += &format!("\t{name} ({target})");
        }
        if let Some(detail) = &e.detail {
            line += &format!("\t{detail}");
        }
        println!("{line}");
    }
    Ok(())
}

async fn recordings_command(config: Config, command: RecordingsCommand) -> anyhow::Result<()> {
    let store = store::open(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", store::redacted(&config.database_url)))?;
    let (store, dir) = (store.as_ref(), config.recordings_dir.as_path());
    match command {
        RecordingsCommand::List { room, json } => {
            let sessions = recordings::list(store, dir, room.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&sessions)?);
            } else {
                sessions
                    .iter()
                    .for_each(|s| println!("{}", session_line(s)));
            }
        }
        RecordingsCommand::Show { session, json } => {
            let detail = recordings::detail(store, dir, &session).await?;
            if json {
                println!("{}", serde_json::to_string(&detail)?);
            } else {
                print_session(&detail);
            }
        }
        RecordingsCommand::Delete { session } => {
            let deleted = recordings::delete(store, dir, &session).await?;
            println!(
                "deleted session {} and its {} files; the consent ledger keeps its entries",
                deleted.deleted, deleted.files
            );
        }
        RecordingsCommand::Purge {
            session,
            participant,
        } => {
            let purged = recordings::purge(store, dir, &session, &participant).await?;
            let ledger = if purged.withdrawal_recorded {
                "their withdrawal is now in the ledger"
            } else {
                "the ledger already showed their withdrawal"
            };
            println!(
                "purged {} from session {}: {} files deleted, the mixdown rebuilt; {ledger}",
                purged.participant, purged.session, purged.files
            );
        }
    }
    Ok(())
}

/// One session in a line: id, room, start, end, totals.
fn session_line(s: &SessionSummary) -> String {
    let end = match (s.ended_at, s.cut_off) {
        (None, _) => "recording".to_string(),
        (Some(at), true) => format!("{} (cut off)", invites::utc(at)),
        (Some(at), false) => invites::utc(at),
    };
    format!(
        "{}	room {}	{} to {end}	{} speakers, {} files, {} bytes",
        s.id,
        s.room,
        invites::utc(s.started_at),
        s.totals.speakers,
        s.totals.files,
        s.totals.bytes
    )
}

fn print_session(detail: &SessionDetail) {
    println!("{}", session_line(&detail.session));
    println!("files:");
    for f in &detail.files {
        let who = match (&f.speaker, &f.speaker_name) {
            (Some(id), name) => format!("{} ({id})", name.as_deref().unwrap_or("?")),
            (None, _) => "-".to_string(),
        };
        let length = f
            .duration_ms
            .map_or("-".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
        let kind = serde_json::to_value(f.kind).unwrap_or_default();
        let kind = kind.as_str().unwrap_or("?");
        println!(
            "  {}	{kind}	{who}	{length}	{} bytes	{}",
            f.id, f.size, f.file_name
        );
    }
    println!("consent ledger:");
    for e in &detail.ledger {
        let what = if e.granted { "granted" } else { "withdrew" };
        println!(
            "  {}	{} ({})	{what}",
            invites::utc(e.ts),
            e.name,
            e.participant
        );
    }
}

/// A room's rules in a few words.
fn rules(policy: &RoomPolicy) -> String {
    let caps: Vec<String> = Role::ALL
        .into_iter()
        .filter_map(|role| policy.caps.of(role).map(|cap| format!("{role}={cap}")))
        .collect();
    let caps = if caps.is_empty() {
        "no role caps".to_string()
    } else {
        format!("caps {}", caps.join(" "))
    };
    let on = |b: bool| if b { "on" } else { "off" };
    format!(
        "capacity {}, {caps}, when full {}, auto-admit {}, open link {}",
        policy.capacity,
        match policy.when_full {
            WhenFull::Refuse => "refuse",
            WhenFull::Wait => "wait",
        },
        on(policy.auto_admit),
        on(policy.open_link)
    )
}
