//! Start the real server on 127.0.0.1:0 with a temporary SQLite (or a given database).

use std::net::SocketAddr;

use roundtable::config::Config;
use roundtable::{AppState, Server};
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
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Ok(TestServer {
            addr,
            state,
            stop: Some(stop),
            _dir: None,
        })
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
