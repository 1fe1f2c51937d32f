//! CPU affinity for a benchmark's simulator child: the child serves on a CPU of its own and the
//! measuring process keeps the others, so the simulator's serving takes no CPU from the side being
//! measured (a remote API's does not). Linux only; elsewhere both share every CPU.

use std::fmt;
use std::io;

/// CPUs by number, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// `first` and the rest, when the list holds two or more CPUs.
    fn split_first(&self) -> Option<(usize, CpuList)> {
        match self.0.as_slice() {
            [first, rest @ ..] if !rest.is_empty() => Some((*first, CpuList(rest.to_vec()))),
            _ => None,
        }
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let numbers: Vec<String> = self.0.iter().map(usize::to_string).collect();
        let noun = if self.0.len() == 1 { "CPU" } else { "CPUs" };
        write!(f, "{noun} {}", numbers.join(","))
    }
}

/// Where the child serves and where this process runs while the child lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The child on `simulator`, every thread of this process on `measured`.
    Apart { simulator: usize, measured: CpuList },
    /// Both on `cpus` (fewer than two CPUs, not Linux, or asked for).
    Shared { cpus: Option<CpuList> },
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Apart {
                simulator,
                measured,
            } => write!(
                f,
                "simulator pinned to CPU {simulator}, measured process to {measured}"
            ),
            Placement::Shared { cpus: Some(cpus) } => {
                write!(f, "simulator and measured process sharing {cpus}")
            }
            Placement::Shared { cpus: None } => {
                f.write_str("simulator and measured process sharing every CPU")
            }
        }
    }
}

/// The environment variable that tells the child which CPU to serve on.
pub(crate) const SIMULATOR_CPU_ENV: &str = "SIGSCI_SIM_CPU";

/// Apart when `allowed` (the CPUs this process may use) holds two or more: the first for the
/// simulator, the others for this process; else both share them.
pub(crate) fn plan_apart(allowed: Option<CpuList>) -> Placement {
    match allowed.as_ref().and_then(CpuList::split_first) {
        Some((simulator, measured)) => Placement::Apart {
            simulator,
            measured,
        },
        None => Placement::Shared { cpus: allowed },
    }
}

#[cfg(target_os = "linux")]
mod os {
    use std::io;

    use rustix::thread::{CpuSet, Pid, sched_getaffinity, sched_setaffinity};

    use super::CpuList;

    fn cpu_set(cpus: &CpuList) -> CpuSet {
        let mut set = CpuSet::new();
        for &cpu in &cpus.0 {
            set.set(cpu);
        }
        set
    }

    /// The CPUs the calling thread may run on.
    pub(crate) fn allowed_cpus() -> io::Result<Option<CpuList>> {
        let set = sched_getaffinity(None)?;
        Ok(Some(CpuList(
            (0..CpuSet::MAX_CPU)
                .filter(|&cpu| set.is_set(cpu))
                .collect(),
        )))
    }

    /// Binds the calling thread (and the threads it starts from now on) to `cpu`.
    pub(crate) fn pin_this_thread(cpu: usize) -> io::Result<()> {
        Ok(sched_setaffinity(None, &cpu_set(&CpuList(vec![cpu])))?)
    }

    /// Binds every thread of this process to `cpus`; threads started later inherit it from the
    /// thread that starts them.
    pub(crate) fn pin_this_process(cpus: &CpuList) -> io::Result<()> {
        let set = cpu_set(cpus);
        for task in std::fs::read_dir("/proc/self/task")? {
            let tid = task?.file_name().to_string_lossy().parse::<i32>().ok();
            let Some(pid) = tid.and_then(Pid::from_raw) else {
                continue;
            };
            match sched_setaffinity(Some(pid), &set) {
                // A thread that ended since the listing needs no pinning.
                Err(rustix::io::Errno::SRCH) => {}
                result => result?,
            }
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use std::io;

    use super::CpuList;

    pub(crate) fn allowed_cpus() -> io::Result<Option<CpuList>> {
        Ok(None)
    }

    pub(crate) fn pin_this_thread(_cpu: usize) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn pin_this_process(_cpus: &CpuList) -> io::Result<()> {
        Ok(())
    }
}

use os::pin_this_thread;
pub(crate) use os::{allowed_cpus, pin_this_process};

/// In the child: serve on the CPU the parent named, if it named one.
pub(crate) fn pin_to_named_cpu() -> io::Result<()> {
    let Some(named) = std::env::var_os(SIMULATOR_CPU_ENV) else {
        return Ok(());
    };
    let cpu = named.to_str().and_then(|n| n.parse().ok()).ok_or_else(|| {
        io::Error::other(format!(
            "{SIMULATOR_CPU_ENV} must be a CPU number, not {named:?}"
        ))
    })?;
    pin_this_thread(cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_two_or_more_splits_off_its_first_cpu() {
        let list = CpuList(vec![0, 1, 2]);
        assert_eq!(list.split_first(), Some((0, CpuList(vec![1, 2]))));
        assert_eq!(CpuList(vec![3]).split_first(), None);
        assert_eq!(CpuList(vec![]).split_first(), None);
    }

    #[test]
    fn apart_takes_two_or_more_cpus_and_shares_fewer() {
        assert_eq!(
            plan_apart(Some(CpuList(vec![0, 1, 2]))),
            Placement::Apart {
                simulator: 0,
                measured: CpuList(vec![1, 2])
            }
        );
        for allowed in [Some(CpuList(vec![3])), None] {
            assert_eq!(
                plan_apart(allowed.clone()),
                Placement::Shared { cpus: allowed }
            );
        }
    }

    #[test]
    fn placements_name_their_cpus() {
        let apart = Placement::Apart {
            simulator: 0,
            measured: CpuList(vec![1]),
        };
        assert_eq!(
            apart.to_string(),
            "simulator pinned to CPU 0, measured process to CPU 1"
        );
        let shared = Placement::Shared {
            cpus: Some(CpuList(vec![0, 1])),
        };
        assert_eq!(
            shared.to_string(),
            "simulator and measured process sharing CPUs 0,1"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_is_narrowed_and_given_back_its_cpus() {
        let before = allowed_cpus().expect("affinity").expect("a list on Linux");
        let Some((first, _)) = before.split_first() else {
            return; // One CPU: nothing to narrow.
        };
        let narrowed = CpuList(vec![first]);
        pin_this_process(&narrowed).expect("narrowed");
        // A thread started now inherits the narrowed set.
        let in_new_thread = std::thread::spawn(|| allowed_cpus().expect("affinity"))
            .join()
            .expect("thread");
        pin_this_process(&before).expect("given back");
        assert_eq!(in_new_thread, Some(narrowed));
        assert_eq!(allowed_cpus().expect("affinity"), Some(before));
    }
}
