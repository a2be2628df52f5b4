// The console's only way to the gateway: the public HTTP API with the user's bearer token.
// The token lives in this tab's sessionStorage (gone when the tab closes; never a cookie or URL).

const TOKEN_KEY = "vgw.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An error answer from the gateway, in its error shape: {error: {code, message, retryable}}. */
export class ApiError extends Error {
  constructor(status, code, message, { retryable = false, detail = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.detail = detail;
  }
}

/** The gateway's root as this page reaches it (works behind a proxy path prefix too). */
export function baseUrl() {
  return new URL(".", document.baseURI).href.replace(/\/$/, "");
}

/** A URL under the gateway for ``path`` (no leading slash) and optional query values. */
export function apiUrl(path, query = {}) {
  const url = new URL(path, new URL(".", document.baseURI));
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url;
}

export function authHeaders(extra = {}) {
  const value = token.get();
  return value ? { Authorization: `Bearer ${value}`, ...extra } : { ...extra };
}

/** Turn a non-2xx response into an ApiError, reading the gateway's error body when there is one. */
export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  const err = body && body.error;
  if (err && typeof err === "object") {
    let message = err.message || response.statusText;
    if (Array.isArray(body.detail) && err.code === "validation_error") {
      const parts = body.detail.slice(0, 4).map((d) =>
        `${(d.loc || []).filter((p) => p !== "body").join(".") || "body"}: ${d.msg}`);
      message = parts.join("; ") || message;
    }
    return new ApiError(response.status, err.code || "error", message,
      { retryable: !!err.retryable, detail: body.detail });
  }
  return new ApiError(response.status, `http_${response.status}`,
    `${response.status} ${response.statusText}`.trim());
}

/**
 * Call the API: ``api("v1/tasks", {query: {limit: 10}})``; ``body`` is sent as JSON.
 * Resolves to the parsed JSON (or text with ``as: "text"``); rejects with ApiError.
 */
export async function api(path, { method = "GET", body, query, signal, as = "json", headers } = {}) {
  const init = { method, signal, headers: authHeaders(headers) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), init);
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network_error", exc.message || "network error", { retryable: true });
  }
  if (!response.ok) throw await errorFrom(response);
  return as === "text" ? response.text() : response.json();
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
