"""The fleet's job store settings (service/settings/jobs_fleet.py): the database URL is a secret that no repr,
str, log line or error message shows; the bucket is a gs:// URL; the two go together."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.settings import SettingsError, from_env

URL = "postgresql://whisper:{password}@10.20.0.3:5432/whisper_jobs?sslmode=require"
BUCKET = "gs://whisper-dev-jobs-bucket-1a2b3c4"
PASSWORDS = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=12, max_size=40
)


@given(PASSWORDS)
def test_the_password_shows_in_no_repr_str_or_log_line(password):
    settings = from_env({"JOBS_DATABASE_URL": URL.format(password=password), "JOBS_BUCKET": BUCKET})
    assert settings.jobs_database_url.get_secret_value() == URL.format(password=password)
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "settings %s %r", (settings, settings), None)
    for shown in (repr(settings), str(settings), f"{settings.jobs_database_url}", record.getMessage()):
        assert password not in shown
    assert "**********" in repr(settings.jobs_database_url)


@given(PASSWORDS, st.sampled_from(["mysql://u:{p}@h/db", "postgresql://u:{p}@/db", "postgresql://u:{p}@h:x/db",
                                   "postgresql://u:{p}@h:5432/"]))  # fmt: skip
def test_a_bad_url_is_refused_without_quoting_it(password, shape):
    with pytest.raises(SettingsError) as refused:
        from_env({"JOBS_DATABASE_URL": shape.format(p=password), "JOBS_BUCKET": BUCKET})
    message = str(refused.value)
    assert message.startswith("JOBS_DATABASE_URL ") and password not in message
    assert "postgresql://whisper:PASSWORD@" in message  # the example, not the value


@pytest.mark.parametrize(
    ("raw", "stored"),
    [(BUCKET, BUCKET), ("gs://jobs-a/prefix/", "gs://jobs-a/prefix"), (" gs://a_b.c ", "gs://a_b.c")],
)
def test_a_bucket_url_is_kept_without_its_trailing_slash(raw, stored):
    settings = from_env({"JOBS_DATABASE_URL": URL.format(password="pw"), "JOBS_BUCKET": raw})
    assert settings.jobs_bucket == stored


@pytest.mark.parametrize("raw", ["s3://bucket", "gs://UPPER", "gs://ab", "gs://-dash", "whisper-jobs"])
def test_a_bad_bucket_is_refused_with_an_example(raw):
    with pytest.raises(SettingsError, match=r"^JOBS_BUCKET=.*e\.g\. JOBS_BUCKET=gs://"):
        from_env({"JOBS_DATABASE_URL": URL.format(password="pw"), "JOBS_BUCKET": raw})


@pytest.mark.parametrize("alone", [{"JOBS_DATABASE_URL": URL.format(password="pw")}, {"JOBS_BUCKET": BUCKET}])
def test_database_and_bucket_go_together(alone):
    with pytest.raises(SettingsError, match="JOBS_DATABASE_URL and JOBS_BUCKET go together"):
        from_env(alone)


def test_unset_means_the_one_vm_store():
    settings = from_env({})
    assert not settings.jobs_database_url and settings.jobs_bucket == ""
