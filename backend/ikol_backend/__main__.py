"""`python -m ikol_backend`: the `ikol-backend` command line, signals handled from the start."""

from .interrupts import end_on_signals

end_on_signals()  # a signal while the rest loads ends the run at once (see interrupts)

from .cli import console_main  # noqa: E402  (numpy and the rest load here)

console_main()
