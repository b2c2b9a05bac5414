"""Whether a JPEG file holds all of its image: a file cut short still decodes (libjpeg fills
the rest with grey and only warns), so completeness is checked on the file's markers."""

import mmap
import re
from pathlib import Path

START_OF_IMAGE = b"\xff\xd8"
END_OF_IMAGE = 0xD9
START_OF_SCAN = 0xDA
# Markers without a length field: TEM and the restart markers RST0-RST7.
BARE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
# Inside a scan's entropy-coded data, 0xFF is followed by 0x00 (a stuffed byte), by a restart
# marker, or by another 0xFF (fill); anything else starts the next marker.
NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg_is_complete(path: Path) -> bool:
    """True when the JPEG file's segments and scans lead to its end-of-image marker.

    Data after that marker (phones append videos or metadata) is allowed; a file that ends
    before it, or whose segments run past the end, is cut short.
    """
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            return False
        with data:
            return _reaches_end_of_image(data)


def _reaches_end_of_image(data: mmap.mmap) -> bool:
    if data[:2] != START_OF_IMAGE:
        return False
    size = len(data)
    position = 2
    while position + 1 < size:
        if data[position] != 0xFF:  # stray bytes between segments: libjpeg skips them too
            position = data.find(b"\xff", position)
            if position < 0:
                return False
            continue
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
        elif marker == END_OF_IMAGE:
            return True
        elif marker in BARE_MARKERS:
            position += 2
        else:
            if position + 4 > size:
                return False
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
            if marker == START_OF_SCAN:
                found = NEXT_MARKER.search(data, position)
                if found is None:
                    return False
                position = found.start()
    return False
