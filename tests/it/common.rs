//! Start the real server on 127.0.0.1:0 with a temporary SQLite (or a given database).

use std::net::SocketAddr;

use anyhow::Context;
use roundtable::config::Config;
use roundtable::ids::random_id;
use roundtable::invites::secret_hash;
use roundtable::store::InviteRecord;
use roundtable::{AppState, Server};
use signaling::policy::RoomPolicy;
use signaling::roles::Role;
use tokio::sync::oneshot;

/// The admin token every test server uses.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A server running inside the test process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its shared state (for `http::app` oneshot tests and seeding).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server on a fresh SQLite file.
    pub async fn sqlite() -> anyhow::Result<TestServer> {
        Self::sqlite_with(|_| {}).await
    }

    /// A server on a fresh SQLite file, with some settings changed.
    pub async fn sqlite_with(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite:{}", dir.path().join("rt.db").display());
        let mut config = Config::for_tests(url);
        adjust(&mut config);
        let mut server = Self::with_config(config).await?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// A server on the given database URL.
    pub async fn with_database(url: String) -> anyhow::Result<TestServer> {
        Self::with_config(Config::for_tests(url)).await
    }

    /// A server with this configuration (the admin token is always [`ADMIN_TOKEN`]).
    pub async fn with_config(mut config: Config) -> anyhow::Result<TestServer> {
        config.admin_token = Some(ADMIN_TOKEN.into());
        let server = Server::bind(&config).await?;
        let addr = server.started.addr;
        let state = server.state();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Ok(TestServer {
            addr,
            state,
            stop: Some(stop),
            running: Some(running),
            _dir: None,
        })
    }

    /// Stop the server and wait until it has: every room task and its writers have
    /// finished, so what the rooms queued for the store is written. The database stays.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await??;
        }
        Ok(())
    }

    /// Change a room's policy in the store.
    pub async fn set_policy(
        &self,
        room: &str,
        adjust: impl FnOnce(&mut RoomPolicy),
    ) -> anyhow::Result<()> {
        let store = self.state.store();
        let mut record = store.get_room(room).await?.context("no such room")?;
        adjust(&mut record.policy);
        store.update_room(&record).await?;
        Ok(())
    }

    /// Mint an invite to `room` for `role` directly in the store (an hour, no use limit, no
    /// reserved seat unless `adjust` says so); returns its secret and its id.
    pub async fn invite(
        &self,
        room: &str,
        role: Role,
        adjust: impl FnOnce(&mut InviteRecord),
    ) -> anyhow::Result<(String, String)> {
        let now = roundtable::room::now().unix_ms;
        let mut record = InviteRecord {
            id: random_id(10),
            room_id: room.into(),
            role,
            name: None,
            reserve: false,
            max_uses: None,
            uses: 0,
            expires_at: now + 3_600_000,
            created_at: now,
            revoked_at: None,
        };
        adjust(&mut record);
        let secret = random_id(32);
        self.state
            .store()
            .create_invite(&record, &secret_hash(&secret))
            .await?;
        Ok((secret, record.id))
    }

    /// Create a room directly in the store; returns its id.
    pub async fn room(&self, title: &str, capacity: u32) -> anyhow::Result<String> {
        let room = roundtable::new_room(title.into(), capacity);
        self.state.store().create_room(&room).await?;
        Ok(room.id)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
