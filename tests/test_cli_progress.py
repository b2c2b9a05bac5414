"""The headless CLI's frame progress (ikol_blender/cli.py FrameProgress), without Blender."""

import io

import pytest

from ikol_blender import cli


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_redrawn_at_most_a_few_times_a_second(monkeypatch: pytest.MonkeyPatch):
    clock = iter([100.0, 100.1, 100.2, 100.3, 100.35, 100.4])
    monkeypatch.setattr(cli.time, "monotonic", lambda: next(clock))
    stream = Terminal()
    progress = cli.FrameProgress(stream)
    for done in (1, 2, 3, 4, 5, 5, 10):  # at 0.0, 0.1, 0.2, 0.3, 0.35 s; the repeated 5 is not told
        progress.update(done, 10, 4.0)
    progress.end()
    progress.end()
    drawn = stream.getvalue().split("\r")[1:]
    assert [line.rstrip() for line in drawn] == [
        "  frame 1/10: 4.0 frames/s, 2 s left",  # 0.0 s
        "  frame 4/10: 4.0 frames/s, 2 s left",  # 0.3 s: a quarter second since the last
        "  frame 10/10: 4.0 frames/s, 0 s left",  # the last frame, at once
    ]
    assert drawn[-1].endswith("\n") and stream.getvalue().count("\n") == 1


def test_elsewhere_a_line_per_tenth():
    stream = io.StringIO()
    progress = cli.FrameProgress(stream)
    for done in range(1, 41):
        progress.update(done, 40, 0.0 if done < 8 else 8.0)
    progress.end()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "  frame 4/40: 0.0 frames/s, time left unknown"
    assert lines[1] == "  frame 8/40: 8.0 frames/s, 4 s left"
    assert [line.split(":")[0] for line in lines] == [f"  frame {4 * k}/40" for k in range(1, 11)]
