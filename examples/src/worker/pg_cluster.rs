//! A throwaway PostgreSQL cluster, for tests and demos: `initdb` and
//! `pg_ctl` from the installed server, into a temporary directory, on a
//! private port on loopback; stopped and removed when dropped.
//!
//! [`PgServer::for_tests`] is what tests call: a server at
//! `TETHERED_PG_URL` when that is set, otherwise a cluster of their own, or
//! `None` (the test says it skipped) when no server binaries are installed,
//! unless `TETHERED_PG_REQUIRED=1` makes that a failure (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PostgreSQL server to make databases on.
#[derive(Debug)]
pub enum PgServer {
    /// Given by `TETHERED_PG_URL` (a URL to a database whose user may
    /// create databases).
    External(String),
    /// Started here, gone when dropped.
    Own(PgCluster),
}

impl PgServer {
    /// The server tests use; see the module docs. `None` means: skip.
    ///
    /// # Panics
    ///
    /// When a cluster cannot be started although the binaries are there,
    /// or when there is none and `TETHERED_PG_REQUIRED=1`.
    pub fn for_tests() -> Option<PgServer> {
        if let Ok(url) = std::env::var("TETHERED_PG_URL") {
            return Some(PgServer::External(url));
        }
        let required = std::env::var("TETHERED_PG_REQUIRED").is_ok_and(|value| value == "1");
        match PgCluster::binaries() {
            Some(bin) => Some(PgServer::Own(
                PgCluster::start_with(&bin).unwrap_or_else(|error| panic!("{error}")),
            )),
            None if required => panic!(
                "TETHERED_PG_REQUIRED=1, but no PostgreSQL server binaries (initdb, pg_ctl) \
                 were found: install the server (apt-get install postgresql)"
            ),
            None => {
                eprintln!(
                    "skipped: no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
                );
                None
            }
        }
    }

    /// Creates a fresh database named `name` (unique per process and call)
    /// and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let database = format!(
            "{name}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.url("postgres");
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .map_err(|error| format!("cannot connect to {admin}: {error}"))?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{database}\""))
            .await
            .map_err(|error| format!("cannot create database {database}: {error}"))?;
        drop(client);
        let _ = connection.await;
        Ok(self.url(&database))
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        match self {
            PgServer::Own(cluster) => cluster.url(database),
            PgServer::External(url) => match url.rsplit_once('/') {
                Some((server, _))
                    if server.contains("://") && server.len() > "postgres://".len() =>
                {
                    format!("{server}/{database}")
                }
                _ => format!("{url}/{database}"),
            },
        }
    }
}

/// A cluster of its own: see the module docs.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// The user the server runs as, when this process is root (the server
    /// refuses to run as root).
    run_as: Option<String>,
}

impl PgCluster {
    /// Where the server binaries are: `pg_config --bindir`, the `PATH`,
    /// then Debian's `/usr/lib/postgresql/<version>/bin`, newest first.
    pub fn binaries() -> Option<PathBuf> {
        let has_server = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
            && out.status.success()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_server(&dir) {
                return Some(dir);
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                if has_server(&dir) {
                    return Some(dir);
                }
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, bin)| has_server(bin))
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    }

    /// Starts a cluster with the binaries in `bin`.
    pub fn start_with(bin: &Path) -> Result<PgCluster, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tethered-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let run_as = running_as_root().then(unprivileged_user).transpose()?;
        if let Some(user) = &run_as {
            let status = Command::new("chown")
                .args([user.as_str(), &dir.display().to_string()])
                .status()
                .map_err(|error| format!("cannot run chown: {error}"))?;
            if !status.success() {
                return Err(format!("chown {user} {} failed", dir.display()));
            }
        }
        let port = free_port()?;
        let cluster = PgCluster {
            dir,
            bin: bin.to_owned(),
            port,
            run_as,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        )?;
        cluster.start()?;
        Ok(cluster)
    }

    /// Starts the server (again, after [`stop`](Self::stop)), and waits
    /// until it accepts connections.
    pub fn start(&self) -> Result<(), String> {
        // No fsync (the machine does not crash under a test, a killed
        // server's writes are in the OS's cache), but every commit is in
        // the WAL before it is acknowledged: a restart (`stop` is
        // immediate, like a crash) must not lose what a worker was told
        // is done.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        )
    }

    /// Stops the server at once (`-m immediate`: as a crash would).
    pub fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs `program` from the server's binaries, as the server's user.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let out = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|error| format!("cannot run {}: {error}", path.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(format!(
            "{program} {} failed ({}): {}{}\n{log}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        ))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The user a root process runs the server as: `postgres` (made by the
/// server's package) or else `nobody`.
fn unprivileged_user() -> Result<String, String> {
    ["postgres", "nobody"]
        .into_iter()
        .find(|user| {
            Command::new("id")
                .arg(user)
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .map(str::to_owned)
        .ok_or_else(|| {
            "running as root, and no `postgres` or `nobody` user to run the server as".to_owned()
        })
}

/// A port free on loopback now (the server binds it a moment later).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("cannot find a free port: {error}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|error| format!("cannot find a free port: {error}"))
}
