"""The offline workflow (a folder is the bucket, the engine does what IMM does): ``LocalApp``, a local
upload and its results, a watched folder. Used by the command line, the demo and the tests; never in FC."""

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
    """Put a file in a local bucket as OSS would, run the upload function on its event, wait for results."""
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
    """Every new complete file under the local root becomes an upload event (blocks until ``stop``).

    Dropped files carry no tags, so a video waits ``grace`` seconds for its sidecar (else it would get the
    default profile as well); either order then gives exactly the sidecar's clips (OSS: ``anim=sidecar``)."""
    from .events import parse_oss_event
    from .watch import watch as watch_folder

    def upload(event: bytes) -> None:
        try:
            handlers.upload(app, event)
        except AutoanimError as exc:
            log.event("watch.error", 40, reason=exc.message, retryable=exc.retryable)

    def waits(bucket: str, key: str) -> bool:
        return objects.is_video_key(key) and not app.store.exists(bucket, key + objects.SIDECAR_SUFFIX)

    def on_event(event: bytes) -> None:
        if grace > 0 and any(waits(r.bucket, r.key) for _, r in parse_oss_event(event).records):
            timer = threading.Timer(grace, upload, args=(event,))
            timer.daemon = True
            timer.start()
        else:
            upload(event)

    watch_folder(app.store, on_event, stop=stop, ready=ready, ignore_prefixes=(app.settings.output_prefix,),
                 on_error=lambda exc: log.event("watch.error", 40, reason=str(exc)))
