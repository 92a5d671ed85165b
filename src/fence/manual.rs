//! `manual`: no device at all. Fencing waits for an operator's `failoverd confirm-fenced NODE`.

use super::{DeviceOutcome, FenceAction, FenceError, Verb};

/// The immediate outcome of `action` on a manual device.
pub(super) fn outcome(device: &str, action: FenceAction) -> DeviceOutcome {
    match action {
        FenceAction::Off | FenceAction::Reboot => DeviceOutcome::NeedsOperator,
        FenceAction::Status => DeviceOutcome::Failed(unsupported(device, Verb::Status)),
        FenceAction::On => DeviceOutcome::Failed(unsupported(device, Verb::On)),
    }
}

/// A manual device has no commands.
pub(super) fn unsupported(device: &str, verb: Verb) -> FenceError {
    let detail = match verb {
        Verb::Status => "manual device has no status".to_string(),
        other => format!("manual device cannot power {}: an operator must", other.as_str()),
    };
    FenceError::Unsupported { device: device.to_string(), detail }
}
