"""``autoanim``: plan, convert, upload, watch, invoke and backfill, offline or against IMM.

Exit status: 0 done, 2 bad arguments or rules, 3 unreadable media, 4 a service failed.
Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import log, objects, planner, render, rules
from .config import Settings
from .errors import AutoanimError, ConfigError, MediaError, RuleError, ServiceError

if TYPE_CHECKING:
    from .local import LocalApp

# The pipeline (bootstrap, handlers, local) is imported by the commands that run it, so that
# `convert` pays only for the rules, the planner and the engine.

EXIT_OK, EXIT_USAGE, EXIT_MEDIA, EXIT_SERVICE = 0, RuleError.exit_code, MediaError.exit_code, ServiceError.exit_code
DEFAULT_BUCKET = "local-bucket"
JSON_HELP = "print one exact JSON object (default: a short summary for people)"


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """The exact JSON with ``--json``, else the short human summary (logs go to stderr either way)."""
    if args.json:
        _print(data)
    else:
        print(text)


def _read_event(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read event file {path}: {exc.strerror}") from exc


# --- plan ----------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Run the real upload service on in-memory adapters: the exact requests, no network."""
    from . import handlers
    from .adapters.memory import MemoryObjectStore, RecordingMediaService
    from .events import parse_oss_event
    from .planner import TaskUserData
    from .service import App, RetryLater

    raw = _read_event(args.event)
    batch = parse_oss_event(raw)
    store = MemoryObjectStore()
    tags = rules.parse_tag_string(args.tags) if args.tags else {}
    try:
        sidecar = Path(args.sidecar).read_bytes() if args.sidecar else None
    except OSError as exc:
        raise ConfigError(f"cannot read sidecar file {args.sidecar}: {exc.strerror}") from exc
    for _, record in batch.records:  # each object as the event describes it, with the given rules
        if objects.is_sidecar_key(record.key):  # a sidecar's event: its video is there too
            if sidecar is None:
                raise ConfigError(f"{args.event} uploads the sidecar {record.key}: give its content with --sidecar")
            store.add(record.bucket, objects.video_of_sidecar(record.key), b"", tags)
            store.add(record.bucket, record.key, sidecar)
            continue
        store.add(record.bucket, record.key, b"", tags, etag=record.etag)
        if sidecar is not None and objects.is_video_key(record.key):
            store.add(record.bucket, record.key + objects.SIDECAR_SUFFIX, sidecar)
    if not settings.imm_project:  # shown as what it stands for, not as a project named "local"
        settings = settings.model_copy(update={"imm_project": "<IMM_PROJECT>"})
    media = RecordingMediaService()
    app = App(settings=settings, store=store, media=media)
    log.setup(max(logging.WARNING, log.level()))  # the plan is the output; the service's lines are not
    try:
        report = handlers.upload(app, raw)
    except RetryLater as exc:  # cannot happen on memory adapters, but never hide it
        report = exc.report
    tasks, probes = [], []
    for request in media.requests:  # what on_upload sent: animations, and the probes of start: auto clips
        if request.targets[0].image.sprites:
            claim = app.claims.load(*TaskUserData.parse(request.user_data or "").claim_location)
            plan = claim.plan
            sprite = request.sprite
            probes.append({"for": claim.plan.output_uri, "start": "auto", "sheet": sprite.uri,
                           "sampled_frames": sprite.number, "request": request.wire()})
            # then, after the probe's result: the animation from the start it picks (worst case billed)
            tasks.append({"output": claim.plan.output_uri, "billed_frames": claim.plan.billed_frames,
                          "start": "auto", "request": claim.plan.request.wire()})
        else:
            tasks.append({"output": request.animation.uri, "billed_frames": request.animation.number,
                          "request": request.wire()})
            claim = app.claims.load(*TaskUserData.parse(request.user_data or "").claim_location)
            plan = claim.plan if claim is not None else None
        if plan is not None and plan.rule.max_bytes is not None:  # a byte cap: the size retries' worst case
            tasks[-1].update(cap=plan.rule.max_bytes, target=plan.rule.target, given_up=list(plan.rule.given_up),
                             size_retries=plan.size_retries, billed_frames_worst=plan.worst_billed_frames)
    summary = {"tasks": tasks, "billed_frames_total": sum(t["billed_frames"] for t in tasks),
               "skipped": [s.model_dump() for s in report.skipped],
               "rejected": [r.model_dump(exclude_none=True) for r in report.rejected]}
    if any("cap" in t for t in tasks):
        summary["billed_frames_worst_total"] = sum(t.get("billed_frames_worst", t["billed_frames"]) for t in tasks)
    if probes:
        summary["probes"] = probes
    _emit(args, summary, render.plan(summary))
    return EXIT_USAGE if report.rejected else EXIT_OK


# --- convert / sample-video ------------------------------------------------------------------


_CONVERT_FLAGS = ("format", "start", "duration", "fps", "interval", "frames", "width", "height", "scale", "target",
                  "max_bytes")


def cmd_convert(args: argparse.Namespace, settings: Settings) -> int:
    from . import engine

    fields = {f: getattr(args, f) for f in _CONVERT_FLAGS if getattr(args, f) is not None}
    out = Path(args.output)
    if "format" not in fields:
        ext = objects.extension(out.name)
        if ext in objects.OUTPUT_EXTENSIONS:
            fields["format"] = ext
        elif "target" not in fields:  # a target says its format
            raise RuleError("command line", "--format", None, "give --format gif|webp or an output ending .gif/.webp")
    spec = rules.validate_spec(fields, settings.limits, "command line", "--")
    (rule,) = rules.resolve([spec], origin="cli", source="command line", settings=settings)
    for note in rule.notes:
        print(f"note: {note}", file=sys.stderr)
    source = objects.SourceObject(bucket="local", key=Path(args.source).name or "video.mp4", etag="")
    if rule.start_auto:
        rule = _auto_start(Path(args.source), source, rule, settings)
    if rule.max_bytes is not None and args.fit == "search":
        return _convert_fitted(args, settings, source, rule, out)
    task = planner.plan(source, [rule], settings)[0]
    request = task.request
    with _progress(args.progress) as progress:
        result = engine.convert(args.source, out, request.animation, start=request.source.start_time,
                                duration=request.source.duration, quality=args.quality, progress=progress)
    summary = {"output": str(out), "frames": result.frames, "width": result.width, "height": result.height,
               "bytes": result.bytes, "duration": round(result.duration, 3), "seconds": round(result.elapsed, 3),
               "imm_billed_frames": result.frames, "start": request.source.start_time or 0.0,
               "start_auto": rule.auto.model_dump(exclude={"sheet"}) if rule.auto else None}
    if rule.max_bytes is not None:  # --fit model: the cloud's plan, made once; the cap is checked, not searched
        summary.update(target=rule.target, cap=rule.max_bytes, met=result.bytes <= rule.max_bytes,
                       given_up=list(task.rule.given_up), encodes=1)
    _emit(args, summary, render.converted(summary, rule.auto))
    return EXIT_OK


def _convert_fitted(args: argparse.Namespace, settings: Settings, source: objects.SourceObject, rule: rules.Rule,
                    out: Path) -> int:
    """A capped conversion by the engine's bounded search (``engine.fit``), from the rule as asked."""
    from .engine import fit

    if args.quality is not None:
        raise RuleError("command line", "--quality", args.quality, "with a byte cap the search picks the quality "
                        "(or give --fit model)")
    request = planner.plan(source, [rule], settings, fit_caps=False)[0].request
    result = fit.fit(args.source, out, request.animation, rule.max_bytes, start=request.source.start_time,
                     duration=request.source.duration, fixed_size=rule.fixed_size)
    summary = {"output": str(out), "frames": result.frames, "width": result.width, "height": result.height,
               "bytes": result.bytes, "duration": round(result.duration, 3), "fps": result.fps,
               "seconds": round(result.elapsed, 3), "imm_billed_frames": result.frames,
               "start": request.source.start_time or 0.0,
               "start_auto": rule.auto.model_dump(exclude={"sheet"}) if rule.auto else None,
               "target": rule.target, "cap": result.cap, "met": result.met, "given_up": result.given_up,
               "encodes": result.encodes, "tried": result.tried}
    _emit(args, summary, render.converted(summary, rule.auto))
    return EXIT_OK if result.met else EXIT_MEDIA


def _auto_start(src: Path, source: objects.SourceObject, rule: rules.Rule, settings: Settings) -> rules.Rule:
    """``--start auto``: the probe the cloud would run, made by the local engine in a temporary folder."""
    import tempfile

    from . import probe
    from .adapters.local_probe import probe_file

    planned = probe.plan_probe(source, rule, settings)
    with tempfile.TemporaryDirectory(prefix="autoanim-probe-") as tmp:
        auto = probe_file(src, Path(tmp) / "sheet.jpg", planned, timeout=settings.local_timeout)
    return probe.with_start(rule, auto.model_copy(update={"sheet": ""}))


class _progress:
    """A tqdm bar fed by the engine's progress callback; quiet when off or not a terminal."""

    def __init__(self, mode: str):
        self._enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        self._bar = None

    def __enter__(self):
        if not self._enabled:
            return None
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: the engine forks its worker only from a single thread
        self._bar = tqdm(unit="frame", file=sys.stderr, leave=False)

        def update(done: int, total: int | None) -> None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.n = done
            self._bar.refresh()

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def cmd_sample_video(args: argparse.Namespace, settings: Settings) -> int:
    from . import engine

    path = engine.sample_video(args.output, seconds=args.seconds)
    print(path)
    return EXIT_OK


# --- local pipeline: upload / watch / invoke ---------------------------------------------


def local_app(settings: Settings) -> LocalApp:
    from . import bootstrap

    if settings.backend != "local":
        raise ConfigError("this command runs the local backend: unset AUTOANIM_BACKEND or set it to 'local'")
    bootstrap.check(settings)
    return bootstrap.build_local(settings)


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    from . import local

    tags = rules.parse_tag_string(args.tags) if args.tags else {}
    with local_app(settings) as app:
        result = local.upload(app, Path(args.file), args.bucket, args.key, tags)
    _emit(args, result.model_dump(mode="json", exclude_none=True), render.local_upload(result))
    return result.exit_code


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from . import local

    if args.root:
        settings = settings.model_copy(update={"local_root": args.root})
    with local_app(settings) as app:
        print(f"watching {Path(settings.local_root).resolve()} (one folder per bucket; Ctrl-C stops)",
              file=sys.stderr)
        try:
            local.watch(app, grace=args.grace)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def cmd_invoke(args: argparse.Namespace, settings: Settings) -> int:
    from . import bootstrap, handlers

    raw = _read_event(args.event)
    with bootstrap.build(settings, bootstrap.local_context(f"on_{args.handler}")) as app:
        if args.handler == "upload":
            uploaded = handlers.upload(app, raw)
            app.settle()
            _emit(args, uploaded.model_dump(mode="json", exclude_none=True), render.upload_report(uploaded))
            return EXIT_USAGE if uploaded.rejected else EXIT_OK
        result = handlers.result(app, raw)
        app.settle()
    _emit(args, result.model_dump(mode="json", exclude_none=True), render.result_report(result))
    return EXIT_USAGE if result.event == "rejected" else EXIT_OK


# --- backfill --------------------------------------------------------------------------------


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """The videos already in a bucket: the bill first (dry run), then on_upload does the work."""
    from . import backfill, bootstrap

    bootstrap.check(settings)
    if args.resume and not args.submit:
        raise ConfigError("--resume continues a --submit run; a dry run keeps no checkpoint")
    if args.workers < 1 or args.rate < 0 or (args.limit is not None and args.limit < 1):
        raise ConfigError("--workers and --limit must be at least 1, --rate at least 0 (0: no bound)")
    if args.source.startswith(objects.SCHEME):
        bucket, prefix = dict(objects.ObjectRef.parse(args.source, key_optional=True)).values() \
            if args.source != objects.SCHEME else ("", "")
        via = args.via or "fc"
        app, submit = _cloud_backfill(args, settings, bucket, via)
    else:
        if args.via not in (None, "local"):
            raise ConfigError(f"{args.source} is a local folder bucket: it is converted here (no --via {args.via})")
        bucket, prefix = _local_target(args.source, settings)
        via = "local"
        app = local_app(settings)
        submit = backfill.in_process_submitter(app) if args.submit else None
    source = objects.uri(bucket, prefix) if via != "local" else args.source
    checkpoint = None
    start_after = ""
    if args.submit:
        path = Path(args.checkpoint) if args.checkpoint else backfill.default_checkpoint(bucket, source, via, args.function)
        checkpoint = backfill.Checkpoint(path, source=source, via=via, function=args.function)
        if args.resume:
            start_after = checkpoint.load()
    bar = _BackfillBar(args.progress)
    try:
        with app:
            summary = backfill.run(app, bucket, prefix, source=source, via=via, submit=submit,
                                   workers=args.workers, rate=args.rate, limit=args.limit, start_after=start_after,
                                   checkpoint=checkpoint, keep_tasks=args.json, progress=bar.update)
            app.settle()
    finally:
        bar.close()
    data = summary.as_dict()
    data["function"] = args.function if via == "fc" else None
    data["checkpoint"] = str(checkpoint.path) if checkpoint else None
    _emit(args, data, _backfill_text(data))
    if summary.interrupted:
        return 130
    return EXIT_SERVICE if summary.failed else EXIT_OK


def _local_target(path: str, settings: Settings) -> tuple[str, str]:
    """``buckets/demo-bucket/videos/`` → ("demo-bucket", "videos/"), inside AUTOANIM_LOCAL_ROOT."""
    root = Path(settings.local_root).resolve()
    try:
        parts = Path(path).resolve().relative_to(root).parts
    except ValueError:
        raise ConfigError(f"{path} is not inside the local root {root} (set AUTOANIM_LOCAL_ROOT, "
                          "or give oss://BUCKET/PREFIX)") from None
    if not parts:
        raise ConfigError(f"{path} is the local root itself: name a bucket folder, e.g. {root}/demo-bucket/")
    bucket, rest = parts[0], "/".join(parts[1:])
    return bucket, rest + "/" if rest and path.endswith(("/", os.sep)) else rest


def _cloud_backfill(args: argparse.Namespace, settings: Settings, bucket: str, via: str):
    """The app against the cloud from this machine, and how videos are handed over."""
    from . import backfill, bootstrap

    if not bucket:
        raise ConfigError(f"{args.source}: no bucket (give oss://BUCKET/PREFIX)")
    direct = args.submit and via == "direct"
    app = bootstrap.build_operator(settings, region=args.region, imm=direct)
    if not args.submit:
        return app, None
    if direct:
        return app, backfill.in_process_submitter(app)
    return app, backfill.fc_submitter(*bootstrap.fc_invoker(settings, function=args.function, region=args.region,
                                                            qualifier=args.qualifier))


class _BackfillBar:
    """A tqdm bar on stderr (objects listed; videos, clips and hand-overs as its postfix) when it is a terminal."""

    def __init__(self, mode: str):
        self._bar = None
        if mode == "on" or (mode == "auto" and sys.stderr.isatty()):
            from tqdm import tqdm

            self._bar = tqdm(unit=" objects", file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(self, summary: Any) -> None:
        if self._bar is None:
            return
        self._bar.update(summary.objects - self._bar.n)
        if summary.objects % 50 == 1:
            self._bar.set_postfix(videos=summary.videos, clips=summary.clips, frames=summary.billed_frames_total,
                                  invoked=summary.invoked, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _backfill_text(d: dict[str, Any]) -> str:
    """The short human summary."""
    lines = [f"{d['source']}: {d['objects']:,} objects listed in {d['seconds']:.1f} s, {d['videos']:,} videos"
             + (f" (resumed after {d['resumed_after']!r})" if d["resumed_after"] else "")]
    lines.append(f"  clips: {d['clips']:,} planned for {d['videos_with_clips']:,} videos"
                 f", {d['clips_done']:,} already done")
    lines.append(f"  billed frames (IMM bills per output frame): {d['billed_frames_total']:,}")
    for origin, profiles in sorted(d["billed_frames"].items()):
        for profile, frames in sorted(profiles.items()):
            lines.append(f"    {origin:<10} {profile:<16} {frames:>12,}")
    if d["skipped"]:
        lines.append("  skipped: " + ", ".join(f"{n:,} {reason}" for reason, n in d["skipped"].items()))
    for label in ("rejected", "failed"):
        if d[label]:
            lines.append(f"  {label}: {len(d[label]):,}")
            lines.extend(f"    {r['key']}: {r['reason']}" for r in d[label][:10])
            if len(d[label]) > 10:
                lines.append(f"    ... {len(d[label]) - 10:,} more (--json lists every one)")
    if d["mode"] == "dry-run":
        lines.append(f"  dry run: nothing submitted; --submit hands {d['to_submit']:,} videos to "
                     f"{'on_upload' if not d['function'] else d['function']}")
    else:
        lines.append(f"  submitted ({d['via']}): {d['invoked']:,} invoked, {d['duplicates']:,} already queued, "
                     f"{d['skipped_done']:,} videos already done, {d['held']:,} left for later")
        state = "complete" if d["complete"] else ("interrupted" if d["interrupted"] else "incomplete")
        lines.append(f"  {state}; checkpoint {d['checkpoint']} (last key {d['last_key']!r})"
                     + ("" if d["complete"] else ": --resume continues"))
    return "\n".join(lines)


# --- parser ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoanim", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                        help="the JSON log lines on stderr (default info)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="print the IMM requests and billed frames for an OSS event (no network)")
    p.add_argument("event", help="FC OSS trigger event JSON file")
    p.add_argument("--tags", help="object tags, 'anim-fps=15&anim-format=gif'")
    p.add_argument("--sidecar", help="a sidecar JSON file, as <key>.anim.json would hold")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(run=cmd_plan)

    p = sub.add_parser("convert", help="one local conversion with the engine")
    p.add_argument("source")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--format", choices=["gif", "webp"])
    p.add_argument("--start", help="seconds, [hh:]mm:ss[.fff], or auto (the most active window)")
    p.add_argument("--duration", help="seconds or [hh:]mm:ss[.fff]")
    for flag in ("fps", "interval", "frames", "width", "height"):
        p.add_argument(f"--{flag}")
    p.add_argument("--scale", choices=["stretch", "crop", "fill", "fit"])
    p.add_argument("--quality", type=int, choices=range(1, 101), metavar="1-100",
                   help="local only (IMM has no quality setting)")
    p.add_argument("--target", help="a target (whatsapp-sticker, discord, discord-sticker, slack-emoji, github, "
                   "email, or the operator's): its format, size, duration, fps and byte limits")
    p.add_argument("--max-bytes", dest="max_bytes", help="a byte cap (alone, or under a target's)")
    p.add_argument("--fit", choices=["search", "model"], default="search",
                   help="with a cap: the engine's bounded search (default), or the cloud's size-model plan, once")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser("sample-video", help="write a synthetic, colourful, moving test video")
    p.add_argument("output")
    p.add_argument("--seconds", type=float, default=8.0)
    p.set_defaults(run=cmd_sample_video)

    p = sub.add_parser("upload", help="local backend: put a file in a local bucket and run the pipeline")
    p.add_argument("file")
    p.add_argument("key")
    p.add_argument("--bucket", default=DEFAULT_BUCKET)
    p.add_argument("--tags", help="object tags, 'anim-format=gif&anim-duration=3'")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(run=cmd_upload)

    p = sub.add_parser("watch", help="local backend: every new file in a bucket folder is an upload")
    p.add_argument("root", nargs="?", help="folder of buckets (default AUTOANIM_LOCAL_ROOT or ./buckets)")
    p.add_argument("--grace", type=float, default=2.0, help="seconds a video waits for its sidecar")
    p.set_defaults(run=cmd_watch)

    p = sub.add_parser("invoke", help="run a handler on an FC event file with the configured backend")
    p.add_argument("handler", choices=["upload", "result"])
    p.add_argument("event")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(run=cmd_invoke)

    p = sub.add_parser("backfill", help="the videos already in a bucket: the bill first, then --submit")
    p.add_argument("source", help="oss://BUCKET/PREFIX, or a local folder bucket such as buckets/demo-bucket/videos/")
    p.add_argument("--submit", action="store_true", help="hand every video with clips to make to on_upload")
    p.add_argument("--via", choices=["fc", "direct"], help="fc: async invocations of the deployed function "
                   "(default); direct: on_upload in this process against OSS and IMM")
    p.add_argument("--function", default="autoanim-on-upload", help="the deployed upload function (s.yaml)")
    p.add_argument("--qualifier", help="FC version or alias to invoke (default LATEST)")
    p.add_argument("--region", help="region of FC and the bucket (default OSS_REGION, IMM_REGION, FC_REGION)")
    p.add_argument("--rate", type=float, default=20.0, help="most hand-overs per second (0: no bound)")
    p.add_argument("--workers", type=int, default=16, help="parallel tag reads and hand-overs")
    p.add_argument("--limit", type=int, help="stop after this many hand-overs (--resume continues)")
    p.add_argument("--resume", action="store_true", help="continue after the checkpoint's last key")
    p.add_argument("--checkpoint", help="checkpoint file (default ./.autoanim-backfill/<bucket>-<hash>.json)")
    p.add_argument("--json", action="store_true", help="one JSON object, with every planned request")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    p.set_defaults(run=cmd_backfill)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log.setup(getattr(logging, args.log_level.upper()))
    try:
        settings = Settings.from_env()
        return args.run(args, settings)
    except AutoanimError as exc:
        print(f"autoanim: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
