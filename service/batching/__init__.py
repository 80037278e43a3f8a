"""Batching: a request's work, the queue's admission, and the inference thread that packs the windows of
many requests into model calls.

job.py         a request's work as the scheduler sees it: its options, windows, segments, events
placement.py   where a decode's segments go and what is left to decode: pure functions
speech_map.py  word times held to the speech map (VAD's regions, made also without VAD): a pure function
scheduler.py   the request threads' side: admission (admission.py, fairshare.py), submit, cancel, wait
work.py        what waits for the model, under one lock, and the rule that takes a batch from it
sizing.py      how many inputs a CPU call takes: full while only long work waits, small while a clip may come
model_loop.py  the inference thread: detection, batched decoding, fallback, rests, out-of-memory splits

The decoding vocabulary, six nouns (docs/architecture.md holds the same list):
  region   a stretch of the file, in samples: VAD's speech, or one contiguous part of a window
  window   at most 30 s of audio, one or more regions concatenated (intake/windows.py); results are per window
  rest     a window from an offset to its end: what is left to decode of it (a whole window: its rest from 0)
  input    one row of a model call: one or more rests packed in order, at one step of the temperature ladder
  call     the inputs decoded together, with equal decoding options (work.take_batch); BATCH_SIZE at most
  segment  text with its start and end, as Whisper returns it and the response carries it
"""
