// Live task progress. Prefers the server's event stream (GET /v1/tasks/{id}/events,
// Server-Sent Events); where the gateway has none (404) or the stream breaks, it falls back
// to short long-polls of GET /v1/tasks/{id}?wait_s=N, which return at once when the task ends.
//
// EventSource cannot send an Authorization header, so the stream is read with fetch() and the
// few lines of SSE framing are parsed here.

import { TERMINAL, api, apiUrl, authHeaders, errorFrom } from "./api.js";

// Short enough that a progress bar moves; the request still returns the moment a task ends.
const POLL_WAIT_S = 2;
const observed = new Map();

/** Remember when this tab first saw each status and stage of a task (for its timeline). */
function observe(task) {
  if (!task || !task.id) return;
  const seen = observed.get(task.id) || [];
  const key = task.status === "running" && task.stage ? task.stage : task.status;
  if (key && !seen.some((entry) => entry.key === key)) seen.push({ key, at: new Date() });
  observed.set(task.id, seen);
}

export function observedTimeline(taskId) {
  return observed.get(taskId) || [];
}

/**
 * Follow a task until it ends. ``onUpdate(task, mode)`` gets every change, ``mode`` being
 * "events" or "poll" (null for the first read). Resolves to the final task object; rejects with AbortError when
 * ``signal`` aborts, or with an ApiError the gateway gave (401/403/404 on the task itself).
 */
export async function watchTask(taskId, { onUpdate, signal, initial } = {}) {
  let task = initial || (await api(`v1/tasks/${encodeURIComponent(taskId)}`, { signal }));
  const report = (next, mode) => {
    task = { ...task, ...next };
    observe(task);
    onUpdate?.(task, mode);
  };
  report(task, null);
  if (TERMINAL.has(task.status)) return task;
  try {
    const done = await streamEvents(taskId, signal, (data) => report(data, "events"));
    if (done) {
      // Events may carry only part of the task: read the whole thing once at the end.
      const final = await api(`v1/tasks/${encodeURIComponent(taskId)}`, { signal });
      report(final, "events");
      return task;
    }
  } catch (exc) {
    if (exc.name === "AbortError" || (exc.status && exc.status !== 404)) throw exc;
  }
  return longPoll(taskId, signal, (data) => report(data, "poll"), () => task);
}

/** Returns true after a terminal event; false when the gateway has no stream or it ended early. */
async function streamEvents(taskId, signal, onData) {
  let response;
  try {
    response = await fetch(apiUrl(`v1/tasks/${encodeURIComponent(taskId)}/events`), {
      headers: authHeaders({ Accept: "text/event-stream" }),
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
        if (data && typeof data === "object") onData(data);
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

async function longPoll(taskId, signal, onData, current) {
  let failures = 0;
  for (;;) {
    try {
      const task = await api(`v1/tasks/${encodeURIComponent(taskId)}`,
        { query: { wait_s: POLL_WAIT_S }, signal });
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
