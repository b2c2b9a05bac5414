"""`python -m ikol_backend`: the `ikol-backend` command line, signals handled from the start."""

import sys

from .interrupts import end_on_signals, exit_interrupted

end_on_signals()
try:
    from .cli import console_main  # numpy and the rest load here
except KeyboardInterrupt:
    exit_interrupted("--events" in sys.argv[1:])

console_main()
