//! The simulator in a child process, for benchmarks: the server's CPU and memory stay out of the
//! measured process, and its work does not compete for the measured side's runtime threads (a
//! remote API does not either).

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use crate::config::SimConfig;
use crate::error::SimError;
use crate::server::{RunningSim, start};

/// The first argument of a benchmark binary started by [`SimChild::spawn`]: serve, don't measure.
pub const SERVE_ARG: &str = "--serve-sim";

/// In the child: serves `config` on a free loopback port (two runtime threads), lets `prepare`
/// adjust the live state, prints the base URL as the first line of stdout and serves until stdin
/// closes (the parent went away or dropped its [`SimChild`]).
pub fn serve_until_stdin_closes(
    config: SimConfig,
    prepare: impl FnOnce(&RunningSim) -> Result<(), SimError>,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sim = start(config, ([127, 0, 0, 1], 0).into()).await?;
        prepare(&sim).map_err(io::Error::other)?;
        let mut stdout = io::stdout();
        writeln!(stdout, "{}", sim.base_url)?;
        stdout.flush()?;
        let stdin_closed =
            tokio::task::spawn_blocking(|| io::copy(&mut io::stdin(), &mut io::sink()));
        // Whether stdin ended or failed, the parent is done with the simulator.
        let _ = stdin_closed.await;
        sim.shutdown().await;
        Ok(())
    })
}

/// In the parent: this executable started again as `<exe> --serve-sim ARGS…`, serving.
pub struct SimChild {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the child printed it.
    pub base_url: String,
}

impl SimChild {
    /// Starts the child and waits until it serves; the binary's `main` must hand [`SERVE_ARG`]
    /// runs to [`serve_until_stdin_closes`].
    pub fn spawn(args: &[&str]) -> io::Result<SimChild> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg(SERVE_ARG)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let base_url = line.trim().to_string();
        if !base_url.starts_with("http://") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "the simulator child did not start serving (it printed {line:?})"
            )));
        }
        Ok(SimChild { child, base_url })
    }

    /// The child's process id, e.g. to read its CPU time from `/proc`.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        // Closing its stdin ends the child.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
