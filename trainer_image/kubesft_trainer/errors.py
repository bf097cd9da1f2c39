"""The trainer's typed errors, each carrying the exit code the operator acts on.

Every failure the trainer can explain is raised as one of these; ``__main__`` turns it into
the exit code and a one-line reason (``kubesft: error: ...`` on stderr and in
``/dev/termination-log``), which the operator copies into the SFTJob's Failed condition.
"""

from __future__ import annotations

from kubesft_api import exit_codes


class TrainerError(Exception):
    """A failure with a reason a user can act on. Retryable unless a subclass says otherwise."""

    exit_code: int = exit_codes.RUNTIME_FAILURE


class ConfigError(TrainerError):
    """The config (the SFTJob spec, extraArgs, or a setting this machine cannot honour) is invalid."""

    exit_code = exit_codes.INVALID_CONFIG


class DataError(TrainerError):
    """The dataset cannot be used: missing files, unknown format, bad rows."""

    exit_code = exit_codes.INVALID_DATA


class ModelError(TrainerError):
    """The model or its tokenizer cannot be loaded or has no usable chat template."""

    exit_code = exit_codes.INVALID_DATA


class ModelUnavailableError(TrainerError):
    """Validation could not reach the model: not found, no access, or no network after retries."""

    exit_code = exit_codes.MODEL_UNAVAILABLE


class StorageUnavailableError(TrainerError):
    """Validation could not write a probe object to a checkpoint or output URI."""

    exit_code = exit_codes.STORAGE_UNAVAILABLE
