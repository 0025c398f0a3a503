"""Run one job in a forked child, killed on timeout: a hostile file can crash or hang only the child.

Forked from the caller when it has one thread, else from a fork server that has imported PyAV (forking a
process with threads could copy a lock another thread holds); progress and the outcome come over a pipe.
"""

from __future__ import annotations

import contextlib
import importlib
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


def named(job):
    """``job`` itself, or the function a ``"module:function"`` string names (a caller that sends its job to a
    worker by name need not import the job's module)."""
    if not isinstance(job, str):
        return job
    module, name = job.split(":")
    return getattr(importlib.import_module(module), name)


def produce(job, src, out, args: tuple, progress, timeout: float | None, isolate: bool, worker=None):
    """``job(src, tmp, *args, progress)`` (``job``: a function, or ``named``'s string), in a child when
    ``isolate`` (``worker``'s, if started already); ``tmp`` becomes ``out`` when done."""
    src, out = os.fspath(src), Path(out)
    if not os.path.isfile(src):
        raise MediaError(f"no such file: {src}")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        if isolate:
            with contextlib.nullcontext(worker) if worker else Worker() as child:  # its maker closes it
                result = child.run(job, (src, str(tmp), *args), progress, timeout)
        else:
            result = named(job)(src, str(tmp), *args, progress)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return result


class Worker(contextlib.AbstractContextManager):
    """A child process for one job, started when made and given the job by ``run``; killed on timeout.

    Made before the job is known (``ahead``: the source, ``autoanim convert`` makes one first thing), the child
    imports the engine and opens the source while the caller reads its settings and rules, on the other core.
    """

    def __init__(self, ahead: str | None = None):
        context = mp_context(start_method())
        self.results, send = context.Pipe(duplex=False)
        jobs, self.jobs = context.Pipe(duplex=False)
        self.child = context.Process(target=_child, args=(jobs, send, ahead, (self.jobs, self.results)),
                                     name="autoanim-media-worker", daemon=True)
        self.answered = False
        try:
            self.child.start()
        except OSError as exc:
            self.results.close()
            self.jobs.close()
            raise ServiceError(f"cannot start the media worker: {exc}", retryable=True, code="WorkerStart") from exc
        finally:
            send.close()  # the child holds the only writing end: its exit is our EOF
            jobs.close()

    def __exit__(self, *exc) -> None:
        self.results.close()
        self.jobs.close()
        if not self.answered:
            self.child.kill()  # timed out, the caller was interrupted, or no job came
        self.child.join()
        self.child.close()

    def run(self, target, args, progress, timeout: float | None):
        """``target(*args, progress)`` in the child (``target``: a function, or ``named``'s string): its result,
        or its error raised here."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with contextlib.suppress(OSError):  # the child is gone: its exit status is read below
            self.jobs.send((target, args))
        self.jobs.close()
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.results.poll(wait):
                raise ServiceError(f"the media worker timed out after {timeout:g} s", retryable=True,
                                   code="Timeout")
            try:
                message = self.results.recv()
            except EOFError:
                self.child.join()
                code = self.child.exitcode
                how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                raise MediaError(f"the media worker died on this file ({how})") from None
            if message[0] == "progress":
                if progress:
                    progress(message[1], message[2])
                continue
            self.answered = True
            if message[0] == "ok":
                return message[1]
            _, media, text, retryable = message
            raise MediaError(text) if media else ServiceError(text, retryable=retryable)


def _child(jobs, conn, ahead, callers) -> None:
    for end in callers:  # the caller's ends, copied by a fork: closed, so the caller's death is our EOF
        end.close()

    def progress(done, total):
        conn.send(("progress", done, total))

    try:
        if ahead is not None:  # meanwhile: the source opened, the conversion's code imported
            from .source import open_ahead

            open_ahead(ahead)
            from . import job  # noqa: F401
        try:
            target, args = jobs.recv()
        except EOFError:  # no job came
            return
        conn.send(("ok", named(target)(*args, progress)))
    except AutoanimError as exc:
        conn.send(("error", isinstance(exc, MediaError), exc.message, exc.retryable))
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error: not the media's fault
        conn.send(("error", False, f"engine failed: {type(exc).__name__}: {exc}", False))
    finally:
        conn.close()
        sys.stdout.flush()
