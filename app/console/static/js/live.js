// Live task progress. Prefers the server's event stream (GET /v1/tasks/{id}/events,
// Server-Sent Events); where the gateway has none (404) or the stream breaks, it falls back
// to short long-polls of GET /v1/tasks/{id}?wait_s=N, which return at once when the task ends.
//
// EventSource cannot send an Authorization header, so the stream is read with fetch() and the
// few lines of SSE framing are parsed here.
//
// The stream is also the task's history: with ``Last-Event-ID: 0`` the gateway replays every
// stored event (kept 24 h after a task ends), each with the task's ``updated_at`` as of that
// event — which is where the task page's timeline gets its times.

import { TERMINAL, api, apiUrl, authHeaders, errorFrom } from "./api.js";

// Short enough that a progress bar moves; the request still returns the moment a task ends.
const POLL_WAIT_S = 2;
const observed = new Map();

/** Where a task is: its status, or its stage while it runs. */
const stepOf = (task) => (task.status === "running" && task.stage ? task.stage : task.status);

/**
 * Note when a task reached each status and stage. ``exact`` times come from the event stream
 * (the moment the gateway stored the change); the others are the first time this tab saw it.
 */
function observe(task, { exact = false } = {}) {
  if (!task || !task.id) return;
  const seen = observed.get(task.id) || new Map();
  const key = stepOf(task);
  const at = task.updated_at ? new Date(task.updated_at) : new Date();
  const known = seen.get(key);
  if (key && (!known || (exact && (!known.exact || at < known.at)))) seen.set(key, { at, exact });
  observed.set(task.id, seen);
}

/** [{key, at, exact}] for a task, as far as this tab knows. */
export function observedTimeline(taskId) {
  return [...(observed.get(taskId) || new Map())].map(([key, value]) => ({ key, ...value }));
}

/**
 * Follow a task until it ends. ``onUpdate(task, mode)`` gets every change, ``mode`` being
 * "events" or "poll" (null for the first read). Resolves to the final task object; rejects with
 * AbortError when ``signal`` aborts, or with an ApiError the gateway gave (401/403/404 on the
 * task itself). ``history``: replay the task's stored events first (for its timeline; a task
 * that has ended is then read for its history alone). ``owner``: an admin's ``?owner=all``.
 */
export async function watchTask(taskId, { onUpdate, signal, initial, history = false, owner } = {}) {
  const path = `v1/tasks/${encodeURIComponent(taskId)}`;
  const query = owner ? { owner } : {};
  let task = initial || (await api(path, { query, signal }));
  const report = (next, mode) => {
    // A replayed event older than what is shown only adds to the timeline.
    if (next.updated_at && task.updated_at && Date.parse(next.updated_at) < Date.parse(task.updated_at)) return;
    task = { ...task, ...next };
    observe(task);
    onUpdate?.(task, mode);
  };
  report(task, null);
  const onEvent = (type, data) => {
    if (type !== "progress") observe({ id: taskId, ...data }, { exact: true });
    report(data, "events");
  };
  if (TERMINAL.has(task.status)) {
    if (history && !owner) {
      await streamEvents(taskId, signal, (type, data) => {
        if (type !== "progress") observe({ id: taskId, ...data }, { exact: true });
      }, { history }).catch((exc) => {
        if (exc.name === "AbortError") throw exc;
      });
    }
    return task;
  }
  try {
    // The stream reads the caller's own tasks; an admin following another tenant's polls.
    const done = !owner && await streamEvents(taskId, signal, onEvent, { history });
    if (done) {
      // Events may carry only part of the task: read the whole thing once at the end.
      const final = await api(path, { signal });
      report(final, "events");
      return task;
    }
  } catch (exc) {
    if (exc.name === "AbortError" || (exc.status && exc.status !== 404)) throw exc;
  }
  return longPoll(path, query, signal, (data) => report(data, "poll"), () => task);
}

/** Returns true after a terminal event; false when the gateway has no stream or it ended early. */
async function streamEvents(taskId, signal, onEvent, { history = false } = {}) {
  let response;
  const headers = { Accept: "text/event-stream", ...(history ? { "Last-Event-ID": "0" } : {}) };
  try {
    response = await fetch(apiUrl(`v1/tasks/${encodeURIComponent(taskId)}/events`), {
      headers: authHeaders(headers),
      signal,
      cache: "no-store",
    });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    return false;
  }
  if ([404, 405, 501].includes(response.status)) return false; // no event stream here
  if (!response.ok) throw await errorFrom(response);
  if (!(response.headers.get("content-type") || "").startsWith("text/event-stream")) return false;

  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (!event) continue;
        const data = event.data;
        if (data && typeof data === "object") onEvent(event.type, data);
        if (TERMINAL.has(event.type) || (data && TERMINAL.has(data.status))) return true;
      }
    }
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    return false; // the stream broke: carry on by polling
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments keep the connection alive
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") type = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return type === "message" ? null : { type, data: null };
  const text = data.join("\n");
  try {
    return { type, data: JSON.parse(text) };
  } catch {
    return { type, data: null };
  }
}

async function longPoll(path, query, signal, onData, current) {
  let failures = 0;
  for (;;) {
    try {
      const task = await api(path, { query: { ...query, wait_s: POLL_WAIT_S }, signal });
      failures = 0;
      onData(task);
      if (TERMINAL.has(task.status)) return current();
    } catch (exc) {
      if (exc.name === "AbortError" || (exc.status && exc.status < 500 && exc.status !== 429)) {
        throw exc;
      }
      // The gateway restarted or a proxy hiccuped: back off a little and keep following.
      failures += 1;
      await sleep(Math.min(1000 * failures, 5000), signal);
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    }, { once: true });
  });
}
