"""Errors the backend reports to users: a stable code, a message, and an exit code."""

# Exit codes of `ikol-backend` (also documented in docs/protocol.md).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_NO_PERSON = 4
EXIT_OUTPUT = 5
EXIT_SOME_FAILED = 6  # batch: some inputs failed (each recorded in the manifest)
EXIT_INTERRUPTED = 130

_EXIT_BY_CODE = {
    "input_not_found": EXIT_BAD_INPUT,
    "input_unreadable": EXIT_BAD_INPUT,
    "input_unsupported": EXIT_BAD_INPUT,
    "bad_frame_range": EXIT_USAGE,
    "bad_camera": EXIT_USAGE,
    "bad_option": EXIT_USAGE,
    "no_person": EXIT_NO_PERSON,
    "output_unwritable": EXIT_OUTPUT,
    "output_busy": EXIT_OUTPUT,
    "cluster_unavailable": EXIT_USAGE,
    "model_invalid": EXIT_BAD_INPUT,
    "checkpoint_invalid": EXIT_BAD_INPUT,
    "body_unavailable": EXIT_BAD_INPUT,
}


class BackendError(Exception):
    """A failure explained to the user; `code` is stable, `message` is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def exit_code(self) -> int:
        return _EXIT_BY_CODE.get(self.code, EXIT_INTERNAL)
