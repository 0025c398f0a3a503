"""Short summaries for people of what the commands did; ``--json`` prints the reports themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (annotations only: `convert` renders without importing the pipeline)
    from .local import LocalUpload
    from .reports import ResultReport, UploadReport


def _frames(n: int | None) -> str:
    return f"{n:,} billed frame{'s' if n != 1 else ''}" if n is not None else "billed frames unknown"


def upload_report(report: UploadReport) -> str:
    lines = []
    for clip in report.submitted:
        lines.append(f"submitted {clip.output} ({_frames(clip.billed_frames)}; task {clip.task_id}"
                     + (", found after an ambiguous answer" if clip.how == "found" else "") + ")")
    lines += [f"already submitted: {clip.output}" for clip in report.duplicates]
    lines += [f"skipped {item.key}: {item.reason}" for item in report.skipped]
    lines += [f"rejected {item.key or item.source or f'entry {item.index}'}: {item.reason}" for item in report.rejected]
    lines += [f"to retry {item.key}: {item.reason}" for item in report.retry]
    total = sum(c.billed_frames or 0 for c in report.submitted)
    lines.append(f"{len(report.submitted)} submitted ({_frames(total)}), {len(report.duplicates)} already "
                 f"submitted, {len(report.skipped)} skipped, {len(report.rejected)} rejected")
    return "\n".join(lines)


def result_report(report: ResultReport) -> str:
    if report.event == "recorded":
        size = f", {report.bytes:,} bytes" if report.bytes is not None else ""
        why = f": {report.code} {report.message or report.reason or ''}".rstrip() if report.status != "Succeeded" else ""
        return (f"recorded {report.status} for {report.output or report.task_id}{size}"
                f" ({_frames(report.billed_frames)}){why}")
    if report.event == "resubmitted":
        return f"task {report.task_id} failed ({report.code}): resubmitted as {report.new_task_id} (attempt {report.attempt})"
    return f"{report.event}: task {report.task_id or '?'}" + (f": {report.reason}" if report.reason else "")


def local_upload(result: LocalUpload) -> str:
    lines = [f"uploaded {result.upload}"]
    for item in result.results:
        if item.status == "Succeeded":
            lines.append(f"  converted {item.output} ({item.bytes or 0:,} bytes, {_frames(item.billed_frames)})")
        else:
            lines.append(f"  {item.status}: {item.output}" + (f": {item.code} {item.message}" if item.code else ""))
    for label, items in (("skipped", result.skipped), ("rejected", result.rejected), ("to retry", result.retry)):
        lines += [f"  {label}: {item.reason}" for item in items]
    if not result.results and not result.skipped and not result.rejected:
        lines.append("  nothing to convert")
    return "\n".join(lines)


def plan(summary: dict[str, Any]) -> str:
    lines = []
    for task in summary["tasks"]:
        animation = task["request"]["Targets"][0]["Image"]["Animations"][0]
        source = task["request"]["Sources"][0]
        size = "x".join(str(animation.get(k, "source")) for k in ("Width", "Height"))
        start = "an auto start" if task.get("start") == "auto" else f"{source.get('StartTime', 0):g} s"
        clip = f"from {start}" + (f" for {source['Duration']:g} s" if "Duration" in source else " to the end")
        lines.append(f"{task['output']}: {animation['Format']} {size} {animation['ScaleType']}, {clip}, "
                     f"every {animation['Interval']:g} s at {animation['FrameRate']:g} fps, "
                     f"{_frames(task['billed_frames'])} at most")
        if "cap" in task:
            lost = f"; the size model gave up {', '.join(task['given_up'])}" if task["given_up"] else ""
            lines.append(f"  cap {task['cap']:,} bytes" + (f" (target {task['target']})" if task["target"] else "")
                         + f"{lost}; up to {task['size_retries']} smaller resubmit(s) if over it: "
                         f"{_frames(task['billed_frames_worst'])} at worst")
    for probe in summary.get("probes", []):
        lines.append(f"start: auto for {probe['for']}: first a probe, one sprite sheet of "
                     f"{probe['sampled_frames']} sampled frames ({probe['sheet']})")
    lines += [f"skipped {item['key']}: {item['reason']}" for item in summary["skipped"]]
    lines += [f"rejected: {item['reason']}" for item in summary["rejected"]]
    worst = f", {_frames(summary['billed_frames_worst_total'])} at worst" if "billed_frames_worst_total" in summary else ""
    lines.append(f"{len(summary['tasks'])} IMM task{'s' if len(summary['tasks']) != 1 else ''}, "
                 f"{_frames(summary['billed_frames_total'])} in all{worst} (--json prints the requests)")
    return "\n".join(lines)


def converted(summary: dict[str, Any], auto: Any) -> str:
    n = summary["frames"]
    text = (f"{summary['output']}: {n:,} frame{'s' if n != 1 else ''}, {summary['width']}x{summary['height']}, "
            f"{summary['bytes']:,} bytes, {summary['duration']:.3g} s from {summary['start']:g} s "
            f"({summary['seconds']:.2f} s; {_frames(summary['imm_billed_frames'])} on IMM)")
    if auto:
        text += f"\nstart: auto picked {auto.start:g} s (score {auto.score:g}): {auto.why}"
    if summary.get("cap") is not None:
        where = f"target {summary['target']}: " if summary.get("target") else ""
        verdict = "under" if summary["met"] else "OVER"
        lost = f"; gave up {', '.join(summary['given_up'])}" if summary.get("given_up") else ""
        text += (f"\n{where}{summary['bytes']:,} bytes, {verdict} the cap of {summary['cap']:,} "
                 f"({summary['encodes']} encode{'s' if summary['encodes'] != 1 else ''}){lost}")
    return text


def backfill(d: dict[str, Any]) -> str:
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
                     f"{d['function'] or 'on_upload'}")
    else:
        lines.append(f"  submitted ({d['via']}): {d['invoked']:,} invoked, {d['duplicates']:,} already "
                     f"queued, {d['skipped_done']:,} videos already done, {d['held']:,} left for later")
        state = "complete" if d["complete"] else ("interrupted" if d["interrupted"] else "incomplete")
        lines.append(f"  {state}; checkpoint {d['checkpoint']} (last key {d['last_key']!r})"
                     + ("" if d["complete"] else ": --resume continues"))
    return "\n".join(lines)
