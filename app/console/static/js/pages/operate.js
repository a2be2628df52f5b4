// Operate: readiness, providers (and their breakers where the gateway reports them), task
// counts from /metrics, recent failures by error code, and managed tokens. Every section reads
// a public endpoint and says plainly when this gateway (or this token) does not offer it.

import { api } from "../api.js";
import { field, h, replace } from "../dom.js";
import { formatDateTime, relativeTime, t } from "../i18n.js";
import { describe } from "./create.js";

export function render(main, { state, signal }) {
  const sections = {
    ready: h("div"), providers: h("div"), counts: h("div"), failures: h("div"), tokens: h("div"),
  };
  replace(main,
    h("h1", {}, t("operate.title")),
    h("div", { class: "operate-grid" },
      card(t("operate.ready"), sections.ready),
      card(t("operate.providers"), sections.providers),
      card(t("operate.counts"), sections.counts, t("operate.counts.hint")),
      card(t("operate.failures"), sections.failures, t("operate.failures.hint")),
      card(t("operate.tokens"), sections.tokens, null, "wide")));

  const failed = (el) => (exc) => {
    if (exc.name === "AbortError") return;
    replace(el, h("p", { class: "muted" }, unavailable(exc)));
  };

  api("readyz", { signal }).then((body) => drawReady(sections.ready, body, true)).catch((exc) => {
    if (exc.status === 503) drawReady(sections.ready, { checks: exc.detail }, false);
    else failed(sections.ready)(exc);
  });
  state.once("v1/providers").then((list) => drawProviders(sections.providers, list))
    .catch(failed(sections.providers));
  api("metrics", { signal, as: "text" }).then((text) => drawCounts(sections.counts, parseMetrics(text)))
    .catch(failed(sections.counts));
  api("v1/tasks", { query: { status: "failed", limit: 100 }, signal })
    .then((page) => drawFailures(sections.failures, page.data || []))
    .catch(failed(sections.failures));
  drawTokens(sections.tokens, signal);
}

function card(title, body, hint, extra = "") {
  return h("section", { class: `card ${extra}` }, h("h2", {}, title),
    hint ? h("p", { class: "muted small" }, hint) : null, body);
}

function unavailable(exc) {
  if (exc.status === 404) return t("operate.missing");
  if (exc.status === 403) return t("operate.admin_only");
  return describe(exc);
}

function drawReady(el, body, ok) {
  const checks = body && typeof body.checks === "object" && body.checks ? body.checks : {};
  replace(el,
    h("p", {}, h("span", { class: `chip ${ok ? "status-succeeded" : "status-failed"}` },
      ok ? t("operate.ready.yes") : t("operate.ready.no"))),
    Object.keys(checks).length
      ? h("table", { class: "compact" }, h("tbody", {}, Object.entries(checks).map(([name, result]) =>
        h("tr", {}, h("th", { scope: "row" }, name),
          h("td", { class: result === "ok" ? "" : "bad" }, String(result))))))
      : h("p", { class: "muted small" }, t("operate.ready.no_details")));
}

function drawProviders(el, list) {
  const rows = list.data || [];
  replace(el, h("table", { class: "compact" },
    h("thead", {}, h("tr", {}, [t("operate.provider"), t("operate.health"), t("operate.accepts")]
      .map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows.map((p) => {
      const caps = p.capabilities || {};
      // Breakers arrive with "Real time at scale": read whichever shape the gateway sends.
      const breaker = p.breaker || p.health || null;
      const stateWord = breaker ? (breaker.state || breaker.status || String(breaker)) : null;
      return h("tr", {},
        h("th", { scope: "row" }, p.name, p.default ? h("span", { class: "chip" }, t("create.provider.default")) : null),
        h("td", {}, stateWord
          ? h("span", { class: `chip breaker-${stateWord}` }, t(`breaker.${stateWord}`, {}, stateWord))
          : h("span", { class: "muted" }, t("operate.health.unknown"))),
        h("td", { class: "small" }, [
          caps.image_input ? t("operate.cap.image") : null,
          caps.last_frame ? t("operate.cap.last_frame") : null,
          caps.negative_prompt ? t("operate.cap.negative") : null,
          (caps.aspect_ratios || []).join(" "),
        ].filter(Boolean).join(" · ")));
    }))));
}

/** Prometheus text format → [{name, labels, value}] (enough of it for counters and gauges). */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match || line.startsWith("#")) continue;
    const labels = {};
    for (const [, key, value] of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, "$1");
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function drawCounts(el, samples) {
  const sum = (name, filter = () => true) => samples
    .filter((s) => s.name === name && filter(s.labels)).reduce((total, s) => total + s.value, 0);
  const providers = [...new Set(samples
    .filter((s) => s.name === "vgw_tasks_created_total" || s.name === "vgw_tasks_finished_total")
    .map((s) => s.labels.provider).filter(Boolean))].sort();
  const statuses = ["succeeded", "failed", "cancelled"];
  replace(el,
    h("p", {}, h("strong", { class: "big" }, String(sum("vgw_tasks_active"))), " ", t("operate.active")),
    providers.length
      ? h("table", { class: "compact" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("operate.provider")),
          h("th", { scope: "col" }, t("operate.created")),
          statuses.map((s) => h("th", { scope: "col" }, t(`status.${s}`))))),
        h("tbody", {}, providers.map((name) => h("tr", {},
          h("th", { scope: "row" }, name),
          h("td", {}, String(sum("vgw_tasks_created_total", (l) => l.provider === name))),
          statuses.map((s) => h("td", {}, String(sum("vgw_tasks_finished_total",
            (l) => l.provider === name && l.status === s))))))))
      : h("p", { class: "muted" }, t("operate.counts.none")));
}

function drawFailures(el, tasks) {
  const groups = new Map();
  for (const task of tasks) {
    const code = task.error?.code || "unknown";
    const group = groups.get(code) || { code, count: 0, latest: task };
    group.count += 1;
    if (task.created_at > group.latest.created_at) group.latest = task;
    groups.set(code, group);
  }
  const sorted = [...groups.values()].sort((a, b) => b.count - a.count);
  replace(el, sorted.length
    ? h("table", { class: "compact" },
      h("thead", {}, h("tr", {}, [t("operate.code"), t("operate.count"), t("operate.latest")]
        .map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, sorted.map((g) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/tasks?status=failed` }, h("code", {}, g.code))),
        h("td", {}, String(g.count)),
        h("td", { class: "small" },
          h("a", { href: `#/tasks/${g.latest.id}` }, relativeTime(g.latest.created_at)), " ",
          g.latest.error?.message || "")))))
    : h("p", { class: "muted" }, t("operate.failures.none")));
}

/**
 * Managed tokens (admin). The gateway manages tokens from its CLI today; the console expects
 * GET/POST /v1/tokens, POST /v1/tokens/{id}/rotate and DELETE /v1/tokens/{id} and says so
 * until they answer.
 */
function drawTokens(el, signal) {
  const table = h("table", { class: "compact" },
    h("thead", {}, h("tr", {}, [t("tokens.name"), t("tokens.limits"), t("tokens.today"),
      t("tokens.last_used"), ""].map((label) => h("th", { scope: "col" }, label)))));
  const body = h("tbody");
  table.append(body);
  const note = h("p", { class: "muted" });
  const created = h("div", { class: "alert ok", role: "status", hidden: true });
  const name = h("input", { type: "text", required: true, maxlength: 64 });
  const admin = h("input", { type: "checkbox" });
  const rate = h("input", { type: "number", min: 0, step: 0.5 });
  const maxActive = h("input", { type: "number", min: 0, step: 1 });
  const perDay = h("input", { type: "number", min: 0, step: 1 });
  const providers = h("input", { type: "text", placeholder: "seedance,preview" });
  const submit = h("button", { type: "submit", class: "secondary" }, t("tokens.create"));
  // Disabled until the gateway's token API answers.
  const inputs = h("fieldset", { class: "row token-form", disabled: true },
    h("legend", { class: "sr-only" }, t("tokens.create")),
    field(t("tokens.name"), name),
    field(t("tokens.rate"), rate),
    field(t("tokens.max_active"), maxActive),
    field(t("tokens.per_day"), perDay),
    field(t("tokens.providers"), providers),
    h("label", { class: "check" }, admin, t("tokens.admin")),
    h("div", { class: "actions" }, submit));
  const form = h("form", {}, inputs);
  replace(el, note, created, table, form);

  const number = (input) => (input.value === "" ? undefined : Number(input.value));
  const showSecret = (result) => {
    const secret = result.token || result.secret;
    replace(created, t("tokens.shown_once"), " ", h("code", { class: "select-all" }, secret || "?"));
    created.hidden = !secret;
  };

  async function load() {
    try {
      const list = await api("v1/tokens", { signal });
      inputs.disabled = false;
      note.textContent = "";
      replace(body, (list.data || []).map((tok) => h("tr", {},
        h("th", { scope: "row" }, tok.name || tok.id, tok.admin ? h("span", { class: "chip" }, "admin") : null,
          tok.revoked_at ? h("span", { class: "chip status-cancelled" }, t("tokens.revoked")) : null),
        h("td", { class: "small" }, [
          tok.rate != null ? `${tok.rate}/s` : null,
          tok.max_active != null ? `${t("tokens.max_active")} ${tok.max_active}` : null,
          tok.tasks_per_day != null ? `${t("tokens.per_day")} ${tok.tasks_per_day}` : null,
          Array.isArray(tok.providers) && tok.providers.length ? tok.providers.join(",") : null,
        ].filter(Boolean).join(" · ") || "—"),
        h("td", {}, tok.usage_today != null ? String(tok.usage_today) : "—"),
        h("td", { class: "small" }, tok.last_used_at ? formatDateTime(tok.last_used_at) : "—"),
        h("td", {}, tok.revoked_at ? null : h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary",
            onclick: () => act(`v1/tokens/${encodeURIComponent(tok.id)}/rotate`, "POST") }, t("tokens.rotate")),
          h("button", { type: "button", class: "secondary danger",
            onclick: () => act(`v1/tokens/${encodeURIComponent(tok.id)}`, "DELETE") }, t("tokens.revoke")))))));
    } catch (exc) {
      if (exc.name === "AbortError") return;
      note.textContent = exc.status === 404 ? t("tokens.missing") : unavailable(exc);
      replace(body, h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, "—")));
    }
  }

  async function act(path, method, payload) {
    try {
      const result = await api(path, { method, body: payload, signal });
      if (result && (result.token || result.secret)) showSecret(result);
      await load();
    } catch (exc) {
      if (exc.name !== "AbortError") note.textContent = describe(exc);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!name.value.trim()) return;
    act("v1/tokens", "POST", Object.fromEntries(Object.entries({
      name: name.value.trim(), admin: admin.checked, rate: number(rate),
      max_active: number(maxActive), tasks_per_day: number(perDay),
      providers: providers.value.trim() ? providers.value.split(",").map((p) => p.trim()).filter(Boolean) : undefined,
    }).filter(([, v]) => v !== undefined)));
  });
  load();
}
