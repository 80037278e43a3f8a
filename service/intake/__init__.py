"""Intake: upload -> temp file -> 16 kHz float32 -> speech regions -> windows; admission."""
