"""The service layer: what the two functions do, on the ports only.

``handle_upload``: OSS events → rules → plan → claim → submit.
``handle_result``: an IMM task result → manifest, status tag, log line (or a
bounded resubmit for a retryable failure).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from . import log, planner, rules
from .claims import Claim, ClaimRecord, Claims
from .config import Settings
from .convert_request import ConvertRequest
from .errors import AutoanimError, NotFound, RuleError, ServiceError, TooLarge
from .events import ImmTaskResult, OssBatch, OssRecord
from .fc_events import iso_ms
from .planner import PlannedTask, SourceObject
from .ports import MediaService, ObjectInfo, ObjectStore, StartPicker

STATUS_TAG = "autoanim-status"
REJECTED_SUFFIX = ".rejected.json"
# IMM result codes worth a resubmit (transient on IMM's side).
RETRYABLE_TASK_CODES = ("InternalError", "ServiceUnavailable", "Throttling", "RequestTimeout", "Timeout")


@dataclass
class App:
    """What the handlers run on; built by ``bootstrap`` (the composition root)."""

    settings: Settings
    store: ObjectStore
    media: MediaService
    clock: Callable[[], float] = time.time
    # Picks the start of ``start: auto`` rules where the tiles can be made at upload time (the local
    # backend); None: such rules are refused by the planner until the IMM probe step is wired in.
    starts: StartPicker | None = None

    @property
    def claims(self) -> Claims:
        return Claims(self.store, timeout=self.settings.claim_timeout, clock=self.clock)


@dataclass
class UploadReport:
    submitted: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    retry: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class RetryLater(ServiceError):
    """Raised after every entry was handled, when some entry failed retryably."""

    code = "RetryLater"

    def __init__(self, report: UploadReport, first: AutoanimError):
        super().__init__(f"{len(report.retry)} entr{'y' if len(report.retry) == 1 else 'ies'} to retry: "
                         f"{first.message}", retryable=True)
        self.report = report


# --- upload ------------------------------------------------------------------------------


def handle_upload(app: App, batch: OssBatch) -> UploadReport:
    """Handle every entry; permanent errors are recorded, retryable ones raised at the end."""
    report = UploadReport()
    for error in batch.errors:
        report.rejected.append(log.event("event.rejected", index=error.index, reason=error.reason))
    first_retryable: AutoanimError | None = None
    for index, record in batch.records:
        try:
            _handle_record(app, record, report)
        except Exception as exc:  # noqa: BLE001 - one entry's failure must not lose the others
            if not isinstance(exc, AutoanimError):  # a bug or an unmapped vendor error: retry, never drop
                log.event("upload.error", 40, index=index, error=type(exc).__name__, reason=str(exc)[:300])
                exc = ServiceError(f"unexpected {type(exc).__name__}: {str(exc)[:200]}", retryable=True,
                                   code="Unexpected")
            where = {"index": index, "bucket": record.bucket, "key": record.key, "code": exc.code}
            if exc.retryable:
                first_retryable = first_retryable or exc
                report.retry.append(log.event("upload.retry", 30, **where, reason=exc.message))
            else:
                report.rejected.append(log.event("upload.rejected", 30, **where, reason=exc.message))
                _record_rejection(app, record, exc)
    if first_retryable is not None:
        raise RetryLater(report, first_retryable)
    return report


def _skip(report: UploadReport, record: OssRecord, reason: str) -> None:
    report.skipped.append(log.event("upload.skipped", bucket=record.bucket, key=record.key,
                                    event_name=record.event_name, reason=reason))


def _handle_record(app: App, record: OssRecord, report: UploadReport) -> None:
    settings = app.settings
    if not record.creates_object:
        return _skip(report, record, f"event kind {record.event_name} does not create a complete object")
    if planner.is_ours(record.key, settings):
        return _skip(report, record, "autoanim's own output (loop guard)")
    if planner.is_sidecar_key(record.key):
        video_key = record.key[: -len(rules.SIDECAR_SUFFIX)]
        if not planner.is_video_key(video_key):
            return _skip(report, record, "sidecar of something that is not a video")
        video = locate_object(app.store, record.bucket, video_key)
        if video is None:
            return _skip(report, record, "sidecar uploaded before its video: the video's upload will convert")
    elif planner.is_video_key(record.key):
        video = locate_object(app.store, record.bucket, record.key)
        if video is None:
            return _skip(report, record, "object no longer exists")
    else:
        return _skip(report, record, "not a video (by extension)")

    if planner.is_ours(video.key, settings):  # the key as it really is (it may have arrived encoded)
        return _skip(report, record, "autoanim's own output (loop guard)")
    source = SourceObject(bucket=video.bucket, key=video.key, etag=video.etag)
    clips = rules_for(app, source)
    if isinstance(clips, str):
        return _skip(report, record, clips)
    if app.starts is not None:
        clips = [app.starts.choose(source, c) if c.start_auto and c.auto is None else c for c in clips]
    retry: AutoanimError | None = None
    for task in planner.plan(source, clips, settings):
        try:
            submit(app, task, report)
        except AutoanimError as exc:  # one clip's failure does not stop the video's other clips
            if exc.retryable:
                retry = retry or exc
                continue
            report.rejected.append(log.event("upload.rejected", 30, source=source.uri, output=task.output_uri,
                                             code=exc.code, reason=exc.message))
    if retry is not None:
        raise retry


def locate_object(store: ObjectStore, bucket: str, key: str) -> ObjectInfo | None:
    """Head the object an event names. The one place where keys are decoded.

    FC's samples carry plain keys; if a key arrived URL-encoded, the plain key is
    absent and its decoded form is tried (``+`` stays ``+``).
    """
    try:
        return store.head(bucket, key)
    except NotFound:
        decoded = unquote(key)
        if decoded == key:
            return None
    try:
        return store.head(bucket, decoded)
    except NotFound:
        return None


def read_sidecar(app: App, source: SourceObject) -> list[rules.RuleSpec] | None:
    key = source.key + rules.SIDECAR_SUFFIX
    where = f"sidecar oss://{source.bucket}/{key}"
    limit = app.settings.limits.max_sidecar_bytes
    try:
        raw = app.store.read(source.bucket, key, limit)
    except NotFound:
        return None
    except TooLarge as exc:
        raise RuleError(where, "size", "over the limit", f"at most {limit} bytes") from exc
    return rules.parse_sidecar(raw, where, app.settings.limits)


def rules_for(app: App, source: SourceObject) -> list[rules.Rule] | str:
    """The clips for a video by precedence (sidecar > tags > default profile), or why none."""
    settings = app.settings
    tag_source = f"tags of {source.uri}"
    raw_tags = app.store.get_tags(source.bucket, source.key)
    if raw_tags.get("anim") == "off":  # the opt-out wins over everything, even a sidecar
        return "anim=off"
    default = None if settings.default_profile == "none" else settings.default_profile
    sidecar = read_sidecar(app, source)
    if sidecar is not None:  # the sidecar wins: the tags' anim-* fields are not used, so not judged
        where = f"sidecar {source.uri}{rules.SIDECAR_SUFFIX}"
        return rules.resolve(sidecar, origin="sidecar", source=where, settings=settings, base_profile=default)
    tags = rules.parse_tags(raw_tags, tag_source, settings.limits)
    if tags.mode == "sidecar":
        return "anim=sidecar: waiting for the sidecar's upload"
    if tags.spec is not None:
        return rules.resolve([tags.spec], origin="tags", source=tag_source, settings=settings,
                             base_profile=default)
    if default is None:
        return "no rules and DEFAULT_PROFILE=none (conversion is opt-in)"
    return rules.resolve([rules.RuleSpec()], origin="default", source=f"DEFAULT_PROFILE for {source.uri}",
                         settings=settings, base_profile=default)


def submit(app: App, task: PlannedTask, report: UploadReport) -> None:
    """Claim, then submit once; a duplicate delivery finds the claim and does nothing."""
    claims = app.claims
    claim = claims.acquire(task)
    where = {"source": task.source.uri, "output": task.output_uri, "idempotency_key": task.idempotency_key}
    if claim is None:
        report.duplicates.append(log.event("upload.duplicate", **where))
        return
    try:
        task_id = app.media.submit(task.request)
    except AutoanimError as exc:
        claim = claims.update(claim, state="released" if exc.retryable else "rejected", error=exc.as_dict())
        if not exc.retryable:  # IMM refused this clip for good: its manifest says why
            _put_json(app, task.output_bucket, task.manifest_key,
                      _manifest(app, claim.record, status="Failed", code=exc.code, message=exc.message))
        raise
    claims.submitted(claim, task_id)
    report.submitted.append(log.event("upload.submitted", **where, task_id=task_id,
                                      billed_frames=task.billed_frames, attempt=claim.record.attempt))


def _record_rejection(app: App, record: OssRecord, exc: AutoanimError) -> None:
    """A permanent failure gets a record beside where its outputs would be; never raises."""
    if not planner.is_video_key(record.key) and not planner.is_sidecar_key(record.key):
        return
    key = f"{app.settings.output_prefix}{record.key}{REJECTED_SUFFIX}"
    body = {"source": f"oss://{record.bucket}/{record.key}", "etag": record.etag, "status": "Rejected",
            **exc.as_dict(), "recorded_at": iso_ms(app.clock())}
    try:
        _put_json(app, app.settings.output_bucket or record.bucket, key, body)
    except AutoanimError as put_error:
        log.event("upload.rejection_not_recorded", 40, key=key, reason=put_error.message)


# --- results -----------------------------------------------------------------------------


def handle_result(app: App, result: ImmTaskResult) -> dict[str, Any]:
    """Record one IMM task result. Unknown and duplicate notifications change nothing."""
    base = {"task_id": result.task_id, "status": result.status}
    claim_uri = _claim_uri(result.user_data)
    if claim_uri is None:
        return log.event("result.unknown", 30, **base, reason="no autoanim UserData in the notification")
    bucket, key = claim_uri
    claims = app.claims
    record = claims.load(bucket, key)
    if record is None:
        return log.event("result.unknown", 30, **base, reason=f"no claim at oss://{bucket}/{key}")
    if not record.task_id and record.state in ("claimed", "released"):
        # IMM accepted the task but the invocation died before recording it: adopt it, so a
        # takeover of the claim finds it done instead of submitting a second task.
        record = record.model_copy(update={"task_id": result.task_id, "task_ids": [result.task_id]})
    if result.task_id != record.task_id:
        return log.event("result.stale", 30, **base, current_task=record.task_id,
                         reason="not the claim's current task (resubmitted, or not ours)")
    if record.state == "done":
        return log.event("result.duplicate", **base, reason="already recorded")
    claim = Claim(bucket=bucket, key=key, record=record)
    if result.status == "Running":
        return log.event("result.running", **base)
    if result.status == "Failed" and _retryable_code(result.code) and record.resubmits < app.settings.max_resubmits:
        return _resubmit(app, claim, result)
    out_uri = f"oss://{record.output_bucket}/{record.output_key}"
    manifest = _manifest(app, record, status=result.status, code=result.code, message=result.message,
                         task_id=result.task_id, task_start=result.start_time, task_end=result.end_time,
                         reported=next((a for a in result.animations() if a.get("URI") == out_uri), None))
    _record_outcome(app, claim, manifest)
    return log.event("result.recorded", 20 if manifest["status"] == "Succeeded" else 30, **base,
                     code=result.code or None, message=result.message or None, source=manifest["source"]["uri"],
                     output=manifest["output"]["uri"], bytes=manifest["output"]["bytes"],
                     billed_frames=record.billed_frames)


def _claim_uri(user_data: str) -> tuple[str, str] | None:
    try:
        data = json.loads(user_data) if user_data else None
    except json.JSONDecodeError:
        return None
    uri = data.get("claim") if isinstance(data, dict) and data.get("v") == 1 else None
    if not isinstance(uri, str) or not uri.startswith("oss://") or "/" not in uri[6:]:
        return None
    bucket, key = uri[6:].split("/", 1)
    return bucket, key


def _retryable_code(code: str) -> bool:
    return any(code == c or code.startswith(c + ".") for c in RETRYABLE_TASK_CODES)


def _resubmit(app: App, claim: Claim, result: ImmTaskResult) -> dict[str, Any]:
    """A transient IMM failure: the same request again, at most ``max_resubmits`` times."""
    record = claim.record
    attempt = record.resubmits + 1
    base = {"task_id": result.task_id, "status": result.status, "code": result.code}
    # Two copies of one notification must not resubmit twice: the same atomic create as a takeover.
    if not app.store.create(claim.bucket, f"{claim.key}.resubmit{attempt}", b"{}"):
        return log.event("result.duplicate", **base, reason=f"resubmit {attempt} already made")
    try:
        task_id = app.media.submit(ConvertRequest.model_validate(record.request))
    except AutoanimError as exc:
        if exc.retryable:  # raised: the MNS trigger delivers the notification again
            raise
        manifest = _manifest(app, record, status="Failed", code=exc.code, message=exc.message,
                             task_id=result.task_id, task_start=result.start_time, task_end=result.end_time)
        _record_outcome(app, claim, manifest)
        return log.event("result.recorded", 30, **base, reason=f"resubmit refused: {exc.message}")
    app.claims.update(claim, task_id=task_id, task_ids=[*record.task_ids, task_id], resubmits=attempt,
                      error={"code": result.code, "message": result.message})
    return log.event("result.resubmitted", 30, **base, new_task_id=task_id, resubmits=attempt)


def _manifest(app: App, record: ClaimRecord, *, status: str, code: str, message: str, task_id: str = "",
              task_start: str = "", task_end: str = "", reported: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest beside an output: what was asked, what happened, what it cost."""
    out_uri = f"oss://{record.output_bucket}/{record.output_key}"
    size = None
    if status == "Succeeded":
        try:
            size = app.store.head(record.output_bucket, record.output_key).size
        except NotFound:
            status, code = "Failed", "OutputMissing"
            message = f"IMM reported success but {out_uri} does not exist"
    reported = reported or {}
    return {
        "status": status,
        "code": code,
        "message": message,
        "task_id": task_id,
        "task_ids": record.task_ids,
        "source": {"uri": f"oss://{record.source['bucket']}/{record.source['key']}", "etag": record.source["etag"]},
        "rule": record.rule,
        "output": {
            "uri": out_uri,
            "bytes": size,
            "frames": reported.get("Frames"),
            "width": reported.get("Width"),
            "height": reported.get("Height"),
        },
        "billed_frames_estimate": record.billed_frames,
        "timings": {
            "claimed_at": iso_ms(record.claimed_at),
            "submitted_at": iso_ms(record.submitted_at) if record.submitted_at else None,
            "task_start": task_start or None,
            "task_end": task_end or None,
            "recorded_at": iso_ms(app.clock()),
        },
        "request": record.request,
    }


def _record_outcome(app: App, claim: Claim, manifest: dict[str, Any]) -> None:
    """Write the manifest beside the output, then mark the claim done (and tag the source if asked)."""
    record = claim.record
    _put_json(app, record.output_bucket, record.output_key + planner.MANIFEST_SUFFIX, manifest)
    app.claims.update(claim, state="done")
    if app.settings.status_tag:
        _tag_source(app, record, manifest["status"])


def _put_json(app: App, bucket: str, key: str, body: dict[str, Any]) -> None:
    app.store.put(bucket, key, json.dumps(body, ensure_ascii=False, indent=2).encode(), "application/json")


def _tag_source(app: App, record: ClaimRecord, status: str) -> None:
    """Merge ``autoanim-status`` into the source's tags, within OSS's 10-tag limit."""
    bucket, key = record.source["bucket"], record.source["key"]
    try:
        tags = app.store.get_tags(bucket, key)
        if STATUS_TAG not in tags and len(tags) >= rules.MAX_TAGS:
            log.event("result.status_tag_skipped", 30, source=f"oss://{bucket}/{key}",
                      reason=f"the object already has {len(tags)} tags (OSS allows {rules.MAX_TAGS})")
            return
        app.store.put_tags(bucket, key, {**tags, STATUS_TAG: status.lower()})
    except AutoanimError as exc:  # the manifest is the record; a tag that cannot be written is only logged
        log.event("result.status_tag_skipped", 30, source=f"oss://{bucket}/{key}", reason=exc.message)
