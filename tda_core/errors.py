"""User-facing errors: the CLI prints these as one line and exits non-zero (no traceback)."""


class TdaError(Exception):
    """A problem the user can fix (bad config, missing file, unknown name)."""


class ConfigError(TdaError):
    pass


class ArtifactError(TdaError):
    """A result file is missing, corrupted, or was computed from another config."""


class StorageError(ArtifactError):
    """A result file cannot be written (disk full, read-only or missing permission)."""


class TrainingDiverged(TdaError):
    pass
