# Types of the C extension _inflate_scan.c (see its docstrings).

NEED_INPUT: int
OUTPUT_FULL: int
FAILED: int
WINDOW_SIZE: int

def scan(
    strm: int,
    inflate: int,
    reset2: int,
    chunk: bytes | bytearray | memoryview,
    in_pos: int,
    out: bytearray | memoryview,
    out_pos: int,
    span_size: int,
    totin: int,
    totout: int,
    last: int,
    member_ended: bool,
    /,
) -> tuple[int, int, int, int, int, int, int, bool, list[tuple[int, int, int, bytes]]]: ...
