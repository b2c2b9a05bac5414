"""`python -m ikol_backend.batch.serve`: one local batch worker process (`worker.main`).

A module of its own, so that the worker's classes pickle under their real module names.
"""

from .worker import main

main()
