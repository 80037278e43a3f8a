"""The audio every stage speaks: 16 kHz mono float32 in [-1, 1], decoded in windows of at most 30 s."""

SAMPLE_RATE = 16000  # Hz: every engine takes 16 kHz mono float32
WINDOW_SECONDS = 30  # Whisper's receptive field
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS  # 480000 samples in a 30-second window
HOP_LENGTH = 160  # samples per mel frame: 100 frames per second; `seek` counts these
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_LENGTH  # 3000 mel frames in a window: the encoder's input
AUDIO_TOKENS_PER_SECOND = 50  # the encoder's output: 1500 positions per 30 s window (2 mel frames each)
TIME_PRECISION = 0.02  # seconds per timestamp token: <|0.00|> ... <|30.00|>
TIMESTAMP_TOKENS = round(WINDOW_SECONDS / TIME_PRECISION) + 1  # 1501 timestamp tokens in the vocabulary
PCM_BYTES_PER_SECOND = SAMPLE_RATE * 2  # raw 16 kHz mono s16le (encode=false uploads): 32 kB per second
