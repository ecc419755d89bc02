//! A PostgreSQL server of the test's own: its own data folder and port, for what the shared server at
//! `SLUICE_TEST_POSTGRES` cannot do (its own TLS settings and `pg_hba.conf`, being stopped and started again).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::Connection;

use crate::free_port;

/// A PostgreSQL server from the newest version installed under `/usr/lib/postgresql`, with a data folder that
/// goes with this value; stopped when dropped. Its port stays the same across [`PrivatePostgres::stop`] and
/// [`PrivatePostgres::start`].
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    settings: Vec<String>,
    postmaster: Option<Child>,
    /// The `postgres` account when the test runs as root, which PostgreSQL refuses to run as.
    owner: Option<(u32, u32)>,
}

impl PrivatePostgres {
    /// A new data folder (user `postgres`, trusted) whose `pg_hba.conf` is `hba`; not started yet.
    pub fn init(hba: &str) -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("socket")).unwrap();
        let owner = postgres_user();
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), &dir.path().join("socket")] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
        }
        let data = dir.path().join("data");
        let initdb = as_user(Command::new(postgres_bin().join("initdb")), owner)
            .current_dir(dir.path())
            .args(["-D", &data.display().to_string(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C")
            .output()
            .unwrap();
        assert!(initdb.status.success(), "initdb: {}", String::from_utf8_lossy(&initdb.stderr));
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        PrivatePostgres { port: free_port(), dir, settings: Vec::new(), postmaster: None, owner }
    }

    /// Copies `from` into the server's folder, readable by the server only if `private` (PostgreSQL refuses a key
    /// that others may read); its new path.
    pub fn add_file(&self, from: &Path, private: bool) -> PathBuf {
        let copy = self.dir.path().join(from.file_name().unwrap());
        std::fs::copy(from, &copy).unwrap();
        if private {
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&copy, Some(uid), Some(gid)).unwrap();
        }
        copy
    }

    /// Sets `name = value` for every start from now on.
    pub fn set(&mut self, name: &str, value: &str) {
        self.settings.extend(["-c".to_owned(), format!("{name}={value}")]);
    }

    /// Starts the server (listening on 127.0.0.1 and its socket folder) and waits until it accepts connections.
    pub async fn start(&mut self) {
        assert!(self.postmaster.is_none(), "already started");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log()).unwrap();
        let postmaster = as_user(Command::new(postgres_bin().join("postgres")), self.owner)
            .current_dir(self.dir.path())
            .args(["-D", &self.dir.path().join("data").display().to_string(), "-p", &self.port.to_string()])
            .args(["-k", &self.dir.path().join("socket").display().to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            .args(&self.settings)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.postmaster = Some(postmaster);
        drop(self.observer().await);
    }

    /// Stops the server as a restart does (fast shutdown: open sessions are ended) and waits until it is gone.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGINT);
    }

    /// A connection over the Unix socket, without TLS, once the server accepts connections.
    pub async fn observer(&self) -> sqlx::PgConnection {
        let socket = self.dir.path().join("socket");
        let url = format!("postgres:///postgres?host={}&port={}&user=postgres", socket.display(), self.port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match sqlx::PgConnection::connect(&url).await {
                Ok(conn) => return conn,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    panic!("PostgreSQL did not start: {e}\n{}", std::fs::read_to_string(self.log()).unwrap_or_default())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The URL of its `postgres` database over TCP, as user `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn signal(&mut self, signal: Signal) {
        if let Some(mut postmaster) = self.postmaster.take() {
            if let Ok(pid) = i32::try_from(postmaster.id()) {
                let _ = kill(Pid::from_raw(pid), signal);
            }
            let _ = postmaster.wait();
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Immediate shutdown: the data folder goes with the test.
        self.signal(Signal::SIGQUIT);
    }
}

/// The newest installed PostgreSQL's `bin` folder.
fn postgres_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL's binaries in /usr/lib/postgresql");
    let newest = versions
        .filter_map(|entry| {
            let entry = entry.ok()?;
            Some((entry.file_name().to_str()?.parse::<u32>().ok()?, entry.path()))
        })
        .max()
        .expect("a PostgreSQL version under /usr/lib/postgresql");
    newest.1.join("bin")
}

/// The `postgres` account's uid and gid when this test runs as root.
fn postgres_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> u32 {
        let out = Command::new("id").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id(&["-u"]) == 0).then(|| (id(&["-u", "postgres"]), id(&["-g", "postgres"])))
}

fn as_user(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}
