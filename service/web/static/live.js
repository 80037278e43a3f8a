// Live text from the microphone: OpenAI's Realtime transcription protocol on /v1/realtime (docs/api.md).
// The microphone is resampled to 24 kHz, sent as 16-bit PCM in base64 appends; the server's turn detection
// ends each turn; deltas are shown as they come, and each turn's completed transcript replaces them.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const RATE = 24000;
  let live = null;

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/v1/realtime?intent=transcription`;
  }

  function base64Pcm16(samples) {
    const bytes = new Uint8Array(samples.length * 2);
    const view = new DataView(bytes.buffer);
    samples.forEach((s, i) => view.setInt16(2 * i, Math.max(-1, Math.min(1, s)) * 32767, true));
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }

  // The microphone at the context's own rate (browsers refuse to connect a stream to a context of another
  // rate) -> 24 kHz, by linear interpolation carried across chunks.
  function resampler(fromRate) {
    const step = fromRate / RATE;
    let pos = 0;
    let last = 0;
    return (input) => {
      const x = new Float32Array(input.length + 1);
      x[0] = last;
      x.set(input, 1);
      const out = [];
      for (; pos <= x.length - 1; pos += step) {
        const i = Math.floor(pos);
        const f = pos - i;
        out.push(i + 1 < x.length ? x[i] * (1 - f) + x[i + 1] * f : x[i]);
      }
      pos -= x.length - 1;
      last = x[x.length - 1];
      return Float32Array.from(out);
    };
  }

  function turn(itemId) {
    let p = document.querySelector(`#live-text [data-item="${itemId}"]`);
    if (!p) {
      p = document.createElement("p");
      p.dataset.item = itemId;
      $("live-text").append(p);
    }
    return p;
  }

  function show(event) {
    if (event.type === "conversation.item.input_audio_transcription.delta") {
      turn(event.item_id).textContent += event.delta;
    } else if (event.type === "conversation.item.input_audio_transcription.completed") {
      const p = turn(event.item_id);
      p.textContent = event.transcript;
      p.dataset.final = "true";
    } else if (event.type === "input_audio_buffer.speech_started") {
      $("live-status").textContent = "Listening: speech…";
    } else if (event.type === "input_audio_buffer.speech_stopped") {
      $("live-status").textContent = "Listening";
    } else if (event.type === "error") {
      $("live-status").textContent = `Error: ${event.error.message}`;
    }
  }

  async function start() {
    const key = $("key").value.trim();
    // made during the click, before any await: a context made later may stay suspended (autoplay rules)
    const context = new AudioContext();
    const ws = new WebSocket(socketUrl(), ["realtime", ...(key ? [`openai-insecure-api-key.${key}`] : [])]);
    live = { ws, stream: null, context };
    // every listener before the first await: the socket may open while the microphone is being granted
    const opened = new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    ws.addEventListener("message", (m) => show(JSON.parse(m.data)));
    ws.addEventListener("close", (e) => {
      if (e.code !== 1000 && live) $("live-status").textContent = `Closed: ${e.reason || e.code}`;
      stop(false);
    });
    $("live-out").hidden = false;
    $("live-label").textContent = "Stop live text";
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    live.stream = stream;
    await opened;
    const input = { format: { type: "audio/pcm", rate: RATE }, turn_detection: { type: "server_vad" } };
    ws.send(JSON.stringify({ type: "session.update", session: { type: "transcription", audio: { input } } }));
    const source = context.createMediaStreamSource(stream);
    const processor = context.createScriptProcessor(4096, 1, 1);
    const to24k = resampler(context.sampleRate);
    processor.onaudioprocess = (e) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const audio = base64Pcm16(to24k(e.inputBuffer.getChannelData(0)));
      ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio }));
    };
    source.connect(processor);
    processor.connect(context.destination);
    context.resume();
    $("live-status").textContent = "Listening";
  }

  function stop(closeSocket = true) {
    if (!live) return;
    const { ws, stream, context } = live;
    live = null;
    stream?.getTracks().forEach((t) => t.stop());
    context.close();
    if (closeSocket) ws.close(1000);
    $("live-label").textContent = "Live text";
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("live").addEventListener("click", () => (live ? stop() : start().catch((e) => {
      $("live-out").hidden = false;
      $("live-status").textContent = `Microphone unavailable: ${e.message}`;
      stop();
    })));
  });
})();
