"""`ikol-backend doctor`: every check reports ok or a failure with a message, never a crash."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ikol_backend import doctor
from ikol_backend.network.ikol24 import IKOL24


class NotATensor:
    """A class a checkpoint must not contain: loading it would need to run code."""


def test_all_checks_pass_in_the_development_environment(standin_files, tmp_path, capsys):
    checkpoint = tmp_path / "ikol.pth"
    torch.save(IKOL24().state_dict(), checkpoint)
    code = doctor.main(["--json", "--smpl", str(standin_files[0]), "--checkpoint", str(checkpoint)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"], report
    names = [check["name"] for check in report["checks"]]
    assert names == ["python", "ikol_backend", "torch", "numpy", "mediapipe", "opencv", "smplx",
                     "roma", "scipy", "device", "blazepose", "open_body", "smpl", "checkpoint"]
    by_name = {check["name"]: check for check in report["checks"]}
    assert by_name["torch"]["version"] == torch.__version__
    assert "6890 vertices" in by_name["smpl"]["message"]
    assert by_name["checkpoint"]["message"] == (
        f"{checkpoint}: IKOL24 (ResNet-34), 247 tensors, 27.5 million numbers")
    assert "loads and runs" in by_name["blazepose"]["message"]
    assert by_name["open_body"]["message"].startswith("anny 0.6.2; data ready")


def test_a_bad_model_file_or_checkpoint_fails_with_its_path(standin_files, tmp_path, capsys):
    missing = tmp_path / "nowhere.npz"
    with_code = tmp_path / "with_code.pth"
    torch.save({"weights": torch.zeros(2), "extra": NotATensor()}, with_code)
    bare = tmp_path / "bare.pth"
    torch.save(torch.zeros(3), bare)

    assert doctor.main(["--smpl", str(missing), "--checkpoint", str(with_code)]) == 1
    *table, verdict = capsys.readouterr().out.splitlines()
    assert verdict == "2 check(s) failed: smpl, checkpoint"
    lines = {line.split()[1]: line for line in table}
    assert lines["smpl"].startswith("FAIL") and str(missing) in lines["smpl"]
    assert lines["checkpoint"].startswith("FAIL")
    assert f"{with_code}: does not load: it holds {__name__}.NotATensor" in lines["checkpoint"]
    assert all(line.startswith("ok") for name, line in lines.items()
               if name not in ("smpl", "checkpoint"))

    not_state_dict = doctor.check_checkpoint(bare)
    assert not not_state_dict.ok and "not a state_dict" in not_state_dict.message
    not_ikol = tmp_path / "not_ikol.pth"
    torch.save({"fc1.weight": torch.zeros(4, 3)}, not_ikol)
    mismatch = doctor.check_checkpoint(not_ikol)
    assert not mismatch.ok and mismatch.message.startswith(
        f"{not_ikol}: does not fit the IKOL24 network (ResNet-34 backbone, 24 joints): 246 missing keys")
    assert "fc1.weight is (4, 3) in the file, (1024, 512) in the network" in mismatch.message
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    assert not doctor.check_smpl(garbage).ok


def test_model_file_failures_name_the_path_once_and_a_folder_is_a_folder(standin_files, tmp_path):
    missing, folder = tmp_path / "nowhere.npz", tmp_path / "models"
    folder.mkdir()
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    assert doctor.check_smpl(missing).message == f"{missing}: not found"
    assert doctor.check_smpl(folder).message == f"{folder}: is a folder, not an SMPL model file"
    message = doctor.check_smpl(garbage).message
    assert message.startswith(f"{garbage} is not a readable .npz file (")
    for text in (doctor.check_smpl(missing).message, message):
        assert text.count(missing.name) + text.count(garbage.name) == 1, text
    assert doctor.check_checkpoint(folder).message == (
        f"{folder}: is a folder, not an IKOL checkpoint file")


def test_device_check_follows_torch():
    assert doctor.check_device("cpu").ok
    assert doctor.check_device("auto").ok
    cuda = doctor.check_device("cuda")
    assert cuda.ok == torch.cuda.is_available()
    if not cuda.ok:
        assert "torch sees no CUDA device" in cuda.message


def test_a_package_that_does_not_import_is_a_failure():
    check = doctor.check_package("missing", "ikol_no_such_module", "ikol-no-such-module")
    assert not check.ok and "does not import: ModuleNotFoundError" in check.message


def test_doctor_subcommand_exits_non_zero_on_a_failed_check(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    doctor.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["doctor", "--json"])
    args.run(args, None)
    assert json.loads(capsys.readouterr().out)["ok"]

    args = parser.parse_args(["doctor", "--checkpoint", str(tmp_path / "missing.pth")])
    with pytest.raises(SystemExit) as exit_info:
        args.run(args, None)
    assert exit_info.value.code == 1


def test_module_entry_prints_one_json_line():
    done = subprocess.run([sys.executable, "-m", "ikol_backend.doctor", "--json"],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["ok"]
