// Operate. For every token: who it is (GET /v1/me), provider health (GET /v1/providers'
// circuits) and readiness. For admin tokens also: the breakers in detail (GET /readyz), task
// counts, the queue and recent failures across every tenant and replica (GET /v1/admin/stats),
// and managed tokens (/v1/admin/tokens: create, rotate with a grace period, revoke).
// Whether the admin parts show is decided by /v1/me, never by trying and failing.

import { api } from "../api.js";
import { copyButton, field, h, replace } from "../dom.js";
import { formatDateTime, relativeTime, t } from "../i18n.js";
import { describe } from "./create.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const WINDOWS = [1, 24, 168];
const GRACES = [0, 600, 3600, 86400, 7 * 86400];

export function render(main, { state, signal }) {
  const el = {
    me: h("div"), providers: h("div"), ready: h("div"),
    now: h("div"), window: h("div"), failures: h("div"), tokens: h("div"),
  };
  const hours = h("select", { name: "hours" },
    WINDOWS.map((n) => h("option", { value: n, selected: n === (state.statsHours || 24) },
      t(`operate.window.${n}`))));
  const admin = h("div", { class: "operate-grid", testid: "admin-sections", hidden: true },
    card(t("operate.now"), el.now, { testid: "operate-now" }),
    card(t("operate.counts"), el.window, {
      testid: "operate-counts", tools: field(t("operate.window"), hours),
    }),
    card(t("operate.failures"), el.failures, {
      testid: "operate-failures", hint: t("operate.failures.hint"), wide: true,
    }),
    card(t("operate.tokens"), el.tokens, { testid: "operate-tokens", wide: true }));
  const refresh = h("button", { type: "button", class: "secondary" }, t("operate.refresh"));
  replace(main,
    h("div", { class: "row-between" }, h("h1", {}, t("operate.title")), refresh),
    h("div", { class: "operate-grid" },
      card(t("operate.me"), el.me, { testid: "operate-me" }),
      card(t("operate.ready"), el.ready, { testid: "operate-ready" }),
      card(t("operate.providers"), el.providers, { testid: "operate-providers", wide: true })),
    admin);

  const failed = (target) => (exc) => {
    if (exc.name !== "AbortError") replace(target, h("p", { class: "alert error", role: "alert" }, describe(exc)));
  };

  let tokens = null;
  async function load() {
    const [me, providers, ready] = await Promise.all([
      api("v1/me", { signal }).catch((exc) => exc),
      api("v1/providers", { signal }).catch((exc) => exc),
      readiness(signal),
    ]);
    if (me instanceof Error) failed(el.me)(me);
    else drawMe(el.me, me);
    if (providers instanceof Error) failed(el.providers)(providers);
    else drawProviders(el.providers, providers.data || [], ready.providers || null);
    drawReady(el.ready, ready);
    const isAdmin = !(me instanceof Error) && me.admin;
    admin.hidden = !isAdmin;
    if (!isAdmin) return;
    loadStats();
    tokens ||= tokenManager(el.tokens, {
      signal, providers: providers instanceof Error ? [] : providers.data || [],
    });
    tokens.load();
  }

  function loadStats() {
    state.statsHours = Number(hours.value);
    api("v1/admin/stats", { query: { hours: hours.value }, signal })
      .then((stats) => {
        drawNow(el.now, stats.active);
        drawWindow(el.window, stats);
        drawFailures(el.failures, stats.failures);
      })
      .catch((exc) => [el.now, el.window, el.failures].forEach((target) => failed(target)(exc)));
  }

  const reload = () => load().catch((exc) => {
    if (exc.name !== "AbortError") throw exc;
  });
  hours.addEventListener("change", loadStats);
  refresh.addEventListener("click", reload);
  reload();
}

function card(title, body, { hint, wide, testid, tools } = {}) {
  return h("section", { class: `card ${wide ? "wide" : ""}`, testid },
    h("div", { class: "row-between card-head" }, h("h2", {}, title), tools || null),
    hint ? h("p", { class: "muted small" }, hint) : null, body);
}

/** /readyz as a plain object, whether it answered 200 (ready) or 503 (not ready). */
async function readiness(signal) {
  try {
    return { ok: true, ...(await api("readyz", { signal })) };
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    const checks = exc.status === 503 && exc.detail && typeof exc.detail === "object" ? exc.detail : null;
    return { ok: false, checks, message: exc.message };
  }
}

/** A token's limits in words; ``unset`` says what no limit at all means for this token. */
function limitsText(limits, providers, unset = "limits.none") {
  const parts = [
    limits.requests_per_s != null
      ? t("limits.rate", { n: limits.requests_per_s, burst: limits.burst ?? "—" }) : null,
    limits.max_active_tasks != null ? t("limits.active", { n: limits.max_active_tasks }) : null,
    limits.tasks_per_day != null ? t("limits.daily", { n: limits.tasks_per_day }) : null,
    Array.isArray(providers) ? t("limits.providers", { list: providers.join(", ") }) : null,
  ].filter(Boolean);
  return parts.length ? parts.join(" · ") : t(unset);
}

function drawMe(el, me) {
  const usage = me.usage || {};
  replace(el, h("dl", { class: "kv" },
    h("dt", {}, t("tokens.name")),
    h("dd", {}, h("strong", {}, me.name),
      me.admin ? h("span", { class: "chip status-queued" }, t("tokens.admin")) : null),
    h("dt", {}, t("tokens.limits")), h("dd", {}, limitsText(me.limits || {}, me.providers)),
    h("dt", {}, t("tokens.usage")),
    h("dd", {}, t("tokens.usage.text", {
      active: usage.active_tasks ?? "—", today: usage.tasks_today ?? "—",
    }))));
}

function drawReady(el, ready) {
  const checks = ready.checks && typeof ready.checks === "object" ? ready.checks : {};
  replace(el,
    h("p", {}, h("span", { class: `chip ${ready.ok ? "status-succeeded" : "status-failed"}` },
      ready.ok ? t("operate.ready.yes") : t("operate.ready.no"))),
    Object.keys(checks).length
      ? h("table", { class: "compact" }, h("tbody", {}, Object.entries(checks).map(([name, result]) =>
        h("tr", {}, h("th", { scope: "row" }, name),
          h("td", { class: result === "ok" ? "" : "bad" }, String(result))))))
      : h("p", { class: "muted small" }, t("operate.ready.no_details")));
}

/** Providers with their circuit; ``breakers`` (admins: /readyz) adds the breaker's detail. */
function drawProviders(el, rows, breakers) {
  const heads = [t("operate.provider"), t("operate.health"), t("operate.accepts")];
  if (breakers) heads.push(t("operate.breaker"));
  replace(el, h("table", { class: "compact stack" },
    h("thead", {}, h("tr", {}, heads.map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows.map((p) => {
      const caps = p.capabilities || {};
      const detail = breakers?.[p.name];
      const circuit = detail?.state || p.circuit || "closed";
      return h("tr", { dataset: { provider: p.name } },
        h("th", { scope: "row" }, p.name,
          p.default ? h("span", { class: "chip" }, t("create.provider.default")) : null),
        h("td", { "data-label": heads[1] }, h("span", { class: `chip breaker-${circuit}`, dataset: { circuit } },
          t(`breaker.${circuit}`, {}, circuit))),
        h("td", { class: "small", "data-label": heads[2] }, [
          caps.image_input ? t("operate.cap.image") : null,
          caps.last_frame ? t("operate.cap.last_frame") : null,
          caps.reference_images ? t("operate.cap.references", { n: caps.reference_images }) : null,
          caps.negative_prompt ? t("operate.cap.negative") : null,
          (caps.aspect_ratios || []).join(" "),
        ].filter(Boolean).join(" · ")),
        breakers ? h("td", { class: "small", "data-label": heads[3] }, breakerText(detail)) : null);
    }))));
}

function breakerText(detail) {
  if (!detail) return "—";
  const errors = Object.entries(detail.errors || {}).map(([code, n]) => `${code} × ${n}`).join(", ");
  const parts = [
    detail.state === "open" ? t("breaker.retry_in", { s: Math.round(detail.retry_after_s || 0) }) : null,
    detail.failures_in_a_row ? t("breaker.in_a_row", { n: detail.failures_in_a_row }) : null,
    detail.times_opened ? t("breaker.opened", { n: detail.times_opened }) : null,
    errors || null,
  ].filter(Boolean);
  const text = parts.join(" · ");
  const last = detail.last_error && !detail.errors?.[detail.last_error]
    ? h("div", { class: "muted" }, detail.last_error) : null;
  return text || last ? [text, last] : "—";
}

function drawNow(el, active) {
  const providers = Object.entries(active.by_provider || {});
  const replicas = Object.keys(active.by_instance || {}).length;
  replace(el,
    h("div", { class: "stat-row" },
      stat(active.queued, t("status.queued"), "stat-queued"),
      stat(active.running, t("status.running"), "stat-running"),
      stat(replicas, t("operate.replicas"), "stat-replicas")),
    providers.length
      ? h("table", { class: "compact" },
        h("thead", {}, h("tr", {}, [t("operate.provider"), t("status.queued"), t("status.running")]
          .map((label) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, providers.map(([name, counts]) => h("tr", {},
          h("th", { scope: "row" }, name || "—"),
          h("td", {}, String(counts.queued || 0)), h("td", {}, String(counts.running || 0))))))
      : h("p", { class: "muted" }, t("operate.idle")));
}

function stat(value, label, testid) {
  return h("div", { class: "stat", testid },
    h("strong", { class: "big" }, String(value ?? 0)), h("span", { class: "muted small" }, label));
}

function drawWindow(el, stats) {
  const providers = Object.entries(stats.by_provider || {}).sort(([a], [b]) => a.localeCompare(b));
  const cell = (n) => h("td", { class: n ? "" : "muted" }, String(n || 0));
  replace(el,
    h("p", {}, h("strong", { class: "big" }, String(stats.total)), " ",
      h("span", { class: "muted" }, t("operate.created_since", { when: formatDateTime(stats.since) }))),
    providers.length
      ? h("div", { class: "scroll" }, h("table", { class: "compact numbers" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("operate.provider")),
          STATUSES.map((s) => h("th", { scope: "col" }, t(`status.${s}`))))),
        h("tbody", {}, providers.map(([name, counts]) => h("tr", { dataset: { provider: name } },
          h("th", { scope: "row" }, name || "—"), STATUSES.map((s) => cell(counts[s]))))),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, t("operate.total")),
          STATUSES.map((s) => cell(stats.by_status?.[s]))))))
      : h("p", { class: "muted" }, t("operate.counts.none")));
}

function drawFailures(el, failures) {
  replace(el, failures.length
    ? h("table", { class: "compact stack" },
      h("thead", {}, h("tr", {}, [t("operate.code"), t("operate.count"), t("operate.latest"),
        t("operate.example")].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, failures.map((group) => h("tr", { dataset: { code: group.code } },
        h("th", { scope: "row" }, h("code", {}, group.code)),
        h("td", { "data-label": t("operate.count") }, String(group.count)),
        h("td", { class: "small nowrap", "data-label": t("operate.latest") },
          h("time", { datetime: group.last_at, title: formatDateTime(group.last_at) },
            relativeTime(group.last_at))),
        h("td", { class: "small example" },
          h("a", { href: `#/tasks/${encodeURIComponent(group.example.task_id)}` },
            h("code", {}, group.example.task_id)),
          group.example.provider ? h("span", { class: "chip" }, group.example.provider) : null,
          h("div", { class: "prewrap" }, group.example.message))))))
    : h("p", { class: "muted" }, t("operate.failures.none")));
}

// --- managed tokens ---------------------------------------------------------------------------

function tokenManager(el, { signal, providers }) {
  const note = h("p", { class: "alert error", role: "alert", testid: "error-message", hidden: true });
  const issued = h("div", { class: "alert ok issued", role: "status", testid: "new-token", hidden: true });
  const body = h("tbody");
  const table = h("table", { class: "compact tokens stack" },
    h("thead", {}, h("tr", {}, [t("tokens.name"), t("tokens.limits"), t("tokens.usage"),
      t("tokens.last_used"), h("span", { class: "sr-only" }, t("tokens.actions"))]
      .map((label) => h("th", { scope: "col" }, label)))),
    body);

  const name = h("input", {
    type: "text", required: true, maxlength: 64, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*",
    autocomplete: "off", spellcheck: "false", placeholder: "team-a", title: t("tokens.name.hint"),
  });
  const number = (attrs) => h("input", { type: "number", min: 0, inputmode: "decimal", ...attrs });
  const rate = number({ step: "any" });
  const burst = number({ step: 1 });
  const maxActive = number({ step: 1 });
  const perDay = number({ step: 1 });
  const isAdmin = h("input", { type: "checkbox" });
  const allowed = providers.map((p) => h("input", { type: "checkbox", value: p.name }));
  const form = h("form", { class: "token-form", novalidate: true },
    h("h3", {}, t("tokens.create")),
    h("div", { class: "row" },
      field(t("tokens.name"), name),
      field(t("tokens.rate"), rate), field(t("tokens.burst"), burst),
      field(t("tokens.max_active"), maxActive), field(t("tokens.per_day"), perDay)),
    h("fieldset", { class: "providers" },
      h("legend", { class: "label" }, t("tokens.providers")),
      h("div", { class: "checks" }, allowed.map((box) => h("label", { class: "check" }, box, box.value))),
      h("small", { class: "hint" }, t("tokens.providers.hint"))),
    h("label", { class: "check" }, isAdmin, t("tokens.admin.make")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("tokens.create"))));
  replace(el, issued, note, table, form);

  const showError = (exc) => {
    if (exc.name === "AbortError") return;
    note.textContent = describe(exc);
    note.hidden = false;
  };
  const showIssued = (record, message) => {
    replace(issued,
      h("p", {}, h("strong", {}, message), " ", t("tokens.shown_once")),
      h("div", { class: "secret" },
        h("code", { class: "select-all", testid: "new-token-value" }, record.token),
        copyButton(t("copy"), record.token, t("copied")),
        h("button", { type: "button", class: "ghost", onclick: () => { issued.hidden = true; issued.replaceChildren(); } },
          t("tokens.dismiss"))));
    issued.hidden = false;
    issued.querySelector("button")?.focus();
  };

  async function load() {
    try {
      const list = await api("v1/admin/tokens", { signal });
      replace(body, (list.data || []).length
        ? list.data.map(row)
        : h("tr", {}, h("td", { colspan: 5, class: "muted empty" }, t("tokens.none"))));
    } catch (exc) {
      showError(exc);
    }
  }

  function row(tok) {
    const usage = tok.usage || {};
    const revoked = tok.status === "revoked";
    return h("tr", { dataset: { token: tok.name }, class: revoked ? "revoked" : "" },
      h("th", { scope: "row" },
        h("strong", {}, tok.name),
        tok.admin ? h("span", { class: "chip status-queued" }, t("tokens.admin")) : null,
        revoked ? h("span", { class: "chip status-cancelled", testid: "token-revoked" }, t("tokens.revoked")) : null,
        h("div", { class: "muted small" }, h("code", {}, tok.hint)),
        tok.previous_valid_until
          ? h("div", { class: "muted small" }, t("tokens.grace", { when: formatDateTime(tok.previous_valid_until) }))
          : null),
      h("td", { class: "small", "data-label": t("tokens.limits") }, limitsText(tok, tok.providers, "limits.defaults")),
      h("td", { class: "small", testid: "token-usage", "data-label": t("tokens.usage") }, t("tokens.usage.text", {
        active: usage.active_tasks ?? "—", today: usage.tasks_today ?? "—",
      })),
      h("td", { class: "small", "data-label": t("tokens.last_used") }, tok.last_used_at
        ? h("time", { datetime: tok.last_used_at, title: formatDateTime(tok.last_used_at) },
          relativeTime(tok.last_used_at))
        : h("span", { class: "muted" }, t("tokens.never"))),
      h("td", {}, h("div", { class: "actions tight" },
        h("button", { type: "button", class: "secondary", onclick: () => rotate(tok) },
          revoked ? t("tokens.reissue") : t("tokens.rotate")),
        revoked ? null : h("button", { type: "button", class: "secondary danger", onclick: () => revoke(tok) },
          t("tokens.revoke")))));
  }

  async function act(path, payload) {
    // A token shown earlier goes away with the next change (it may be the one just revoked).
    note.hidden = true;
    issued.hidden = true;
    issued.replaceChildren();
    const result = await api(path, { method: "POST", body: payload, signal });
    await load();
    return result;
  }

  function rotate(tok) {
    const grace = h("select", {}, GRACES.map((s) => h("option", { value: s, selected: s === 3600 && tok.status !== "revoked" },
      t(`tokens.grace.${s}`))));
    confirmDialog({
      title: t("tokens.rotate.title", { name: tok.name }),
      text: t("tokens.rotate.text"),
      body: tok.status === "revoked" ? null : field(t("tokens.grace.label"), grace),
      confirm: t("tokens.rotate"),
      onConfirm: async () => {
        const record = await act(`v1/admin/tokens/${encodeURIComponent(tok.name)}/rotate`,
          { grace_s: tok.status === "revoked" ? 0 : Number(grace.value) });
        showIssued(record, t("tokens.rotated", { name: tok.name }));
      },
      onError: showError,
    });
  }

  function revoke(tok) {
    confirmDialog({
      title: t("tokens.revoke.title", { name: tok.name }),
      text: t("tokens.revoke.text"),
      confirm: t("tokens.revoke"),
      danger: true,
      onConfirm: () => act(`v1/admin/tokens/${encodeURIComponent(tok.name)}/revoke`),
      onError: showError,
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    note.hidden = true;
    if (!name.reportValidity()) return;
    const value = (input) => (input.value === "" ? undefined : Number(input.value));
    const chosen = allowed.filter((box) => box.checked).map((box) => box.value);
    const payload = Object.fromEntries(Object.entries({
      name: name.value.trim(), admin: isAdmin.checked, requests_per_s: value(rate), burst: value(burst),
      max_active_tasks: value(maxActive), tasks_per_day: value(perDay),
      providers: chosen.length ? chosen : undefined,
    }).filter(([, v]) => v !== undefined));
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const record = await act("v1/admin/tokens", payload);
      form.reset();
      showIssued(record, t("tokens.created", { name: record.name }));
    } catch (exc) {
      showError(exc);
    } finally {
      submit.disabled = false;
    }
  });

  return { load };
}

/** A modal <dialog> asking to confirm an action (focus moves in, Escape cancels). */
function confirmDialog({ title, text, body, confirm, danger, onConfirm, onError }) {
  const ok = h("button", { type: "submit", class: danger ? "primary danger-fill" : "primary", testid: "dialog-confirm" }, confirm);
  const dialog = h("dialog", { class: "card dialog", "aria-labelledby": "dialog-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "dialog-title" }, title),
      h("p", {}, text),
      body,
      h("div", { class: "actions" }, ok,
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, t("cancel")))));
  dialog.addEventListener("close", () => dialog.remove());
  dialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    ok.disabled = true;
    try {
      await onConfirm();
    } catch (exc) {
      onError(exc);
    }
    dialog.close();
  });
  document.body.append(dialog);
  dialog.showModal();
}
