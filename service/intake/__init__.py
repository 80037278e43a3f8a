"""Intake: what happens to an upload before the scheduler sees it.

upload.py   the request body -> a private temp file -> ffmpeg -> 16 kHz mono float32, with size, duration
            and time limits
vad.py      Silero voice-activity detection -> speech regions (silence and noise are never decoded)
windows.py  speech regions -> windows of at most 30 s of speech, and the map back to file times
"""
