"""The offline workflow: a folder is the bucket and the engine does what IMM does.

``LocalApp`` is the local backend's typed app (``bootstrap.build_local`` makes
it); ``upload`` puts a file as OSS would and runs the upload function on its
event; ``watch`` turns every new file under the folder into an upload. The
command line, the demo and the tests use these; none of it runs in FC.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from . import handlers, log, objects, rules
from .errors import AutoanimError, ConfigError, MediaError, RuleError, ServiceError
from .fc_events import oss_event
from .reports import UploadReport
from .service import App

if TYPE_CHECKING:
    from .adapters.local_media import LocalMediaService
    from .adapters.local_store import LocalObjectStore


@dataclass
class LocalApp(App):
    """The app of the local backend: a folder store, and a media service with a lifecycle."""

    store: LocalObjectStore
    media: LocalMediaService

    def settle(self) -> None:
        self.media.wait()

    def close(self) -> None:
        self.media.close()


class Converted(BaseModel):
    """One output of a local upload, as its manifest tells."""

    output: str  # the file, or its URI while it has no manifest yet
    status: str
    manifest: str | None = None
    code: str = ""
    message: str = ""
    bytes: int | None = None
    billed_frames: int | None = None


class LocalUpload(UploadReport):
    """The upload function's report on the local upload, and what came of each clip."""

    upload: str
    results: list[Converted]

    @property
    def exit_code(self) -> int:
        """0 done, 2 a refused rule, 3 media that cannot be converted, 4 another failure."""
        if self.rejected:
            return RuleError.exit_code
        codes = {r.code for r in self.results if r.status != "Succeeded"}
        return MediaError.exit_code if MediaError.code in codes else ServiceError.exit_code if codes else 0


def upload(app: LocalApp, src: Path, bucket: str, key: str, tags: dict[str, str]) -> LocalUpload:
    """Put a file in a local bucket as OSS would, run the upload function on its event, wait for the results."""
    rules.check_tags(tags, "--tags")
    if not src.is_file():
        raise ConfigError(f"{src}: no such file")
    info = app.store.put_file(bucket, key, src, tags=tags)
    report = handlers.upload(app, oss_event(bucket, key, size=info.size, etag=info.etag))
    app.settle()
    return LocalUpload(upload=objects.uri(bucket, key), **dict(report), results=results(app, report))


def results(app: LocalApp, report: UploadReport) -> list[Converted]:
    """The manifests of the outputs an upload submitted (or found made by an earlier run)."""
    found = []
    for clip in report.submitted + report.duplicates:
        out = objects.ObjectRef.parse(clip.output)
        bucket, key, manifest_key = out.bucket, out.key, out.key + objects.MANIFEST_SUFFIX
        try:
            manifest = json.loads(app.store.read(bucket, manifest_key, 1 << 20))
        except AutoanimError:
            found.append(Converted(output=clip.output, status="no manifest yet"))
            continue
        found.append(Converted(output=str(app.store.path(bucket, key)), status=manifest["status"],
                               manifest=str(app.store.path(bucket, manifest_key)), code=manifest["code"],
                               message=manifest["message"], bytes=manifest["output"]["bytes"],
                               billed_frames=manifest["billed_frames_estimate"]))
    return found


def watch(app: LocalApp, *, grace: float, stop: threading.Event | None = None,
          ready: threading.Event | None = None) -> None:
    """Every new complete file under the local root becomes an upload event (blocks until ``stop``)."""
    from .watch import watch as watch_folder

    handle = _sidecar_grace(lambda event: handlers.upload(app, event), app, grace)
    watch_folder(app.store, handle, stop=stop, ready=ready, ignore_prefixes=(app.settings.output_prefix,),
                 on_error=lambda exc: log.event("watch.error", 40, reason=str(exc)))


def _sidecar_grace(handle, app: LocalApp, grace: float):
    """A dropped video waits ``grace`` seconds for its sidecar before it is handled.

    Files dropped in a folder carry no tags, so a video that arrives before its
    sidecar would otherwise get the default profile as well. With the grace, either
    order gives exactly the sidecar's clips (the sidecar's own event then finds the
    same claims). Uploads through OSS say the same with the tag ``anim=sidecar``.
    """
    from .events import parse_oss_event

    def run(event: bytes) -> None:
        try:
            handle(event)
        except AutoanimError as exc:
            log.event("watch.error", 40, reason=exc.message, retryable=exc.retryable)

    def on_event(event: bytes) -> None:
        records = parse_oss_event(event).records
        waits = any(objects.is_video_key(r.key) and not app.store.exists(r.bucket, r.key + objects.SIDECAR_SUFFIX)
                    for _, r in records)
        if waits and grace > 0:
            timer = threading.Timer(grace, run, args=(event,))
            timer.daemon = True
            timer.start()
        else:
            run(event)

    return on_event
