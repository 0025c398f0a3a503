"""Run one conversion in a child process: a hostile file can crash or hang only the child.

The child is a fresh interpreter (``python -m autoanim.engine.worker FD``): safe
when the caller has threads, and independent of the caller's ``__main__``.
It reads its job (pickled) on stdin and reports progress and the outcome over
a pipe; it is killed on timeout. The caller removes the temporary output
whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

from ..errors import AutoanimError, MediaError, ServiceError

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding ``autoanim``


def run_isolated(args, progress, timeout: float | None):
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
    receive = Connection(read_fd)  # closes read_fd when closed
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "autoanim.engine.worker", str(write_fd)],
            stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env,
        )
    except OSError as exc:
        receive.close()
        raise ServiceError(f"cannot start the media worker: {exc}", retryable=True, code="WorkerStart") from exc
    finally:
        os.close(write_fd)
    deadline = None if timeout is None else time.monotonic() + timeout
    answered = False
    try:
        with contextlib.suppress(BrokenPipeError):  # a worker that died at start: its EOF below says how
            try:
                child.stdin.write(pickle.dumps(args))
            finally:
                child.stdin.close()
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not receive.poll(wait):
                raise ServiceError(f"media conversion timed out after {timeout:g} s", retryable=True,
                                   code="Timeout")
            try:
                message = receive.recv()
            except EOFError:
                code = child.wait()
                how = f"signal {-code}" if code < 0 else f"exit status {code}"
                raise MediaError(f"the media worker died on this file ({how})") from None
            if message[0] == "progress":
                if progress:
                    progress(message[1], message[2])
                continue
            answered = True
            if message[0] == "ok":
                return message[1]
            _, media, text, retryable = message
            raise MediaError(text) if media else ServiceError(text, retryable=retryable)
    finally:
        receive.close()
        if not answered:
            child.kill()  # timed out, or the caller was interrupted
        child.wait()


def main(fd: int) -> None:
    from .job import run

    conn = Connection(fd)
    args = pickle.load(sys.stdin.buffer)

    def progress(done, total):
        conn.send(("progress", done, total))

    try:
        conn.send(("ok", run(*args, progress)))
    except AutoanimError as exc:
        conn.send(("error", isinstance(exc, MediaError), exc.message, exc.retryable))
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error: not the media's fault
        conn.send(("error", False, f"engine failed: {type(exc).__name__}: {exc}", False))
    finally:
        conn.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
