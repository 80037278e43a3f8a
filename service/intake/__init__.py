"""Intake: what happens to an upload before the scheduler sees it.

upload.py   the request body -> a private temp file, deleted afterwards
ffmpeg.py   the temp file -> 16 kHz mono float32: ffmpeg opens nothing but the upload; duration refused from
            the header, decoding stopped at the limit and spooled to disk; a bound on decodes at once
vad.py      Silero voice-activity detection -> speech regions (silence and noise are never decoded)
windows.py  speech regions -> windows of at most 30 s of speech, and the map back to file times
"""
