"""The REALTIME_* settings: read from the environment, and live sessions bounded below THREADS, because each
one holds a request thread for its whole life."""

from __future__ import annotations

import pytest

from service.settings import SettingsError, from_env


def test_the_realtime_settings_are_read_from_the_environment():
    s = from_env(
        {
            "REALTIME_MAX_SESSIONS": "3",
            "REALTIME_IDLE_TIMEOUT": "15",
            "REALTIME_MAX_SESSION_SECONDS": "600",
            "REALTIME_MAX_FRAME_KB": "256",
        }
    )
    assert (s.realtime_max_sessions, s.realtime_idle_timeout) == (3, 15.0)
    assert (s.realtime_max_session_seconds, s.realtime_max_frame_kb) == (600.0, 256)


@pytest.mark.parametrize(("sessions", "threads"), [("8", "8"), ("40", "32"), ("2", "1")])
def test_sessions_that_would_take_every_thread_stop_the_start(sessions, threads):
    with pytest.raises(SettingsError, match="REALTIME_MAX_SESSIONS=.* must be below THREADS"):
        from_env({"REALTIME_MAX_SESSIONS": sessions, "THREADS": threads})


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_a_bad_bound_names_the_variable(value):
    with pytest.raises(SettingsError, match="REALTIME_MAX_SESSIONS"):
        from_env({"REALTIME_MAX_SESSIONS": value})
