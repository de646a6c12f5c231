//! The real `roundtable` binary as a child process: started on a data directory, its address
//! read from its first lines, its log kept in a file, killed with SIGKILL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use anyhow::{Context, bail, ensure};
use roundtable_loadgen::client::{WAIT, Ws, join};
use signaling::wire::{ChatMessage, ClientMsg, ServerMsg};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The admin token every server here uses.
const ADMIN_TOKEN: &str = "process-test-token";

/// The binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_roundtable");

/// `roundtable serve` on `data_dir`, on loopback ports the kernel picks.
pub fn serve(data_dir: &Path) -> Command {
    wrapped(&[], data_dir)
}

/// [`serve`], run by `wrapper`: a program and its first arguments, to which the binary and
/// its flags are added.
pub fn wrapped(wrapper: &[&str], data_dir: &Path) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(BIN);
            cmd
        }
        None => Command::new(BIN),
    };
    on_data_dir(&mut cmd, data_dir)
        .args(["--bind", "127.0.0.1:0", "--media-port", "0"])
        .args(["--media-ip", "127.0.0.1", "--admin-token", ADMIN_TOKEN]);
    cmd
}

/// `roundtable room create` on `data_dir`; the new room's id.
pub async fn create_room(data_dir: &Path, title: &str) -> anyhow::Result<String> {
    Ok(create_room_for_facilitator(data_dir, title).await?.0)
}

/// `roundtable room create` on `data_dir`; the new room's id and the secret of its
/// facilitator's invite (from the link's `#invite=` fragment).
pub async fn create_room_for_facilitator(
    data_dir: &Path,
    title: &str,
) -> anyhow::Result<(String, String)> {
    let out = on_data_dir(&mut Command::new(BIN), data_dir)
        .args(["room", "create", "--title", title, "--json"])
        .output()
        .await?;
    ensure!(out.status.success(), "room create: {out:?}");
    let created: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let id = created["id"].as_str().context("no id")?.to_string();
    let link = created["facilitator_url"].as_str().context("no link")?;
    let (_, secret) = link
        .split_once("#invite=")
        .context("no secret in the link")?;
    Ok((id, secret.to_string()))
}

/// Only `data_dir` and our settings count, not the caller's environment.
fn on_data_dir<'a>(cmd: &'a mut Command, data_dir: &Path) -> &'a mut Command {
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env_remove("ROUNDTABLE_CONFIG")
        .env_remove("ROUNDTABLE_DATABASE_URL")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("ROUNDTABLE_LOG", "info")
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The demo room, created on first start.
    pub demo_room: String,
    child: Child,
    log: PathBuf,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Start `cmd` and wait for it to say where it listens. Its stderr goes to `log`.
    pub async fn start(mut cmd: Command, log: &Path) -> anyhow::Result<Server> {
        let mut child = spawn(&mut cmd, log)?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut addr = None;
        let demo_room = loop {
            let line = tokio::time::timeout(WAIT, stdout.next_line())
                .await
                .context("the server said nothing")??;
            let Some(line) = line else {
                let status = child.wait().await?;
                bail!("the server exited ({status}): {}", read_log(log));
            };
            if let Some(a) = line.strip_prefix("listening on http://") {
                addr = Some(a.parse()?);
            } else if let Some(link) = line.strip_prefix("demo room: ") {
                break link.rsplit('/').next().unwrap_or_default().to_string();
            }
        };
        Ok(Server {
            addr: addr.context("no `listening on` line")?,
            demo_room,
            child,
            log: log.to_path_buf(),
            _stdout: stdout,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(mut self) -> anyhow::Result<String> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(read_log(&self.log))
    }
}

/// Run `cmd` and wait for it to exit by itself: its status, and what it said on stdout and
/// stderr. Fails if it starts serving instead.
pub async fn run_to_exit(mut cmd: Command, log: &Path) -> anyhow::Result<(ExitStatus, String)> {
    let mut child = spawn(&mut cmd, log)?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut said = String::new();
    while let Some(line) = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .context("the server neither served nor exited")??
    {
        if line.starts_with("listening on") {
            bail!("the server started: {line}");
        }
        said += &line;
        said.push('\n');
    }
    let status = tokio::time::timeout(WAIT, child.wait()).await??;
    Ok((status, said + &read_log(log)))
}

fn spawn(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let stderr = std::fs::File::create(log)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(child)
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// A participant on a bare WebSocket.
pub struct Participant {
    /// Its participant id.
    pub id: String,
    /// The chat history `joined` carried.
    pub history: Vec<ChatMessage>,
    ws: Ws,
    /// Answers to its own chat messages not yet taken: echoes and errors.
    outcomes: Vec<ServerMsg>,
    audio: bool,
}

impl Participant {
    /// Join `room` as `name`.
    pub async fn join(addr: SocketAddr, room: &str, name: &str) -> anyhow::Result<Participant> {
        let (ws, id, joined) = join(addr, room, name).await?;
        let ServerMsg::Joined { chat, .. } = joined else {
            bail!("not joined: {joined:?}");
        };
        Ok(Participant {
            id,
            history: chat,
            ws,
            outcomes: vec![],
            audio: false,
        })
    }

    /// Send a chat message.
    pub async fn chat(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws.send(&ClientMsg::Chat { text: text.into() }).await
    }

    /// Wait until the room has handled everything this participant sent so far: a
    /// `media_state` change comes back after it. Answers to its chat that came first are
    /// kept, and counted in the result.
    pub async fn barrier(&mut self) -> anyhow::Result<usize> {
        self.audio = !self.audio;
        let audio = self.audio;
        self.ws
            .send(&ClientMsg::MediaState {
                audio,
                video: false,
            })
            .await?;
        loop {
            let msg = self.read().await?;
            if matches!(&msg, ServerMsg::ParticipantUpdated { participant } if participant.id == self.id && participant.audio == audio)
            {
                break;
            }
        }
        Ok(self.outcomes.len())
    }

    /// The next chat message or error, from anyone.
    pub async fn next_outcome(&mut self) -> anyhow::Result<ServerMsg> {
        self.ws
            .recv_until(|m| matches!(m, ServerMsg::Chat { .. } | ServerMsg::Error { .. }))
            .await
    }

    /// The answers to this participant's own next `n` chat messages: each is its echo (the
    /// acknowledgement) or an error.
    pub async fn own_outcomes(&mut self, n: usize) -> anyhow::Result<Vec<ServerMsg>> {
        while self.outcomes.len() < n {
            self.read().await?;
        }
        Ok(self.outcomes.drain(..n).collect())
    }

    /// The next message; an answer to this participant's own chat is also kept.
    async fn read(&mut self) -> anyhow::Result<ServerMsg> {
        let msg = self.ws.recv().await?;
        match &msg {
            ServerMsg::Chat { message } if message.from != self.id => {}
            ServerMsg::Chat { .. } | ServerMsg::Error { .. } => self.outcomes.push(msg.clone()),
            _ => {}
        }
        Ok(msg)
    }
}
