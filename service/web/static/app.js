"use strict";
// The transcription page. It is a client of this server's OpenAI endpoints like any other, and sends each
// file once: POST /v1/audio/{transcriptions,translations} with stream=true and response_format=verbose_json
// (this server's extension, docs/api.md). Each transcript.text.delta carries one finished segment with its
// times, shown as it arrives; transcript.text.done carries verbose_json's language, duration and segments,
// which replace the live parts. Every download is built from that one result, so what the page shows and
// what it saves agree, and the file is decoded once.
// The .srt and .vtt writers below reproduce service/formats.py byte for byte (tests/web check it).

const KEY_STORAGE = "whisper-service-api-key"; // sessionStorage only: gone when the tab closes
const $ = (id) => document.getElementById(id);
const state = { file: null, durationHint: null, controller: null, result: null, recorder: null };

// -- subtitle writers: the same bytes as service/formats.py -------------------------------------------------
// Python's str.isspace() characters (what \s and strip() mean there), which differ a little from JavaScript's \s
const PY_SPACE = "\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const LINE_BREAKS = new RegExp(`[${PY_SPACE}]*[\\r\\n]+[${PY_SPACE}]*`, "g");
const EDGE_SPACE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "g");

function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; // Python's round()
}

function pad(n, width) {
  return String(n).padStart(width, "0");
}

function clock(seconds, separator) {
  let millis = Math.max(0, roundHalfEven(seconds * 1000));
  const hours = Math.floor(millis / 3600000);
  millis -= hours * 3600000;
  const minutes = Math.floor(millis / 60000);
  millis -= minutes * 60000;
  const secs = Math.floor(millis / 1000);
  millis -= secs * 1000;
  return `${pad(hours, 2)}:${pad(minutes, 2)}:${pad(secs, 2)}${separator}${pad(millis, 3)}`;
}

function cueText(text) {
  return text.replace(LINE_BREAKS, " ").replace(EDGE_SPACE, "").replace(/-{2,}>/g, "->");
}

function cues(segments, voices = false) {
  const out = [];
  let last = 0;
  for (const segment of segments) {
    const text = cueText(segment.text);
    if (!text) continue;
    const who = segment.speaker && cueText(segment.speaker); // diarize=true: as the server's srt and vtt
    const said = !who ? text : voices ? `<v ${who.replace(/[<>&]/g, "") || "?"}>${text}` : `[${who}] ${text}`;
    const start = Math.max(Number(segment.start), last);
    const end = Math.max(Number(segment.end), start);
    out.push([start, end, said]);
    last = end;
  }
  return out;
}

const WRITERS = {
  txt: (result) => `${result.text}\n`,
  json: (result) => result.body, // the verbose_json response, rebuilt from the stream's done event
  srt: (result) =>
    cues(result.segments)
      .map(([a, b, text], i) => `${i + 1}\n${clock(a, ",")} --> ${clock(b, ",")}\n${text}\n`)
      .join("\n"),
  vtt: (result) =>
    "WEBVTT\n\n" +
    cues(result.segments, true)
      .map(([a, b, text]) => `${clock(a, ".")} --> ${clock(b, ".")}\n${text}\n`)
      .join("\n"),
};
const MIME = { txt: "text/plain", json: "application/json", srt: "application/x-subrip", vtt: "text/vtt" };

// -- talking to the API ---------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message || `HTTP ${status}`);
    this.status = status; // 0: no answer at all; -1: an error event inside the stream
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function requestBody(task, fields) {
  const body = new FormData();
  body.append("file", state.file, state.file.name || "audio");
  body.append("model", "whisper-1");
  const language = $("language").value;
  if (task === "transcribe" && language) body.append("language", language);
  for (const [name, value] of Object.entries(fields)) body.append(name, value);
  return body;
}

async function post(task, fields, signal) {
  const key = $("key").value.trim();
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const url = task === "translate" ? "/v1/audio/translations" : "/v1/audio/transcriptions";
  let response;
  try {
    response = await fetch(url, { method: "POST", body: requestBody(task, fields), headers, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network", error.message);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not the service's JSON error shape (a proxy's page, say): the status says enough
  }
  return new ApiError(response.status, error.code, error.message, response.headers.get("Retry-After"));
}

function parseEvent(block) {
  const data = block
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).replace(/^ /, ""))
    .join("\n");
  return data ? JSON.parse(data) : null;
}

async function readStream(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) onEvent(event);
    }
  }
}

async function streamTranscript(task, signal) {
  const fields = { stream: "true", response_format: "verbose_json" };
  if (task === "transcribe" && $("speakers").checked) fields.diarize = "true"; // speakers: docs/api.md
  const response = await post(task, fields, signal);
  setState("streaming");
  let done = null;
  let parts = 0;
  showProgress(null, "Transcribing…");
  await readStream(response, (event) => {
    if (event.type === "transcript.text.delta") {
      parts += 1;
      addPart(event, parts);
    } else if (event.type === "transcript.text.done") {
      done = event;
    } else if (event.type === "error") {
      throw new ApiError(-1, event.error?.code, event.error?.message);
    }
  });
  if (!done) throw new ApiError(-1, "incomplete", "the connection closed before the transcript was complete.");
  const verbose = verboseJson(done);
  return { ...verbose, body: JSON.stringify(verbose, null, 2) };
}

// What response_format=verbose_json returns, rebuilt from a verbose_json stream's done event: the same fields
// in the same order. Only usage differs: the event counts tokens (the only usage OpenAI's clients accept
// there), its input_tokens the audio's 50 encoder positions a second rounded up, while verbose_json bills
// whole seconds rounded up: ceil(ceil(50 d) / 50) = ceil(d).
function verboseJson(done) {
  const body = { task: done.task, language: done.language, duration: done.duration, text: done.text };
  if (done.segments) body.segments = done.segments;
  if (done.words) body.words = done.words;
  body.usage = { type: "duration", seconds: Math.ceil(done.usage.input_tokens / 50) };
  return body;
}

// -- what a person reads ------------------------------------------------------------------------------------
function waitText(retryAfter) {
  const seconds = Number(retryAfter);
  if (!Number.isFinite(seconds) || seconds <= 0) return "Please try again in a moment.";
  return `Please try again in ${seconds} second${seconds === 1 ? "" : "s"}.`;
}

function describe(error) {
  if (!(error instanceof ApiError)) return `Something went wrong on this page: ${error.message}`;
  const hasKey = Boolean($("key").value.trim());
  switch (error.status) {
    case 0:
      return "Could not reach the server. Check your network connection and that the service is running.";
    case -1:
      return `The transcription stopped before the end: ${error.message}`;
    case 401:
      return hasKey
        ? "The server did not accept this API key. Check the key and try again."
        : "This server needs an API key. Enter it above and try again.";
    case 413:
      return (
        `This file (${size(state.file.size)}) is larger than this server accepts. ` +
        "Try a shorter recording, or a compressed format such as MP3 or Opus."
      );
    case 429:
      return `The server is busy with other transcriptions right now. ${waitText(error.retryAfter)}`;
    case 503:
      return `The server is not ready yet (it may be starting or restarting). ${waitText(error.retryAfter)}`;
    case 504:
      return "The transcription took longer than this server allows. Try a shorter file.";
    case 507:
      return "The server has no room to store this upload right now. Try again later, or a smaller file.";
    case 400:
      return `The server could not use this file or setting: ${error.message}`;
    default:
      return `The server answered with an error (${error.status}): ${error.message}`;
  }
}

function size(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function minutes(seconds) {
  const total = Math.max(0, seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = (total % 60).toFixed(1).padStart(4, "0");
  return h ? `${h}:${pad(m, 2)}:${s}` : `${m}:${s}`;
}

function languageName(code) {
  try {
    return new Intl.DisplayNames(["en"], { type: "language" }).of(code) || code;
  } catch {
    return code;
  }
}

function capitalised(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function showProgress(fraction, text) {
  $("progress").hidden = false;
  $("bar").classList.toggle("unknown", fraction === null);
  $("bar-fill").style.width = fraction === null ? "" : `${Math.round(fraction * 100)}%`;
  $("status").textContent = text;
}

function setState(name) {
  $("app").dataset.state = name;
  const busy = ["uploading", "streaming"].includes(name);
  $("go").disabled = busy || Boolean(state.recorder);
  $("cancel").hidden = !busy;
  for (const id of ["file", "task", "format", "key", "record", "speakers"]) $(id).disabled = busy;
  $("language").disabled = busy || $("task").value === "translate"; // translations: any language to English
}

function segmentItem(label, text, kind) {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = label;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(time, body);
  return item;
}

function addPart(event, index) {
  const text = (event.delta || "").trim();
  const segment = event.segment || {};
  const timed = Number.isFinite(segment.start) && Number.isFinite(segment.end);
  if (text) {
    const label = timed ? minutes(segment.start) : `part ${index}`;
    $("segments").append(segmentItem(label, text, "part"));
    $("result").hidden = false;
  }
  const duration = state.durationHint;
  const fraction = timed && duration ? Math.min(1, segment.end / duration) : null;
  const of = duration ? ` ${minutes(duration)} of audio` : "";
  showProgress(fraction, `Transcribing${of}… ${index} part${index === 1 ? "" : "s"} so far.`);
}

function showResult(result, task, seconds) {
  const list = $("segments");
  list.replaceChildren();
  for (const segment of result.segments || []) {
    const text = segment.text.trim();
    const who = segment.speaker ? ` · ${segment.speaker}` : "";
    if (text) list.append(segmentItem(`${minutes(segment.start)} – ${minutes(segment.end)}${who}`, text, "segment"));
  }
  if (!list.children.length) list.append(segmentItem("", "No speech found in this file.", "empty"));
  const chosen = task === "transcribe" && $("language").value;
  const language = capitalised(result.language || "");
  const out = $("language-out");
  out.textContent = task === "translate" ? `${language} → English` : `${language} (${chosen ? "chosen" : "detected"})`;
  out.hidden = !language;
  $("result").hidden = false;
  $("actions").hidden = false;
  showProgress(1, `Done: ${minutes(result.duration || 0)} of audio in ${seconds.toFixed(1)} s.`);
}

// -- one transcription ---------------------------------------------------------------------------------------
async function transcribe() {
  if (!state.file) {
    showError("Choose an audio file first (or record one).");
    return;
  }
  $("error").hidden = true;
  $("segments").replaceChildren();
  $("result").hidden = true;
  $("actions").hidden = true;
  state.result = null;
  const task = $("task").value;
  const controller = new AbortController();
  state.controller = controller;
  const began = performance.now();
  setState("uploading");
  showProgress(null, `Uploading ${size(state.file.size)}…`);
  try {
    state.result = await streamTranscript(task, controller.signal);
    showResult(state.result, task, (performance.now() - began) / 1000);
    setState("done");
  } catch (error) {
    const cancelled = error.name === "AbortError";
    setState(cancelled ? "cancelled" : "error");
    $("progress").hidden = true;
    if (!cancelled) showError(describe(error));
    if (error.status === 401) showKeyField(true);
  } finally {
    state.controller = null;
  }
}

function download(format) {
  if (!state.result) return;
  const blob = new Blob([WRITERS[format](state.result)], { type: `${MIME[format]};charset=utf-8` });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${(state.file.name || "audio").replace(/\.[^.]*$/, "") || "audio"}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

async function copyText() {
  const text = (state.result?.text || "").trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // no clipboard API (plain http on another host): copy through a selected, off-screen text area
    const area = document.createElement("textarea");
    area.value = text;
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  $("copy").textContent = "Copied";
  setTimeout(() => ($("copy").textContent = "Copy text"), 1500);
}

// -- choosing a file -----------------------------------------------------------------------------------------
function readDuration(file) {
  return new Promise((resolve) => {
    const audio = document.createElement("audio");
    const url = URL.createObjectURL(file);
    const finish = (value) => {
      clearTimeout(timer);
      URL.revokeObjectURL(url);
      resolve(Number.isFinite(value) && value > 0 ? value : null);
    };
    const timer = setTimeout(() => finish(null), 5000);
    audio.preload = "metadata";
    audio.addEventListener("loadedmetadata", () => finish(audio.duration));
    audio.addEventListener("error", () => finish(null));
    audio.src = url;
  });
}

async function setFile(file, knownDuration = null) {
  state.file = file;
  state.durationHint = knownDuration;
  const name = $("file-name");
  name.hidden = !file;
  if (!file) return;
  name.textContent = `${file.name || "recording"} · ${size(file.size)}`;
  $("error").hidden = true;
  const duration = knownDuration || (await readDuration(file));
  if (state.file !== file) return; // another file was chosen meanwhile
  state.durationHint = duration;
  if (duration) name.textContent += ` · ${minutes(duration)}`;
}

function setUpDrop() {
  const drop = $("drop");
  $("file").addEventListener("change", () => setFile($("file").files[0] || null));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) setFile(file);
  });
}

// -- recording from the microphone (secure contexts only: https, or localhost) ------------------------------
async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    showError(`The browser did not give this page the microphone (${error.message}).`);
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  const started = performance.now();
  const tick = setInterval(() => {
    $("record-time").textContent = minutes((performance.now() - started) / 1000);
  }, 200);
  recorder.addEventListener("dataavailable", (event) => event.data.size && chunks.push(event.data));
  recorder.addEventListener("stop", () => {
    clearInterval(tick);
    for (const track of stream.getTracks()) track.stop();
    const type = recorder.mimeType || "audio/webm";
    const extension = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    state.recorder = null;
    $("record-row").classList.remove("recording");
    $("record-label").textContent = "Record again";
    setFile(new File(chunks, `recording.${extension}`, { type }), (performance.now() - started) / 1000);
    setState($("app").dataset.state);
  });
  recorder.start(1000);
  state.recorder = recorder;
  $("record-row").classList.add("recording");
  $("record-label").textContent = "Stop recording";
  setState($("app").dataset.state);
}

// -- start-up: what this server offers, from its own /openapi.json ------------------------------------------
function showKeyField(focus) {
  $("key-row").hidden = false;
  if (focus) $("key").focus();
}

async function readServerDescription() {
  let doc;
  try {
    doc = await (await fetch("/openapi.json")).json();
  } catch {
    return; // the form still works: detect the language, and ask for a key if the server answers 401
  }
  if ((doc.security || []).length) showKeyField(false);
  const form = doc.paths?.["/v1/audio/transcriptions"]?.post?.requestBody?.content?.["multipart/form-data"];
  const codes = form?.schema?.properties?.language?.enum || [];
  const options = codes.map((code) => [languageName(code), code]).sort((a, b) => a[0].localeCompare(b[0]));
  for (const [name, code] of options) $("language").append(new Option(name, code));
}

function updateDownloadChoice() {
  const format = $("format").value;
  const primary = $("download");
  primary.dataset.format = format;
  primary.textContent = `Download .${format}`;
  for (const button of document.querySelectorAll(".actions .link")) button.hidden = button.dataset.format === format;
}

function start() {
  $("key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  if ($("key").value) showKeyField(false);
  $("key").addEventListener("input", () => sessionStorage.setItem(KEY_STORAGE, $("key").value.trim()));
  $("task").addEventListener("change", () => setState($("app").dataset.state));
  $("format").addEventListener("change", updateDownloadChoice);
  updateDownloadChoice();
  setUpDrop();
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    transcribe();
  });
  $("cancel").addEventListener("click", () => state.controller?.abort());
  $("copy").addEventListener("click", copyText);
  for (const button of document.querySelectorAll("[data-format]")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  const canRecord = window.isSecureContext && navigator.mediaDevices?.getUserMedia && window.MediaRecorder;
  $("record-row").hidden = !canRecord;
  $("record").addEventListener("click", toggleRecording);
  readServerDescription();
}

start();
