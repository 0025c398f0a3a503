"""``autoanim``: plan, convert, upload, watch, invoke and backfill, offline or against IMM.

Exit status: 0 done, 2 bad arguments or rules, 3 unreadable media, 4 a service failed; errors are one
line on stderr. Each command imports what it runs (``convert`` loads no pipeline and no adapters)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import render
from .errors import AutoanimError, ConfigError, MediaError, RuleError, ServiceError

if TYPE_CHECKING:
    from . import objects, rules
    from .config import Settings
    from .local import LocalApp


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """The exact JSON with ``--json``, else the short human summary (logs go to stderr either way)."""
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


@contextlib.contextmanager
def _progress(mode: str, show: Callable[..., None], **options: Any) -> Iterator[Callable[..., None] | None]:
    """A tqdm bar on stderr (``on``, or ``auto`` on a terminal), fed by the callback ``show(bar, ...)``."""
    if mode == "off" or (mode == "auto" and not sys.stderr.isatty()):
        yield None
        return
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the engine forks its worker only from a single thread
    with tqdm(file=sys.stderr, leave=False, **options) as bar:
        yield functools.partial(show, bar)


def _frames_done(bar: Any, done: int, total: int | None) -> None:
    if total is not None:
        bar.total = total
    bar.n = done
    bar.refresh()


def _objects_listed(bar: Any, summary: Any) -> None:
    bar.update(summary.objects - bar.n)
    if summary.objects % 50 == 1:
        bar.set_postfix(videos=summary.videos, clips=summary.clips, frames=summary.billed_frames_total,
                        invoked=summary.invoked, refresh=False)


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Run the real upload service on in-memory adapters: the exact requests, no network."""
    from . import handlers, log, objects, rules
    from .adapters.memory import MemoryObjectStore, RecordingMediaService
    from .events import parse_oss_event
    from .planner import TaskUserData
    from .service import App, RetryLater

    raw = _read(args.event, "event file")
    store = MemoryObjectStore()
    tags = rules.parse_tag_string(args.tags) if args.tags else {}
    sidecar = _read(args.sidecar, "sidecar file") if args.sidecar else None
    for _, record in parse_oss_event(raw).records:  # each object as the event describes it, with these rules
        is_sidecar = objects.is_sidecar_key(record.key)  # a sidecar's event: its video is there too
        if is_sidecar and sidecar is None:
            raise ConfigError(f"{args.event} uploads the sidecar {record.key}: "
                              "give its content with --sidecar")
        video = objects.video_of_sidecar(record.key) if is_sidecar else record.key
        store.add(record.bucket, video, b"", tags, etag=None if is_sidecar else record.etag)
        if sidecar is not None and objects.is_video_key(video):
            store.add(record.bucket, video + objects.SIDECAR_SUFFIX, sidecar)
    if not settings.imm_project:  # shown as what it stands for, not as a project named "local"
        settings = settings.model_copy(update={"imm_project": "<IMM_PROJECT>"})
    media = RecordingMediaService()
    app = App(settings=settings, store=store, media=media)
    log.setup(max(logging.WARNING, getattr(logging, args.log_level.upper())))  # the plan is the output
    try:
        report = handlers.upload(app, raw)
    except RetryLater as exc:  # cannot happen on memory adapters, but never hide it
        report = exc.report
    tasks, probes = [], []
    for request in media.requests:  # what on_upload sent: each clip's attempt 0, or its start: auto probe
        plan = app.claims.load(*TaskUserData.parse(request.user_data or "").claim_location).plan
        task = {"output": plan.output_uri, "billed_frames": plan.billed_frames,
                "request": plan.request.wire()}
        if plan.probe is not None:  # then the animation from the start it picks (billed: the worst case)
            task["start"] = "auto"
            probes.append({"for": plan.output_uri, "start": "auto", "sheet": plan.probe.sprite.uri,
                           "sampled_frames": plan.probe.sprite.number, "request": plan.probe.wire()})
        if plan.rule.max_bytes is not None:  # a byte cap: the size retries' worst case
            task.update(cap=plan.rule.max_bytes, target=plan.rule.target, given_up=list(plan.rule.given_up),
                        size_retries=plan.size_retries, billed_frames_worst=plan.worst_billed_frames)
        tasks.append(task)
    summary = {"tasks": tasks, "billed_frames_total": sum(t["billed_frames"] for t in tasks),
               "skipped": [s.model_dump() for s in report.skipped],
               "rejected": [r.model_dump(exclude_none=True) for r in report.rejected]}
    if any("cap" in t for t in tasks):
        summary["billed_frames_worst_total"] = sum(t.get("billed_frames_worst", t["billed_frames"])
                                                   for t in tasks)
    if probes:
        summary["probes"] = probes
    _emit(args, summary, render.plan(summary))
    return RuleError.exit_code if report.rejected else 0


_CONVERT_FLAGS = ("format", "start", "duration", "fps", "interval", "frames", "width", "height", "scale",
                  "target", "max_bytes")


def cmd_convert(args: argparse.Namespace, settings: Settings) -> int:
    """One local conversion; a byte cap is met by the engine's search, or the cloud's plan (--fit model)."""
    from . import engine, objects, planner, rules

    fields = {f: getattr(args, f) for f in _CONVERT_FLAGS if getattr(args, f) is not None}
    out = Path(args.output)
    if "format" not in fields:
        ext = objects.extension(out.name)
        if ext in objects.OUTPUT_EXTENSIONS:
            fields["format"] = ext
        elif "target" not in fields:  # a target says its format
            raise RuleError("command line", "--format", None,
                            "give --format gif|webp or an output ending .gif/.webp")
    spec = rules.validate_spec(fields, settings.limits, "command line", "--")
    (rule,) = rules.resolve([spec], origin="cli", source="command line", settings=settings)
    for note in rule.notes:
        print(f"note: {note}", file=sys.stderr)
    source = objects.SourceObject(bucket="local", key=Path(args.source).name or "video.mp4", etag="")
    if rule.start_auto:
        rule = _auto_start(Path(args.source), source, rule, settings)
    search = rule.max_bytes is not None and args.fit == "search"
    if search and args.quality is not None:
        raise RuleError("command line", "--quality", args.quality,
                        "with a byte cap the search picks the quality (or give --fit model)")
    task = planner.plan(source, [rule], settings, fit_caps=not search)[0]
    animation, clip = task.request.animation, {"start": task.request.source.start_time,
                                                "duration": task.request.source.duration}
    if search:
        from .engine import fit

        result = fit.fit(args.source, out, animation, rule.max_bytes, fixed_size=rule.fixed_size, **clip)
    else:
        with _progress(args.progress, _frames_done, unit="frame") as progress:
            result = engine.convert(args.source, out, animation, quality=args.quality, progress=progress,
                                    worker=args.worker, **clip)
    summary = {"output": str(out), "frames": result.frames, "width": result.width, "height": result.height,
               "bytes": result.bytes, "duration": round(result.duration, 3), "seconds": round(result.elapsed, 3),
               "imm_billed_frames": result.frames, "start": clip["start"] or 0.0,
               "start_auto": rule.auto.model_dump(exclude={"sheet"}) if rule.auto else None}
    if search:
        summary.update(fps=result.fps, target=rule.target, cap=result.cap, met=result.met,
                       given_up=result.given_up, encodes=result.encodes, tried=result.tried)
    elif rule.max_bytes is not None:  # --fit model: the cloud's plan, made once; the cap checked only
        summary.update(target=rule.target, cap=rule.max_bytes, met=result.bytes <= rule.max_bytes,
                       given_up=list(task.rule.given_up), encodes=1)
    _emit(args, summary, render.converted(summary, rule.auto))
    return MediaError.exit_code if search and not result.met else 0


def _auto_start(src: Path, source: objects.SourceObject, rule: rules.Rule, settings: Settings) -> rules.Rule:
    """``--start auto``: the probe the cloud would run, made by the local engine in a temporary folder."""
    import tempfile

    from . import probe
    from .adapters.local_probe import probe_file

    planned = probe.plan_probe(source, rule, settings)
    with tempfile.TemporaryDirectory(prefix="autoanim-probe-") as tmp:
        auto = probe_file(src, Path(tmp) / "sheet.jpg", planned, timeout=settings.local_timeout)
    return probe.with_start(rule, auto.model_copy(update={"sheet": ""}))


def cmd_sample_video(args: argparse.Namespace, settings: Settings) -> int:
    from . import engine

    print(engine.sample_video(args.output, seconds=args.seconds))
    return 0


def _local_app(settings: Settings) -> LocalApp:
    from . import bootstrap

    if settings.backend != "local":
        raise ConfigError("this command runs the local backend: unset AUTOANIM_BACKEND or set it to 'local'")
    bootstrap.check(settings)
    return bootstrap.build_local(settings)


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    from . import local, rules

    tags = rules.parse_tag_string(args.tags) if args.tags else {}
    with _local_app(settings) as app:
        result = local.upload(app, Path(args.file), args.bucket, args.key, tags)
    _emit(args, result.model_dump(mode="json", exclude_none=True), render.local_upload(result))
    return result.exit_code


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from . import local

    if args.root:
        settings = settings.model_copy(update={"local_root": args.root})
    with _local_app(settings) as app:
        print(f"watching {Path(settings.local_root).resolve()} (one folder per bucket; Ctrl-C stops)",
              file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            local.watch(app, grace=args.grace)
    return 0


def cmd_invoke(args: argparse.Namespace, settings: Settings) -> int:
    from . import bootstrap, handlers

    raw = _read(args.event, "event file")
    upload = args.handler == "upload"
    with bootstrap.build(settings, bootstrap.local_context(f"on_{args.handler}")) as app:
        report = handlers.upload(app, raw) if upload else handlers.result(app, raw)
        app.settle()
    text = render.upload_report(report) if upload else render.result_report(report)
    _emit(args, report.model_dump(mode="json", exclude_none=True), text)
    rejected = report.rejected if upload else report.event == "rejected"
    return RuleError.exit_code if rejected else 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """The videos already in a bucket: the bill first (dry run), then on_upload does the work."""
    from . import backfill, bootstrap, objects

    bootstrap.check(settings)
    if args.resume and not args.submit:
        raise ConfigError("--resume continues a --submit run; a dry run keeps no checkpoint")
    if args.workers < 1 or args.rate < 0 or (args.limit is not None and args.limit < 1):
        raise ConfigError("--workers and --limit must be at least 1, --rate at least 0 (0: no bound)")
    if args.source.startswith(objects.SCHEME):
        try:
            ref = objects.ObjectRef.parse(args.source, key_optional=True)
        except ValueError:
            raise ConfigError(f"{args.source}: no bucket (give oss://BUCKET/PREFIX)") from None
        bucket, prefix, via = ref.bucket, ref.key, args.via or "fc"
        source = objects.uri(bucket, prefix)
        app = bootstrap.build_operator(settings, region=args.region, imm=args.submit and via == "direct")
    else:
        if args.via:
            raise ConfigError(f"{args.source} is a local folder bucket: it is converted here "
                              f"(no --via {args.via})")
        bucket, prefix = _local_target(args.source, settings)
        via, source = "local", args.source
        app = _local_app(settings)
    submit, checkpoint, start_after = None, None, ""
    if args.submit:
        if via == "fc":
            invoker = bootstrap.fc_invoker(settings, function=args.function, region=args.region,
                                           qualifier=args.qualifier)
            submit = backfill.fc_submitter(*invoker)
        else:
            submit = backfill.in_process_submitter(app)
        checkpoint = backfill.Checkpoint.of(args.checkpoint, bucket, source=source, via=via,
                                            function=args.function)
        start_after = checkpoint.load() if args.resume else ""
    with app, _progress(args.progress, _objects_listed, unit=" objects", dynamic_ncols=True) as progress:
        summary = backfill.run(app, bucket, prefix, source=source, via=via, submit=submit,
                               workers=args.workers, rate=args.rate, limit=args.limit,
                               start_after=start_after, checkpoint=checkpoint, keep_tasks=args.json,
                               progress=progress)
        app.settle()
    data = summary.as_dict()
    data["function"] = args.function if via == "fc" else None
    data["checkpoint"] = str(checkpoint.path) if checkpoint else None
    _emit(args, data, render.backfill(data))
    if summary.interrupted:
        return 130
    return ServiceError.exit_code if summary.failed else 0


def _local_target(path: str, settings: Settings) -> tuple[str, str]:
    """``buckets/demo-bucket/videos/`` → ("demo-bucket", "videos/"), inside AUTOANIM_LOCAL_ROOT."""
    import os

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


def _worker(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """``convert``'s media worker, started first: it imports PyAV and opens the source while the settings and
    rules load (``engine.convert`` hands it plain data: it never imports pydantic)."""
    if args.command != "convert" or (args.fit == "search" and (args.max_bytes or args.target)):
        return contextlib.nullcontext()  # no conversion, or a byte cap's search (engine.fit: in this process)
    from .engine.worker import Worker

    return Worker(ahead=args.source)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoanim", description=__doc__.split("\n")[0])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info",
                        help="the JSON log lines on stderr (default info)")
    sub = parser.add_subparsers(dest="command", required=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true",
                         help="print one exact JSON object (default: a short summary for people)")
    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                          help="a progress bar on stderr (auto: when it is a terminal)")

    def command(name: str, run: Callable[..., int], help: str, *parents: argparse.ArgumentParser):
        p = sub.add_parser(name, help=help, parents=list(parents))
        p.set_defaults(run=run)
        return p

    p = command("plan", cmd_plan, "print the IMM requests and billed frames for an OSS event (no network)",
                as_json)
    p.add_argument("event", help="FC OSS trigger event JSON file")
    p.add_argument("--tags", help="object tags, 'anim-fps=15&anim-format=gif'")
    p.add_argument("--sidecar", help="a sidecar JSON file, as <key>.anim.json would hold")

    p = command("convert", cmd_convert, "one local conversion with the engine", as_json, progress)
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
    p.add_argument("--target", help="a target (whatsapp-sticker, discord, discord-sticker, slack-emoji, "
                   "github, email, or the operator's): its format, size, duration, fps and byte limits")
    p.add_argument("--max-bytes", dest="max_bytes", help="a byte cap (alone, or under a target's)")
    p.add_argument("--fit", choices=["search", "model"], default="search",
                   help="with a cap: the engine's bounded search (default), "
                   "or the cloud's size-model plan, once")

    p = command("sample-video", cmd_sample_video, "write a synthetic, colourful, moving test video")
    p.add_argument("output")
    p.add_argument("--seconds", type=float, default=8.0)

    p = command("upload", cmd_upload, "local backend: put a file in a local bucket and run the pipeline",
                as_json)
    p.add_argument("file")
    p.add_argument("key")
    p.add_argument("--bucket", default="local-bucket")
    p.add_argument("--tags", help="object tags, 'anim-format=gif&anim-duration=3'")

    p = command("watch", cmd_watch, "local backend: every new file in a bucket folder is an upload")
    p.add_argument("root", nargs="?", help="folder of buckets (default AUTOANIM_LOCAL_ROOT or ./buckets)")
    p.add_argument("--grace", type=float, default=2.0, help="seconds a video waits for its sidecar")

    p = command("invoke", cmd_invoke, "run a handler on an FC event file with the configured backend",
                as_json)
    p.add_argument("handler", choices=["upload", "result"])
    p.add_argument("event")

    p = command("backfill", cmd_backfill, "the videos already in a bucket: the bill first, then --submit",
                progress)
    p.add_argument("source", help="oss://BUCKET/PREFIX, or a local folder bucket such as "
                   "buckets/demo-bucket/videos/")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import log

    log.setup(getattr(logging, args.log_level.upper()))
    try:
        with _worker(args) as args.worker:
            from .config import Settings

            return args.run(args, Settings.from_env())
    except AutoanimError as exc:
        print(f"autoanim: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The ``autoanim`` command: ``main``, then exit without a last collection of what it built (pydantic's
    schemas and models: about 20 ms of a 1-frame ``convert``; nothing is left open by then)."""
    code = main()
    gc.freeze()  # the interpreter's exit collects no frozen objects; reference counting still frees the rest
    sys.exit(code)
