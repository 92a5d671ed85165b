//! [`SequenceRun`]: one run of a sequence table (`sequence.rs`) for one target, step by step.

use crate::command::{Command, CommandResult};
use crate::config::TargetConfig;

use super::judge::{self, Ctx, PoolRemark};
use super::parse::ZdbLabel;
use super::sequence::{self, argv, import_mode, ImportMode, Step};
use super::{HostIdentity, SequenceKind, StepVerdict, StorageError, StorageTimeouts};

/// One step of a run's plan: a table entry, with the NID for an `lnet-ping`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Planned {
    step: Step,
    nid: Option<String>,
}

/// One run of a sequence for one target: the steps left, and what earlier steps learnt (the zdb label, and
/// from it whether the import is forced).
///
/// The engine loops `current()` → run the command → `on_result(result)` until `Done` or `Failed`. After that,
/// `current()` is `None` and `on_result` repeats the final verdict.
#[derive(Clone, Debug)]
pub struct SequenceRun {
    kind: SequenceKind,
    target: TargetConfig,
    me: Option<HostIdentity>,
    fenced: Option<HostIdentity>,
    known: Vec<HostIdentity>,
    timeouts: StorageTimeouts,
    plan: Vec<Planned>,
    done: usize,
    label: Option<ZdbLabel>,
    import: ImportMode,
    finished: Option<StepVerdict>,
    /// Remarks of steps that passed (a DEGRADED pool, an ONLINE pool with a `status:` line), taken by the engine.
    remarks: Vec<PoolRemark>,
}

impl SequenceRun {
    fn new(
        kind: SequenceKind,
        target: &TargetConfig,
        me: Option<&HostIdentity>,
        fenced: Option<&HostIdentity>,
        known: &[HostIdentity],
        t: StorageTimeouts,
    ) -> SequenceRun {
        SequenceRun::from_table(kind, sequence::steps(kind, target), target, me, fenced, known, t)
    }

    fn from_table(
        kind: SequenceKind,
        table: &[Step],
        target: &TargetConfig,
        me: Option<&HostIdentity>,
        fenced: Option<&HostIdentity>,
        known: &[HostIdentity],
        t: StorageTimeouts,
    ) -> SequenceRun {
        let mut plan = Vec::new();
        for &step in table {
            match step {
                Step::LnetPing => {
                    plan.extend(target.health_nids.iter().map(|nid| Planned { step, nid: Some(nid.clone()) }))
                }
                Step::CheckCommand if !matches!(target.check_command.as_deref(), Some([_, ..])) => {}
                _ => plan.push(Planned { step, nid: None }),
            }
        }
        SequenceRun {
            kind,
            target: target.clone(),
            me: me.cloned(),
            fenced: fenced.cloned(),
            known: known.to_vec(),
            timeouts: t,
            plan,
            done: 0,
            label: None,
            import: ImportMode::Plain,
            finished: None,
            remarks: Vec::new(),
        }
    }

    /// Forced migration after `fenced` was confirmed off; `known` are all cluster hosts.
    pub fn forced(
        target: &TargetConfig,
        me: &HostIdentity,
        fenced: &HostIdentity,
        known: &[HostIdentity],
        t: StorageTimeouts,
    ) -> SequenceRun {
        SequenceRun::new(SequenceKind::Forced, target, Some(me), Some(fenced), known, t)
    }

    /// Controlled acquire (or first start): import without -f.
    pub fn acquire(
        target: &TargetConfig,
        me: &HostIdentity,
        known: &[HostIdentity],
        t: StorageTimeouts,
    ) -> SequenceRun {
        SequenceRun::new(SequenceKind::Acquire, target, Some(me), None, known, t)
    }

    /// Controlled release on the owner.
    pub fn release(target: &TargetConfig, t: StorageTimeouts) -> SequenceRun {
        SequenceRun::new(SequenceKind::Release, target, None, None, &[], t)
    }

    /// Undo a failed start (or release a half-held pool found at startup): umount and export, where "not
    /// mounted" and "no such pool" count as done. Reported as a `Release`.
    pub fn cleanup(target: &TargetConfig, t: StorageTimeouts) -> SequenceRun {
        let table = if target.kind.pool().is_some() { sequence::CLEANUP_ZFS } else { sequence::CLEANUP_LDISKFS };
        SequenceRun::from_table(SequenceKind::Release, table, target, None, None, &[], t)
    }

    /// Health check of a running target.
    pub fn monitor(target: &TargetConfig, t: StorageTimeouts) -> SequenceRun {
        SequenceRun::new(SequenceKind::Monitor, target, None, None, &[], t)
    }

    pub fn kind(&self) -> SequenceKind {
        self.kind
    }

    pub fn target(&self) -> &TargetConfig {
        &self.target
    }

    fn command_of(&self, p: &Planned) -> Command {
        Command::new(argv(p.step, &self.target, self.import, p.nid.as_deref()), p.step.timeout(&self.timeouts))
    }

    /// The step to run now (its name, e.g. "zdb-check", and its command), or None when finished.
    pub fn current(&self) -> Option<(&'static str, Command)> {
        if self.finished.is_some() {
            return None;
        }
        self.plan.get(self.done).map(|p| (p.step.name(), self.command_of(p)))
    }

    /// The current step, or None when finished.
    pub fn step(&self) -> Option<Step> {
        if self.finished.is_some() {
            return None;
        }
        self.plan.get(self.done).map(|p| p.step)
    }

    /// The current step's name, or None when finished.
    pub fn step_name(&self) -> Option<&'static str> {
        self.step().map(Step::name)
    }

    /// How many steps have passed.
    pub fn steps_done(&self) -> usize {
        self.done
    }

    /// The names of all the steps of this run, in order (`lnet-ping` once per NID).
    pub fn plan(&self) -> Vec<&'static str> {
        self.plan.iter().map(|p| p.step.name()).collect()
    }

    /// The label `zdb-check` read, once it passed.
    pub fn label(&self) -> Option<&ZdbLabel> {
        self.label.as_ref()
    }

    /// True when this run's import is `zpool import -f` (decided by `zdb-check`).
    pub fn used_force(&self) -> bool {
        self.import == ImportMode::Force
    }

    /// Remarks of the steps that passed since the last call (see [`PoolRemark`]).
    pub fn take_remarks(&mut self) -> Vec<PoolRemark> {
        std::mem::take(&mut self.remarks)
    }

    /// The final verdict (`Done` or `Failed`), once the run is over.
    pub fn outcome(&self) -> Option<&StepVerdict> {
        self.finished.as_ref()
    }

    /// The label rule of `zdb-check` (see [`import_mode`]) for this run's hosts.
    fn import_mode(&self, label: &ZdbLabel) -> Result<ImportMode, StorageError> {
        match &self.me {
            Some(me) => import_mode(Step::ZdbCheck.name(), label, me, self.fenced.as_ref(), &self.known),
            // Only forced and acquire runs have a zdb-check, and both know this host.
            None => Err(StorageError::CommandFailed {
                step: Step::ZdbCheck.name().into(),
                command: "zdb -e -C".into(),
                detail: "no identity for this host".into(),
            }),
        }
    }

    /// Judge the result of the current step's command.
    pub fn on_result(&mut self, result: &CommandResult) -> StepVerdict {
        if let Some(v) = &self.finished {
            return v.clone();
        }
        let Some(p) = self.plan.get(self.done).cloned() else {
            self.finished = Some(StepVerdict::Done);
            return StepVerdict::Done;
        };
        let command = self.command_of(&p);
        let ctx = Ctx { step: p.step, command: &command, target: &self.target, label: self.label.as_ref() };
        let judged = match p.step {
            Step::ZdbCheck => judge::zdb_check(&ctx, result)
                .and_then(|label| self.import_mode(&label).map(|mode| Some((label, mode)))),
            Step::PoolStatus => judge::pool_status(&ctx, result).map(|remark| {
                self.remarks.extend(remark);
                None
            }),
            _ => judge::judge(&ctx, result).map(|()| None),
        };
        match judged {
            Ok(learnt) => {
                if let Some((label, mode)) = learnt {
                    self.label = Some(label);
                    self.import = mode;
                }
                self.done += 1;
                if self.done == self.plan.len() {
                    self.finished = Some(StepVerdict::Done);
                    StepVerdict::Done
                } else {
                    StepVerdict::Next
                }
            }
            Err(e) => {
                let v = StepVerdict::Failed(e);
                self.finished = Some(v.clone());
                v
            }
        }
    }
}
