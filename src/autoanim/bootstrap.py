"""The composition root: the only place that picks adapters (cloud or local)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from . import handlers, objects
from .config import Settings
from .errors import ConfigError
from .service import App

if TYPE_CHECKING:
    from .local import LocalApp

LOCAL_TOPIC = "autoanim-local-results"
SAFETY_MARGIN = 5.0  # stop retrying IMM this long before FC's own timeout, so the handler can still answer


def build(settings: Settings, context: Any = None) -> App:
    """An ``App`` for one invocation (``imm``) or one process (``local``)."""
    check(settings)
    if settings.backend != "imm":
        return build_local(settings)
    return _cloud(settings, context, time_left=_time_left(context))


def check(settings: Settings) -> None:
    """Operator mistakes fail here, before any event is judged: raised from the handler, the event is
    kept (FC retries, then the dead-letter topic) instead of every upload becoming a recorded rejection."""
    from . import planner, rules, targets
    from .errors import RuleError

    targets.check(settings)  # the shipped targets and the operator's (AUTOANIM_TARGETS)
    names = rules.profile_names(settings)
    if settings.default_profile != "none" and settings.default_profile not in names:
        raise ConfigError(f"DEFAULT_PROFILE={settings.default_profile!r}: no such profile; "
                          f"known: {', '.join(names)}, or none")
    try:
        # The operator's own profiles and the default one; a built-in profile over a lowered
        # limit only fails the uploads that ask for it, with that limit named.
        for name in {*settings.profiles, settings.default_profile} - {"none"}:
            rules.profile(settings, name)
        example = objects.SourceObject(bucket="example-bucket", key="videos/example.mp4", etag="")
        tiny = rules.RuleSpec(format="webp", frames=1, width=1, height=1)  # within any limits
        (rule,) = rules.resolve([tiny], origin="check", source="check", settings=settings)
        planner.output_key(example, rule, settings)
    except RuleError as exc:
        raise ConfigError(f"configuration: {exc.message}") from exc


def _time_left(context: Any) -> Callable[[], float] | None:
    """Seconds left in this FC invocation (minus a margin), from the function's timeout."""
    timeout = getattr(getattr(context, "function", None), "timeout", None)
    if not timeout:
        return None
    deadline = time.monotonic() + float(timeout) - SAFETY_MARGIN
    return lambda: deadline - time.monotonic()


def _cloud(settings: Settings, context: Any, *, region: str | None = None, public: bool = False,
           imm: bool = True, time_left: Callable[[], float] | None = None) -> App:
    """OSS and IMM on their SDKs (``public``: OSS's public endpoint; ``imm=False``: no media)."""
    from .adapters.credentials import resolve_credentials
    from .adapters.imm import ImmMediaService
    from .adapters.oss import OssObjectStore

    credentials = resolve_credentials(context)
    store = OssObjectStore(region=region or settings.oss_region, endpoint=settings.oss_endpoint,
                           credentials=credentials, public=public)
    media = ImmMediaService(project=settings.imm_project or "", region=region or settings.imm_region,
                            endpoint=settings.imm_endpoint, credentials=credentials,
                            attempts=settings.imm_attempts, time_left=time_left) if imm else _NoMedia()
    return App(settings=settings, store=store, media=media, time_left=time_left, kill_margin=SAFETY_MARGIN)


def local_context(name: str = "autoanim-local") -> Any:
    """An FC-like context for local invocations (no credentials: the local backend needs none)."""
    return SimpleNamespace(request_id=str(uuid.uuid4()), credentials=None, region="local", account_id="local",
                           function=SimpleNamespace(name=name, handler="index", memory=0, timeout=0))


def build_local(settings: Settings) -> LocalApp:
    """The local backend: a folder of buckets, the engine in this process, results to ``handlers.result``."""
    from .adapters.local_media import LocalMediaService
    from .adapters.local_probe import LocalStartPicker
    from .adapters.local_store import LocalObjectStore
    from .local import LocalApp

    if not settings.imm_notify_topic:  # locally there is always one: the local media service delivers results
        settings = settings.model_copy(update={"imm_notify_topic": LOCAL_TOPIC})
    store = LocalObjectStore(settings.local_root)
    app: LocalApp | None = None

    def deliver(event: bytes) -> None:  # what the MNS trigger does in the cloud
        handlers.result(app, event)  # (bound below; a result only comes after a submit)

    media = LocalMediaService(store, notify=deliver, workers=settings.local_workers,
                              project=settings.imm_project or "local", timeout=settings.local_timeout)
    app = LocalApp(settings=settings, store=store, media=media,
                   starts=LocalStartPicker(store, settings, timeout=settings.local_timeout))
    return app


class _NoMedia:
    """The media of an app that only lists and plans (a dry run, or hand-overs to the deployed function)."""

    def submit(self, request: Any) -> str:
        raise ConfigError("this command submits nothing from here (a dry run, or --via fc)")

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        return None


def build_operator(settings: Settings, *, region: str | None = None, imm: bool = False) -> App:
    """An app on an operator's machine against the cloud (``autoanim backfill``): OSS on the public
    endpoint, credentials from the default chain; IMM only when it is to submit from here."""
    if imm and not settings.imm_project:
        raise ConfigError("--via direct submits to IMM from here: set IMM_PROJECT (and IMM_NOTIFY_TOPIC)")
    return _cloud(settings, None, region=region, public=True, imm=imm)


def fc_invoker(settings: Settings, *, function: str, region: str | None,
               qualifier: str | None) -> tuple[Any, str]:
    """The deployed upload function, for asynchronous invocations (``autoanim backfill --submit``)."""
    from .adapters.credentials import resolve_credentials
    from .adapters.fc import FcInvoker

    region = region or settings.imm_region or settings.oss_region
    invoker = FcInvoker(function=function, region=region, endpoint=settings.fc_endpoint,
                        credentials=resolve_credentials(None), qualifier=qualifier)
    return invoker, region or ""
