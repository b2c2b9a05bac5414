"""`ikol-backend batch`: many inputs, one motion file each, on local worker processes or Ray.

- `inputs`: what the command line names becomes a list of inputs with their output names.
- `manifest`: OUTDIR/manifest.jsonl (one line per input and attempt), the settings hash, resume.
- `worker`: the work itself, in a worker process: torch and the models loaded once, then
  `estimate`'s motion for one input after another.
- `local`: long-lived worker processes on this machine; `cluster`: Ray actors.
- `runner`: hands inputs to workers, retries a clip whose worker died, writes each motion file
  (atomically) and its manifest line, reports events.
- `command`: the command line.

docs/batch.md describes it for users.
"""
