"""``autoanim``: plan, convert, upload, watch and invoke, offline or against IMM.

Exit status: 0 done, 2 bad arguments or rules, 3 unreadable media, 4 a service failed.
Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from . import bootstrap, log, planner, rules
from .config import Settings
from .errors import AutoanimError, ConfigError, RuleError

EXIT_OK, EXIT_USAGE, EXIT_MEDIA, EXIT_SERVICE = 0, 2, 3, 4
DEFAULT_BUCKET = "local-bucket"


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _read_event(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read event file {path}: {exc.strerror}") from exc


# --- plan ----------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Run the real upload service on in-memory adapters: the exact requests, no network."""
    import index

    from .adapters.memory import MemoryObjectStore, RecordingMediaService
    from .events import parse_oss_event
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
        if planner.is_sidecar_key(record.key):  # a sidecar's event: its video is there too
            if sidecar is None:
                raise ConfigError(f"{args.event} uploads the sidecar {record.key}: give its content with --sidecar")
            store.add(record.bucket, record.key[: -len(rules.SIDECAR_SUFFIX)], b"", tags)
            store.add(record.bucket, record.key, sidecar)
            continue
        store.add(record.bucket, record.key, b"", tags, etag=record.etag)
        if sidecar is not None and planner.is_video_key(record.key):
            store.add(record.bucket, record.key + rules.SIDECAR_SUFFIX, sidecar)
    media = RecordingMediaService()
    app = App(settings=settings, store=store, media=media)
    try:
        report = index.on_upload(raw, bootstrap.local_context("plan"), app=app)
    except RetryLater as exc:  # cannot happen on memory adapters, but never hide it
        report = exc.report.as_dict()
    tasks = [
        {"output": r.animation.uri, "billed_frames": r.animation.number, "request": r.wire()}
        for r in media.requests
    ]
    _print({"tasks": tasks, "billed_frames_total": sum(t["billed_frames"] for t in tasks),
            "skipped": report["skipped"], "rejected": report["rejected"]})
    return EXIT_USAGE if report["rejected"] else EXIT_OK


# --- convert / sample-video ------------------------------------------------------------------


_CONVERT_FLAGS = ("format", "start", "duration", "fps", "interval", "frames", "width", "height", "scale")


def cmd_convert(args: argparse.Namespace, settings: Settings) -> int:
    from . import engine

    fields = {f: getattr(args, f) for f in _CONVERT_FLAGS if getattr(args, f) is not None}
    out = Path(args.output)
    if "format" not in fields:
        ext = planner.extension(out.name)
        if ext not in planner.OUTPUT_EXTENSIONS:
            raise RuleError("command line", "--format", None, "give --format gif|webp or an output ending .gif/.webp")
        fields["format"] = ext
    spec = rules.validate_spec(fields, settings.limits, "command line", "--")
    (rule,) = rules.resolve([spec], origin="cli", source="command line", settings=settings)
    for note in rule.notes:
        print(f"note: {note}", file=sys.stderr)
    source = planner.SourceObject(bucket="local", key=Path(args.source).name or "video.mp4", etag="")
    request = planner.plan(source, [rule], settings)[0].request
    with _progress(args.progress) as progress:
        result = engine.convert(args.source, out, request.animation, start=request.source.start_time,
                                duration=request.source.duration, quality=args.quality, progress=progress)
    _print({"output": str(out), "frames": result.frames, "width": result.width, "height": result.height,
            "bytes": result.bytes, "duration": round(result.duration, 3), "seconds": round(result.elapsed, 3),
            "imm_billed_frames": result.frames})
    return EXIT_OK


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


def local_app(settings: Settings):
    if settings.backend != "local":
        raise ConfigError("this command runs the local backend: unset AUTOANIM_BACKEND or set it to 'local'")
    return bootstrap.build(settings)


def cmd_upload(args: argparse.Namespace, settings: Settings) -> int:
    app = local_app(settings)
    tags = rules.parse_tag_string(args.tags) if args.tags else {}
    try:
        result = local_upload(app, Path(args.file), args.bucket, args.key, tags)
    finally:
        app.media.close()
    _print(result)
    return _upload_status(result)


def _upload_status(result: dict[str, Any]) -> int:
    """2 for a refused rule, 3 when the media could not be converted, 4 for another failure."""
    if result["rejected"]:
        return EXIT_USAGE
    codes = {r.get("code") for r in result["results"] if r["status"] != "Succeeded"}
    if "InvalidMedia" in codes:
        return EXIT_MEDIA
    return EXIT_SERVICE if codes else EXIT_OK


def local_upload(app: Any, src: Path, bucket: str, key: str, tags: dict[str, str]) -> dict[str, Any]:
    """Put a file in a local bucket as OSS would, run ``on_upload`` on its event, wait for the results."""
    import index

    from .fc_events import oss_event

    rules.check_tags(tags, "--tags")
    if not src.is_file():
        raise ConfigError(f"{src}: no such file")
    info = app.store.put_file(bucket, key, src, tags=tags)
    report = index.on_upload(oss_event(bucket, key, size=info.size, etag=info.etag),
                             bootstrap.local_context("on_upload"), app=app)
    app.media.wait()
    return {"upload": f"oss://{bucket}/{key}", **report, "results": _results(app, report)}


def _results(app: Any, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifests of the outputs this upload submitted, as the result function wrote them."""
    found = []
    for item in report["submitted"] + report["duplicates"]:  # duplicates: made by an earlier run
        bucket, key = item["output"][len("oss://"):].split("/", 1)
        manifest_key = key + planner.MANIFEST_SUFFIX
        try:
            manifest = json.loads(app.store.read(bucket, manifest_key, 1 << 20))
        except AutoanimError:
            found.append({"output": item["output"], "status": "no manifest yet"})
            continue
        found.append({"output": str(app.store.path(bucket, key)), "manifest": str(app.store.path(bucket, manifest_key)),
                      "status": manifest["status"], "code": manifest["code"], "message": manifest["message"],
                      "bytes": manifest["output"]["bytes"], "billed_frames": manifest["billed_frames_estimate"]})
    return found


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    if args.root:
        settings = settings.model_copy(update={"local_root": args.root})
    app = local_app(settings)
    print(f"watching {Path(settings.local_root).resolve()} (one folder per bucket; Ctrl-C stops)", file=sys.stderr)
    try:
        run_watch(app, grace=args.grace)
    except KeyboardInterrupt:
        pass
    finally:
        app.media.close()
    return EXIT_OK


def run_watch(app: Any, *, grace: float, stop: threading.Event | None = None,
              ready: threading.Event | None = None) -> None:
    """Every new complete file under the local root becomes an ``on_upload`` event."""
    import index

    from .watch import watch

    context = bootstrap.local_context("on_upload")
    handle = _sidecar_grace(lambda event: index.on_upload(event, context, app=app), app, grace)
    watch(app.store, handle, stop=stop, ready=ready, ignore_prefixes=(app.settings.output_prefix,),
          on_error=lambda exc: log.event("watch.error", 40, reason=str(exc)))


def _sidecar_grace(handle, app, grace: float):
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
        waits = any(planner.is_video_key(r.key) and not app.store.exists(r.bucket, r.key + rules.SIDECAR_SUFFIX)
                    for _, r in records)
        if waits and grace > 0:
            timer = threading.Timer(grace, run, args=(event,))
            timer.daemon = True
            timer.start()
        else:
            run(event)

    return on_event


def cmd_invoke(args: argparse.Namespace, settings: Settings) -> int:
    import index

    app = bootstrap.build(settings)
    raw = _read_event(args.event)
    handler = index.on_upload if args.handler == "upload" else index.on_task_result
    try:
        answer = handler(raw, bootstrap.local_context(f"on_{args.handler}"), app=app)
        wait = getattr(app.media, "wait", None)
        if wait:
            wait()
    finally:
        close = getattr(app.media, "close", None)
        if close:
            close()
    _print(answer)
    return EXIT_USAGE if answer.get("rejected") else EXIT_OK


# --- parser ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoanim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", help="print the IMM requests and billed frames for an OSS event (no network)")
    p.add_argument("event", help="FC OSS trigger event JSON file")
    p.add_argument("--tags", help="object tags, 'anim-fps=15&anim-format=gif'")
    p.add_argument("--sidecar", help="a sidecar JSON file, as <key>.anim.json would hold")
    p.set_defaults(run=cmd_plan)

    p = sub.add_parser("convert", help="one local conversion with the engine")
    p.add_argument("source")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--format", choices=["gif", "webp"])
    for flag in ("start", "duration"):
        p.add_argument(f"--{flag}", help="seconds or [hh:]mm:ss[.fff]")
    for flag in ("fps", "interval", "frames", "width", "height"):
        p.add_argument(f"--{flag}")
    p.add_argument("--scale", choices=["stretch", "crop", "fill", "fit"])
    p.add_argument("--quality", type=int, choices=range(1, 101), metavar="1-100",
                   help="local only (IMM has no quality setting)")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
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
    p.set_defaults(run=cmd_upload)

    p = sub.add_parser("watch", help="local backend: every new file in a bucket folder is an upload")
    p.add_argument("root", nargs="?", help="folder of buckets (default AUTOANIM_LOCAL_ROOT or ./buckets)")
    p.add_argument("--grace", type=float, default=2.0, help="seconds a video waits for its sidecar")
    p.set_defaults(run=cmd_watch)

    p = sub.add_parser("invoke", help="run a handler on an FC event file with the configured backend")
    p.add_argument("handler", choices=["upload", "result"])
    p.add_argument("event")
    p.set_defaults(run=cmd_invoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log.setup()
    try:
        settings = Settings.from_env()
        return args.run(args, settings)
    except AutoanimError as exc:
        print(f"autoanim: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
