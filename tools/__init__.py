"""Offline tools, not part of the service or its image.

checkpoints.py  random-weight Whisper checkpoints for tests and benchmarks (`make checkpoint`)
convert/        openai-whisper .pt -> CTranslate2 directory for faster-whisper (`make convert`), step by step
import_ct2.py   CTranslate2 Whisper directory -> openai-whisper .pt (`make convert`, the other way)
ct2_model.py    a numpy reader of CTranslate2's model.bin
embedded.py     the embedded default model: the packaged tiny.en, ready for both engines (`make run`)
configuration_docs.py  docs/configuration.md from the settings' declarations
conversations.py  espeak-ng conversations of 2-4 voices with reference turns (tests/speakers, bench/)
"""
