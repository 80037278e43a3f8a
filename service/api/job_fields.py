"""The fields that make a request a background job (service/jobs), on /v1/audio/transcriptions,
/v1/audio/translations (form fields) and /asr (query parameters): OpenAI's `background` flag and a
`callback_url` that is POSTed the job, signed as Standard Webhooks specifies, when it ends."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from ..errors import InvalidRequest
from .fields import FormBool

CALLBACK_URL_MAX = 2048


class BackgroundFields(BaseModel):
    background: FormBool = Field(
        False,
        description="true: keep the upload, answer 202 with a job (GET /v1/audio/jobs/{id}/result).",
    )
    callback_url: str | None = Field(
        None,
        max_length=CALLBACK_URL_MAX,
        pattern=r"^https?://[^\s/?#]+",
        description="With background=true: POSTed the job when it ends, signed (Standard Webhooks).",
    )

    @model_validator(mode="after")
    def _background_rules(self):
        if self.callback_url and not self.background:
            raise InvalidRequest("callback_url needs background=true.", param="callback_url")
        if self.background and getattr(self, "stream", False):
            raise InvalidRequest(
                "background=true cannot be streamed: drop stream=true and read the job's result.",
                param="stream",
            )
        return self


JOB_FIELDS = tuple(BackgroundFields.model_fields)  # not part of what the runner replays
