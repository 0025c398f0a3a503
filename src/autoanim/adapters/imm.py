"""MediaService on IMM (``alibabacloud-imm20200930``): CreateMediaConvertTask and ListTasks.

Calls, retries (within ``time_left()``) and errors: ``retry.OpenApiAdapter``. CreateMediaConvertTask
has no client token: a read timeout, a reset or a 5xx may come after IMM made the task. Those failures
are raised at once, marked ``ambiguous``, never retried here; the service looks the task up by its tags
(``find_task``, ListTasks with ``TagSelector``) before it submits again. Throttling is IMM refusing the
call before doing anything, so it is retried. IMM answering that the project does not exist
(``ResourceNotFound``, HTTP 400) is the operator's mistake: a retryable ``ConfigError``, so the event
is kept. The SDK is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..convert_request import ConvertRequest
from ..errors import AutoanimError, ConfigError
from ..fc_events import iso_ms
from ..ports import FIND_SLACK
from .retry import OpenApiAdapter, worth_retrying

FIND_PAGES = 10  # of 100 tasks each: a claim has at most a handful


@dataclass(kw_only=True, eq=False)
class ImmMediaService(OpenApiAdapter):
    """``MediaService`` on the real IMM SDK."""

    name = "IMM"
    sdk = "alibabacloud_imm20200930.client"
    needs = "(IMM_REGION or FC_REGION) or an endpoint (IMM_ENDPOINT)"

    project: str
    attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 1.0

    def submit(self, request: ConvertRequest) -> str:
        from alibabacloud_imm20200930 import models

        sdk_request = models.CreateMediaConvertTaskRequest().from_map(request.wire())
        response = self._call(
            "IMM CreateMediaConvertTask",
            lambda client, rt: client.create_media_convert_task_with_options(sdk_request, rt),
            retry_if=lambda error: worth_retrying(error) and not error.ambiguous,  # looked up, not resent
        )
        return response.body.task_id

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        """ListTasks of MediaConvert tasks started since ``since`` whose tags hold all of ``tags``.

        ``TagSelector`` takes one ``key=value`` (the docs' example is ``test=val1``): the first tag is
        sent, the others are checked on the answer. The earliest match wins.
        """
        from alibabacloud_imm20200930 import models

        if not tags:
            return None
        key, value = next(iter(tags.items()))
        found: list[tuple[str, str]] = []
        token = None
        for _ in range(FIND_PAGES):
            sdk_request = models.ListTasksRequest(
                project_name=self.project, task_types=["MediaConvert"], tag_selector=f"{key}={value}",
                start_time_range=models.TimeRange(start=iso_ms(since - FIND_SLACK)),
                max_results=100, next_token=token, sort="StartTime", order="asc",
            )
            body = self._call(
                "IMM ListTasks",
                lambda client, rt, request=sdk_request: client.list_tasks_with_options(request, rt),
            ).body
            for task in body.tasks or []:
                if all((task.tags or {}).get(k) == v for k, v in tags.items()) and task.task_id:
                    found.append((task.start_time or "", task.task_id))
            token = body.next_token
            if not token:
                break
        return min(found)[1] if found else None

    def _translate(self, where: str, exc: BaseException) -> tuple[AutoanimError, float | None]:
        error, retry_after = super()._translate(where, exc)
        if error.code == "ResourceNotFound" and "project" in error.message.lower():
            return ConfigError(f"{error.message}: check IMM_PROJECT and IMM_REGION (the project must exist "
                               "in the bucket's region)", retryable=True, code="ProjectNotFound"), None
        return error, retry_after
