"""The split hand-over's pipe: widened so the collector process can run a batch or two ahead."""

import os
from multiprocessing.connection import Connection

from callqual.pipeline.split import PIPE_BYTES, start_child, widen_pipe

#: More than the kernel's default pipe buffer (64 KiB), less than the widened one.
_BATCH_BYTES = 700_000


def _send_one_batch(payload: bytes, send: Connection) -> None:
    send.send_bytes(payload)
    send.close()


def test_a_batch_larger_than_the_default_pipe_is_sent_before_the_parent_reads() -> None:
    payload = os.urandom(_BATCH_BYTES)
    child, receive = start_child(_send_one_batch, payload)
    try:
        # The child finishes its send with no one reading: the whole batch sits in the pipe.
        child.join(timeout=60)
        assert child.exitcode == 0
        assert receive.recv_bytes() == payload
    finally:
        receive.close()
        if child.is_alive():
            child.terminate()
        child.join()


def test_widening_gives_the_size_asked_and_keeps_the_old_size_when_refused() -> None:
    read, write = os.pipe()
    try:
        default = widen_pipe(write, 0)  # asking for less than a page keeps (rounds up to) a page
        assert widen_pipe(write) == PIPE_BYTES
        # 2 GiB is over any pipe limit, root's too: refused, the pipe keeps its buffer
        assert widen_pipe(write, 1 << 31) == PIPE_BYTES
        assert default == os.sysconf("SC_PAGE_SIZE")
    finally:
        os.close(read)
        os.close(write)
