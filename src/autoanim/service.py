"""What the two functions do, on the ports only: ``handle_upload`` (events → rules → plan → claim →
submit) and ``handle_result`` (a task result → manifest, or the next attempt), under ``claims``' protocol."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from . import log, objects, planner, rules, targets
from .claims import Claim, Claims, Held, Outcome, ScaleRecord, TaskRecord, factor_at
from .config import Settings
from .errors import AutoanimError, NotFound, RuleError, ServiceError, TooLarge
from .events import ImmTaskResult, OssBatch, OssRecord
from .fc_events import iso_ms
from .manifest import Attempt, Manifest, OutputInfo, SourceRef, Timings
from .planner import PROBE, PlannedTask, TaskUserData
from .ports import MediaService, ObjectInfo, ObjectStore, StartPicker
from .reports import Clip, Problem, ResultEvent, ResultReport, Skipped, UploadReport
from .rules import AutoStart

STATUS_TAG = "autoanim-status"
# IMM result codes (and their sub-codes, ``Code.Detail``) worth a resubmit: transient on IMM's side.
RETRYABLE_TASK_CODES = ("InternalError", "ServiceUnavailable", "Throttling", "RequestTimeout", "Timeout")
# FC ends an invocation at its timeout; a lease lasts past that by this much (clock skew between instances).
LEASE_MARGIN = 10.0
# After an ambiguous submit, wait this long before ListTasks is asked in the same invocation; with less
# budget left than this plus a call, the lease is released and the redelivery looks the task up.
LOOKUP_DELAY = 2.0


@dataclass
class App(contextlib.AbstractContextManager):
    """What the handlers run on; built by ``bootstrap`` (the composition root)."""

    settings: Settings
    store: ObjectStore
    media: MediaService
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    # Seconds left before this invocation must answer (FC's timeout less a margin); None: unbounded.
    time_left: Callable[[], float] | None = None
    # Seconds between ``time_left()`` reaching 0 and FC ending the invocation.
    kill_margin: float = 5.0
    # Picks ``start: auto`` starts at upload time (the local backend); None: the planner plans a probe.
    starts: StartPicker | None = None

    @property
    def claims(self) -> Claims:
        # A lease taken now is held until FC has surely ended this invocation.
        if self.time_left is None:
            lease = self.settings.claim_timeout
        else:
            lease = max(0.0, self.time_left()) + self.kill_margin + LEASE_MARGIN
        return Claims(self.store, lease, self.time_left, self.clock, self.sleep)

    # In the cloud IMM does the work elsewhere: nothing to wait for or close (``LocalApp`` runs it here).
    def settle(self) -> None:
        """Returns once every task submitted through this app has ended and its result is recorded."""

    def close(self) -> None:
        """Settles, then releases what the app holds."""

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RetryLater(ServiceError):
    """Raised after every entry was handled, when some entry failed retryably."""

    code = "RetryLater"

    def __init__(self, report: UploadReport, first: AutoanimError):
        super().__init__(f"{len(report.retry)} entr{'y' if len(report.retry) == 1 else 'ies'} to retry: "
                         f"{first.message}", retryable=True)
        self.report = report


def handle_upload(app: App, batch: OssBatch) -> UploadReport:
    """Handle every entry; permanent errors are recorded, retryable ones raised at the end."""
    report = UploadReport()
    for index, reason in batch.errors:
        _add(report.rejected, "event.rejected", Problem(index=index, reason=reason, code="InvalidEvent"))
    first_retryable: AutoanimError | None = None
    for index, record in batch.records:
        try:
            _handle_record(app, record, report)
        except Exception as exc:  # noqa: BLE001 - one entry's failure must not lose the others
            if not isinstance(exc, AutoanimError):  # a bug or an unmapped vendor error: retry, never drop
                log.event("upload.error", 40, index=index, error=type(exc).__name__, reason=str(exc)[:300])
                exc = ServiceError(f"unexpected {type(exc).__name__}: {str(exc)[:200]}", retryable=True,
                                   code="Unexpected")
            where = {"index": index, "bucket": record.bucket, "key": record.key}
            if not exc.retryable:
                _add(report.rejected, "upload.rejected", Problem(**where, code=exc.code, reason=exc.message), 30)
                exc = _record_rejection(app, record, exc)
            if exc is not None:  # retryable: the entry's own failure, or its record's
                first_retryable = first_retryable or exc
                _add(report.retry, "upload.retry", Problem(**where, code=exc.code, reason=exc.message), 30)
    if first_retryable is not None:
        raise RetryLater(report, first_retryable)
    return report


def _add(items: list, kind: str, item: BaseModel, level: int = logging.INFO) -> None:
    items.append(item)
    log.report(kind, item, level)


def _handle_record(app: App, record: OssRecord, report: UploadReport) -> None:
    tasks = _tasks_of(app, record)
    if isinstance(tasks, str):
        _add(report.skipped, "upload.skipped",
             Skipped(bucket=record.bucket, key=record.key, event_name=record.event_name, reason=tasks))
        return
    retry: AutoanimError | None = None
    for task in tasks:
        try:
            submit(app, task, report)
        except AutoanimError as exc:  # one clip's failure does not stop the video's other clips
            if exc.retryable:
                retry = retry or exc
            else:
                problem = Problem(source=task.source.uri, output=task.output_uri, code=exc.code, reason=exc.message)
                _add(report.rejected, "upload.rejected", problem, 30)
    if retry is not None:
        raise retry


def _tasks_of(app: App, record: OssRecord) -> list[PlannedTask] | str:
    """The clips an event's object makes, or why it makes none."""
    if not record.creates_object:
        return f"event kind {record.event_name} does not create a complete object"
    if objects.is_ours(record.key, app.settings.output_prefix):
        return "autoanim's own output (loop guard)"
    sidecar = objects.is_sidecar_key(record.key)
    video_key = objects.video_of_sidecar(record.key) if sidecar else record.key
    if not objects.is_video_key(video_key):
        return "sidecar of something that is not a video" if sidecar else "not a video (by extension)"
    video = locate_object(app.store, record.bucket, video_key)
    if video is None:
        return "sidecar uploaded before its video: the video's upload will convert" if sidecar \
            else "object no longer exists"
    return plan_video(app, video)


def plan_video(app: App, video: ObjectInfo, *, sidecar: bool | None = None) -> list[PlannedTask] | str:
    """One existing video's planned tasks, or why none (on_upload's and backfill's one planning path);
    ``sidecar``: whether ``<key>.anim.json`` exists, when a listing knows (None reads it)."""
    if objects.is_ours(video.key, app.settings.output_prefix):  # the key as it really is (it may have arrived encoded)
        return "autoanim's own output (loop guard)"
    source = objects.SourceObject(bucket=video.bucket, key=video.key, etag=video.etag)  # the version claimed
    clips = rules_for(app, source, sidecar=sidecar)
    if isinstance(clips, str):
        return clips
    if app.starts is not None:
        clips = [app.starts.choose(source, c) if c.start_auto and c.auto is None else c for c in clips]
    return planner.plan(source, clips, app.settings)


def locate_object(store: ObjectStore, bucket: str, key: str) -> ObjectInfo | None:
    """Head the object an event names, as delivered or decoded (``objects.key_forms``)."""
    for form in objects.key_forms(key):
        with contextlib.suppress(NotFound):
            return store.head(bucket, form)
    return None


def rules_for(app: App, source: objects.SourceObject, *,
              sidecar: bool | None = None) -> list[rules.Rule] | str:
    """The clips for a video by precedence (sidecar > tags > default profile), or why none."""
    settings = app.settings
    tag_source = f"tags of {source.uri}"
    raw_tags = app.store.get_tags(source.bucket, source.key)
    if raw_tags.get("anim") == "off":  # the opt-out wins over everything, even a sidecar
        return "anim=off"
    default = None if settings.default_profile == "none" else settings.default_profile
    key, limit = source.key + objects.SIDECAR_SUFFIX, settings.limits.max_sidecar_bytes
    where = f"sidecar {objects.uri(source.bucket, key)}"
    try:  # sidecar=False: known absent (a listing), not read
        raw = None if sidecar is False else app.store.read(source.bucket, key, limit)
    except NotFound:
        raw = None
    except TooLarge as exc:
        raise RuleError(where, "size", "over the limit", f"at most {limit} bytes") from exc
    if raw is not None:  # the sidecar wins: the tags' anim-* fields are not used, so not judged
        specs, origin = rules.parse_sidecar(raw, where, settings.limits), "sidecar"
    elif (tags := rules.parse_tags(raw_tags, tag_source, settings.limits)).mode == "sidecar":
        return "anim=sidecar: waiting for the sidecar's upload"
    elif tags.spec is not None:
        specs, origin, where = [tags.spec], "tags", tag_source
    elif default is None:
        return "no rules and DEFAULT_PROFILE=none (conversion is opt-in)"
    else:
        specs, origin, where = [rules.RuleSpec()], "default", f"DEFAULT_PROFILE for {source.uri}"
    return rules.resolve(specs, origin=origin, source=where, settings=settings, base_profile=default)


def submit(app: App, task: PlannedTask, report: UploadReport) -> None:
    """Claim, then submit attempt 0 once; a later delivery finds the claim's task and does nothing."""
    claims = app.claims
    claim, made = claims.open(task)
    clip = Clip(source=task.source.uri, output=task.output_uri, idempotency_key=task.idempotency_key)
    first = task.first_attempt  # the probe of a start: auto clip, else the animation's attempt 0
    if not made and (claims.outcome(claim) is not None or claims.task(claim, first) is not None):
        return _add(report.duplicates, "upload.duplicate", clip)
    held = claims.lease(claim, first)
    if isinstance(held, TaskRecord):  # a holder before us submitted it
        return _add(report.duplicates, "upload.duplicate", clip.model_copy(update={"task_id": held.task_id}))
    recorded = submit_attempt(app, held)
    _add(report.submitted, "upload.submitted", clip.model_copy(
        update={"task_id": recorded.task_id, "how": recorded.how, "billed_frames": task.billed_frames}))


def submit_attempt(app: App, held: Held) -> TaskRecord:
    """Submit one attempt under its lease exactly once and record its task, looked up first when a holder
    before us, or our own ambiguous submit, may have made it. A failure is raised: a retryable one after
    the lease is released, a permanent refusal after it is recorded as the clip's outcome."""
    claims = app.claims
    claim, attempt = held.claim, held.attempt
    after_probe = claim.plan.probe is not None and attempt != PROBE  # the animation of a start: auto clip
    pick = claims.pick(claim) if after_probe else None
    if after_probe and pick is None:
        raise ServiceError(f"{claim.uri}: attempt {attempt} before its probe picked a start", retryable=True)
    request = claim.plan.request_for(attempt, start=pick.start if pick else None,
                                     scale=factor_at(claims.scales(claim, attempt), attempt))
    look_up = held.must_look_up
    for last_try in (False, True):
        looking = look_up
        try:
            task_id = app.media.find_task(request.tags or {}, since=claim.created_at) if look_up else None
            how = "found" if task_id else "submitted"
            looking = False
            task_id = task_id or app.media.submit(request)
            break
        except AutoanimError as exc:
            can_wait = app.time_left is None or app.time_left() > LOOKUP_DELAY + 15.0
            if exc.retryable and exc.ambiguous and not looking and not last_try and can_wait:
                app.sleep(LOOKUP_DELAY)  # give ListTasks time to see a task IMM has just made
                look_up = True
                continue
            if exc.retryable:
                # Clean: IMM refused the submit before acting on it, after any lookup this holder owed.
                claims.release(held, clean=not looking and not exc.ambiguous, error=exc)
                raise
            _record_outcome(app, claim, status="Failed", code=exc.code, message=exc.message, attempt=attempt)
            raise
    try:
        return claims.record_task(claim, attempt, task_id, how, held.lease.reason)
    except AutoanimError:
        claims.release(held, task_id=task_id)  # the next holder takes this task without a lookup
        raise


def _record_rejection(app: App, record: OssRecord, exc: AutoanimError) -> AutoanimError | None:
    """The record of a permanent failure beside its outputs; the store's retryable error if not written."""
    if not objects.is_video_key(record.key) and not objects.is_sidecar_key(record.key):
        return None
    key = f"{app.settings.output_prefix}{record.key}{objects.REJECTED_SUFFIX}"
    body = {"source": objects.uri(record.bucket, record.key), "etag": record.etag, "status": "Rejected",
            **exc.as_dict(), "recorded_at": iso_ms(app.clock())}
    try:
        app.store.put(app.settings.output_bucket or record.bucket, key,
                      json.dumps(body, ensure_ascii=False, indent=2).encode(), "application/json")
    except AutoanimError as put_error:
        log.event("upload.rejection_not_recorded", 40, key=key, reason=put_error.message,
                  retried=put_error.retryable)
        return put_error if put_error.retryable else None
    return None


def handle_result(app: App, result: ImmTaskResult) -> ResultReport:
    """Record one IMM task result. Unknown, stale and duplicate notifications change nothing."""
    base = {"task_id": result.task_id, "status": result.status}
    data = TaskUserData.parse(result.user_data)
    if data is None:
        return _said("unknown", 30, **base, reason="no autoanim UserData in the notification")
    claims = app.claims
    claim = claims.load(*data.claim_location)
    if claim is None:
        return _said("unknown", 30, **base, reason=f"no claim at {data.claim}")
    if claims.outcome(claim) is not None:
        return _said("duplicate", **base, reason="already recorded")
    attempt = data.attempt
    # The attempt's task: recorded by its submit, or adopted here when the submitter died before
    # recording it (the first record made wins, so a late submitter finds this one).
    recorded = claims.task(claim, attempt) or claims.record_task(claim, attempt, result.task_id, "adopted")
    if recorded.task_id != result.task_id:
        return _said("stale", 30, **base, current_task=recorded.task_id,
                     reason=f"not the task of attempt {attempt} of {claim.uri}")
    if result.status == "Running":
        return _said("running", **base)
    if attempt == PROBE:  # score its sheet, then submit the animation from the start it picked
        pick = claims.pick(claim) or claims.record_pick(claim, _score_probe(app, claim, result))
        reason = {"after": "probe", "start": f"{pick.start:g}"}
        return _next_attempt(app, claim, result, 0, reason, note=f"start {pick.start:g} s: {pick.why}")
    retryable = result.code.split(".")[0] in RETRYABLE_TASK_CODES  # a code or one of its sub-codes
    if result.status == "Failed" and retryable and attempt < app.settings.max_resubmits:
        reason = {"code": result.code, "message": result.message[:300]}
        return _next_attempt(app, claim, result, attempt + 1, reason)
    size = None
    if result.status == "Succeeded":
        with contextlib.suppress(NotFound):  # one HEAD: the cap, the manifest (None: IMM wrote nothing)
            size = app.store.head(claim.plan.output_bucket, claim.plan.output_key).size
        over = _over_cap(app, claim, attempt, size) if claim.plan.rule.max_bytes is not None else None
        if over is not None:
            return _next_attempt(app, claim, result, attempt + 1, over.reason())
    manifest = _record_outcome(
        app, claim, status=result.status, code=result.code, message=result.message, attempt=attempt, size=size,
        task_start=result.start_time, task_end=result.end_time,
        reported=next((a for a in result.animations() if a.get("URI") == claim.plan.output_uri), None))
    return _said("recorded", 20 if manifest.status == "Succeeded" else 30, **base, code=result.code or None,
                 message=result.message or None, source=manifest.source.uri, output=manifest.output.uri,
                 bytes=manifest.output.bytes, billed_frames=manifest.billed_frames_estimate)


def _said(event: ResultEvent, level: int = logging.INFO, **fields: Any) -> ResultReport:
    report = ResultReport(event=event, **fields)
    log.report(f"result.{event}", report, level)
    return report


def _score_probe(app: App, claim: Claim, result: ImmTaskResult) -> AutoStart:
    """The start a probe's sheet picks; a failed probe or an unusable sheet starts at 0, saying why."""
    from . import activity, probe  # only a start: auto clip's result needs them (kept off the cold start)

    sprite = claim.plan.probe.sprite
    if result.status != "Succeeded":
        why = f"failed ({result.code}: {result.message})"
    else:
        sheet = objects.ObjectRef.parse(sprite.uri)
        try:
            data = app.store.read(sheet.bucket, sheet.key, activity.PARAMS.max_sheet_bytes)
            return probe.score_sheet(data, sprite, claim.plan.rule)
        except (NotFound, TooLarge, ValueError) as exc:
            why = f"sheet could not be used ({exc})"
    return AutoStart(start=0.0, score=0.0, why=f"started at 0 s: the probe {why}", tiles=0,
                     sheet=sprite.uri if result.status == "Succeeded" else "")


def _over_cap(app: App, claim: Claim, attempt: int, size: int | None) -> ScaleRecord | None:
    """Attempt ``attempt + 1``'s scale when this one succeeded over the cap with size retries left (None:
    this output is the outcome). ``size`` was measured before the scale is read: this attempt's output."""
    claims = app.claims
    cap = claim.plan.rule.max_bytes
    decided = claims.scale(claim, attempt + 1)
    if decided is not None or size is None or size <= cap:
        return decided
    scales = claims.scales(claim, attempt)
    if len(scales) >= app.settings.target_retries:
        return None
    factor = (factor_at(scales, attempt) or 1.0) * cap * targets.MARGIN / size
    scale = ScaleRecord(factor=factor, after=attempt, bytes=size, cap=cap, at=app.clock())
    return claims.record_scale(claim, attempt + 1, scale)


def _next_attempt(app: App, claim: Claim, result: ImmTaskResult, attempt: int, reason: dict[str, str],
                  note: str | None = None) -> ResultReport:
    """Lease attempt ``attempt`` and submit it once: the animation after its probe (0), or a resubmit
    after a transient failure or an output over its cap."""
    event: ResultEvent = "submitted" if attempt == 0 else "resubmitted"
    base = {"task_id": result.task_id, "status": result.status, "code": reason.get("code") or result.code or None}
    claims = app.claims
    held = None if claims.task(claim, attempt) is not None else claims.lease(claim, attempt, reason=reason)
    if not isinstance(held, Held):
        return _said("duplicate", **base, reason=f"attempt {attempt} already submitted")
    try:
        recorded = submit_attempt(app, held)
    except AutoanimError as exc:
        if exc.retryable:  # raised: the MNS trigger delivers the notification again
            raise
        what = "the animation" if attempt == 0 else "resubmit"
        return _said("recorded", 30, **base, reason=f"{what} refused: {exc.message}")
    return _said(event, 20 if event == "submitted" else 30, **base, new_task_id=recorded.task_id,
                 attempt=attempt, reason=note)


def _record_outcome(app: App, claim: Claim, *, status: str, code: str, message: str, attempt: int,
                    size: int | None = None, task_start: str = "", task_end: str = "",
                    reported: dict[str, Any] | None = None) -> Manifest:
    """The manifest beside the output, then the claim's outcome, then the status tag if asked; ``size``:
    the output's bytes as measured (a success without them has no output)."""
    plan, claims = claim.plan, app.claims
    reported = reported or {}
    if status == "Succeeded" and size is None:
        status, code = "Failed", "OutputMissing"
        message = f"IMM reported success but {plan.output_uri} does not exist"
    tasks = claims.tasks(claim, attempt)
    pick = claims.pick(claim) if plan.probe is not None else None
    scales = claims.scales(claim, attempt)
    attempts = [_attempt(plan, t, scales) for t in tasks]
    factor = factor_at(scales, attempt)  # a size retry's request, else the plan's
    final = plan.request if factor is None else plan.request_for(attempt, start=pick.start if pick else None,
                                                                  scale=factor)
    cap = plan.rule.max_bytes
    manifest = Manifest(
        status=status, code=code, message=message,
        task_id=tasks[-1].task_id if tasks and tasks[-1].attempt == attempt else "",
        task_ids=[t.task_id for t in tasks],
        attempts=attempts,
        source=SourceRef(uri=plan.source.uri, etag=plan.source.etag),
        rule=(plan.rule.model_copy(update={"auto": pick}) if pick else plan.rule).model_dump(exclude_none=True),
        output=OutputInfo(uri=plan.output_uri, bytes=size, frames=reported.get("Frames"),
                          width=reported.get("Width"), height=reported.get("Height")),
        billed_frames_estimate=sum(a.billed_frames_estimate for a in attempts),
        cap=cap, met=None if cap is None else size is not None and size <= cap,
        given_up=list((plan.rule if factor is None else planner.scaled(plan.rule, factor)).given_up),
        timings=Timings(claimed_at=iso_ms(claim.created_at), task_start=task_start or None,
                        task_end=task_end or None, recorded_at=iso_ms(app.clock())),
        request=final.wire(),
    )
    app.store.put(plan.output_bucket, plan.manifest_key, manifest.dump(), "application/json")
    claims.finish(claim, Outcome(status=status, code=code, message=message, task_id=manifest.task_id,
                                 attempt=attempt, at=app.clock()))
    if app.settings.status_tag:
        _tag_source(app, plan.source, status)
    return manifest


def _attempt(plan: PlannedTask, task: TaskRecord, scales: dict[int, ScaleRecord]) -> Attempt:
    if task.attempt == PROBE:  # a sprite sheet: IMM's billing unit for it is not documented
        unit = f"one sprite sheet of {plan.probe.sprite.number} sampled frames"
        return Attempt(attempt=task.attempt, step="probe", task_id=task.task_id, how=task.how,
                       billed_frames_estimate=0, unit=unit)
    factor = factor_at(scales, task.attempt)
    frames = plan.billed_frames if factor is None else planner.scaled(plan.rule, factor).frames
    own = scales.get(task.attempt)  # an adopted task's record has no reason: its scale says it
    return Attempt(attempt=task.attempt, task_id=task.task_id, how=task.how,
                   reason=task.reason or (own.reason() if own is not None else None),
                   billed_frames_estimate=frames, scale=factor)


def _tag_source(app: App, source: objects.SourceObject, status: str) -> None:
    """Merge ``autoanim-status`` into the source's tags, within OSS's 10-tag limit."""
    try:
        tags = app.store.get_tags(source.bucket, source.key)
        if STATUS_TAG not in tags and len(tags) >= objects.MAX_TAGS:
            log.event("result.status_tag_skipped", 30, source=source.uri,
                      reason=f"the object already has {len(tags)} tags (OSS allows {objects.MAX_TAGS})")
            return
        app.store.put_tags(source.bucket, source.key, {**tags, STATUS_TAG: status.lower()})
    except AutoanimError as exc:  # the manifest is the record; a tag that cannot be written is only logged
        log.event("result.status_tag_skipped", 30, source=source.uri, reason=exc.message)
