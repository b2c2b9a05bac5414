"""Messages between the coordinator and its local worker processes: each a pickle preceded by
its length (8 bytes, big-endian), over the worker's standard input and output.

Only for pipes between a coordinator and the workers it started itself: unpickling runs code,
so never point this at anything else.
"""

import pickle
import struct
from typing import Any, BinaryIO

_LENGTH = struct.Struct("!Q")


def send(stream: BinaryIO, message: Any) -> None:
    """Write one message and flush."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """The next message, or None when the other end closed the pipe (also mid-message)."""
    head = _read_exactly(stream, _LENGTH.size)
    if head is None:
        return None
    data = _read_exactly(stream, _LENGTH.unpack(head)[0])
    return None if data is None else pickle.loads(data)


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
