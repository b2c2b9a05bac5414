"""Fixtures shared by the backend tests: the generated SMPL-format stand-in body model."""

from pathlib import Path

import pytest

from ikol_backend.body.model import BodyModel
from ikol_backend.body.smpl_file import load_smpl
from tests.tools.standin_smpl import write_standin


@pytest.fixture(scope="session")
def standin_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The stand-in written as (.npz, .pkl)."""
    return write_standin(tmp_path_factory.mktemp("standin"))


@pytest.fixture(scope="session")
def standin_body(standin_files: tuple[Path, Path]) -> BodyModel:
    return load_smpl(standin_files[0])
