//! The simulator in a child process, for benchmarks: the server's CPU and memory stay out of the
//! measured process, and its work does not compete for the measured side's runtime threads (a
//! remote API does not either); with [`Cpus::Apart`] not for its CPUs either.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use crate::config::SimConfig;
use crate::cpus::{
    self, CpuList, Placement, SIMULATOR_CPU_ENV, pin_this_process, pin_to_named_cpu,
};
use crate::error::SimError;
use crate::server::{RunningSim, start};

/// The first argument of a benchmark binary started by [`SimChild::spawn`]: serve, don't measure.
pub const SERVE_ARG: &str = "--serve-sim";

/// In the child: serves `config` on a free loopback port (two runtime threads, on the CPU the
/// parent chose if it chose one), lets `prepare` adjust the live state, prints the base URL as the
/// first line of stdout and serves until stdin closes (the parent went away or dropped its
/// [`SimChild`]).
pub fn serve_until_stdin_closes(
    config: SimConfig,
    prepare: impl FnOnce(&RunningSim) -> Result<(), SimError>,
) -> io::Result<()> {
    // Before the runtime starts its threads, so that they inherit the CPU.
    pin_to_named_cpu()?;
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

/// How a [`SimChild`] and this process share the machine's CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cpus {
    /// The child on one CPU, every thread of this process on the others while the child lives
    /// (when this process may use two or more; else as [`Cpus::Shared`]). A remote API's serving
    /// takes no CPU from its client, and on a small machine a simulator beside the client does:
    /// the client paging 1M records measured 1.10–1.24× a raw read sharing two vCPUs, 0.94–0.98
    /// apart.
    Apart,
    /// Both on every CPU this process may use.
    Shared,
}

/// In the parent: this executable started again as `<exe> --serve-sim ARGS…`, serving.
pub struct SimChild {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the child printed it.
    pub base_url: String,
    /// Where the child serves and this process runs, to print beside the figures.
    pub placement: Placement,
    /// This process's CPUs before [`Cpus::Apart`] narrowed them, given back on drop.
    restore: Option<CpuList>,
}

impl SimChild {
    /// Starts the child and waits until it serves; the binary's `main` must hand [`SERVE_ARG`]
    /// runs to [`serve_until_stdin_closes`].
    pub fn spawn(args: &[&str], cpus: Cpus) -> io::Result<SimChild> {
        let allowed = cpus::allowed_cpus()?;
        let placement = match cpus {
            Cpus::Apart => cpus::plan_apart(allowed.clone()),
            Cpus::Shared => Placement::Shared {
                cpus: allowed.clone(),
            },
        };
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg(SERVE_ARG)
            .args(args)
            .env_remove(SIMULATOR_CPU_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Placement::Apart { simulator, .. } = &placement {
            command.env(SIMULATOR_CPU_ENV, simulator.to_string());
        }
        let mut child = command.spawn()?;
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
        let restore = match &placement {
            Placement::Apart { measured, .. } => {
                pin_this_process(measured)?;
                allowed
            }
            Placement::Shared { .. } => None,
        };
        Ok(SimChild {
            child,
            base_url,
            placement,
            restore,
        })
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
        if let Some(before) = &self.restore {
            // Best effort: a thread that cannot be widened again only runs on fewer CPUs.
            let _ = pin_this_process(before);
        }
    }
}
