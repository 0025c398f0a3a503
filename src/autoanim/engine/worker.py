"""Run one job in a forked child, killed on timeout: a hostile file can crash or hang only the child.

Forked from the caller when it has one thread, else from a fork server that has imported PyAV (forking a
process with threads could copy a lock another thread holds); progress and the outcome come over a pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
import uuid
from pathlib import Path

from ..errors import AutoanimError, MediaError, ServiceError

# What the fork server imports once, so that a forked job starts warm.
PRELOAD = ["av", "numpy", "autoanim.convert_request", "autoanim.engine.job"]


def start_method() -> str:
    """``fork`` from a single-threaded caller, else ``forkserver``."""
    return "fork" if threading.active_count() == 1 else "forkserver"


def mp_context(method: str):
    """The multiprocessing context of ``method``; a fork server preloads ``PRELOAD``."""
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(PRELOAD)
    return context


def produce(job, src, out, args: tuple, progress, timeout: float | None, isolate: bool):
    """``job(src, tmp, *args, progress)``, in a child when ``isolate``; ``tmp`` becomes ``out`` when done."""
    src, out = os.fspath(src), Path(out)
    if not os.path.isfile(src):
        raise MediaError(f"no such file: {src}")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        if isolate:
            result = run_isolated(job, (src, str(tmp), *args), progress, timeout)
        else:
            result = job(src, str(tmp), *args, progress)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def run_isolated(target, args, progress, timeout: float | None, method: str | None = None):
    """``target(*args, progress)`` in a child process: its result, or its error raised here."""
    context = mp_context(method or start_method())
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, target, args), name="autoanim-media-worker", daemon=True)
    try:
        child.start()
    except OSError as exc:
        receive.close()
        raise ServiceError(f"cannot start the media worker: {exc}", retryable=True, code="WorkerStart") from exc
    finally:
        send.close()  # the child holds the only writing end: its exit is our EOF
    deadline = None if timeout is None else time.monotonic() + timeout
    answered = False
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not receive.poll(wait):
                raise ServiceError(f"the media worker timed out after {timeout:g} s", retryable=True,
                                   code="Timeout")
            try:
                message = receive.recv()
            except EOFError:
                child.join()
                code = child.exitcode
                how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
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
        child.join()
        child.close()


def _child(conn, target, args) -> None:
    def progress(done, total):
        conn.send(("progress", done, total))

    try:
        conn.send(("ok", target(*args, progress)))
    except AutoanimError as exc:
        conn.send(("error", isinstance(exc, MediaError), exc.message, exc.retryable))
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error: not the media's fault
        conn.send(("error", False, f"engine failed: {type(exc).__name__}: {exc}", False))
    finally:
        conn.close()
        sys.stdout.flush()
