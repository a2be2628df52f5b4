// Tasks: the caller's tasks, newest first, with filters and cursor paging. The filters live in
// the URL's hash (#/tasks?status=failed&provider=preview), so back/forward and links keep them.
// A CSV batch's tasks carry the batch id as their group_id, so the batch filter is a group
// filter; admins may also list every tenant's tasks (?owner=all).

import { TERMINAL, api, apiUrl, authHeaders, errorFrom } from "../api.js";
import { field, h, replace } from "../dom.js";
import { formatDateTime, formatDuration, relativeTime, t } from "../i18n.js";
import { statusChip } from "../player.js";
import { describe } from "./create.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 20;
const REFRESH_MS = 4000;

export function render(main, { query, state, signal, navigate }) {
  const filters = {
    status: query.get("status") || "",
    provider: query.get("provider") || "",
    group_id: query.get("group_id") || query.get("batch_id") || "",
    owner: query.get("owner") === "all" ? "all" : "",
    before: query.get("before") || "",
  };
  const alert = h("p", { class: "alert error", testid: "error-message", role: "alert", hidden: true });

  const status = h("select", { name: "status" }, h("option", { value: "" }, t("tasks.any")),
    STATUSES.map((s) => h("option", { value: s }, t(`status.${s}`))));
  status.value = filters.status;
  const provider = h("select", { name: "provider" }, h("option", { value: "" }, t("tasks.any")));
  const group = h("input", {
    type: "text", name: "group_id", value: filters.group_id, placeholder: "vg_… / vb_…",
    title: t("tasks.group.hint"),
    autocomplete: "off", spellcheck: "false",
  });
  const batch = h("select", { name: "batch" }, h("option", { value: "" }, t("tasks.any")));
  const everyone = h("input", { type: "checkbox", name: "owner", checked: filters.owner === "all", testid: "all-tenants" });
  const everyoneField = h("label", { class: "check", hidden: true }, everyone, t("tasks.all_tenants"));
  state.once("v1/providers").then((list) => {
    for (const p of list.data || []) provider.append(h("option", { value: p.name }, p.name));
    provider.value = filters.provider;
  }).catch(() => {});
  if (filters.provider) {
    provider.append(h("option", { value: filters.provider }, filters.provider));
    provider.value = filters.provider;
  }
  // Picking a batch fills in its id as the group: one filter, one URL parameter.
  api("v1/batches", { query: { limit: 50 }, signal }).then((list) => {
    for (const b of list.data || []) {
      batch.append(h("option", { value: b.id },
        `${b.filename || b.id} · ${formatDateTime(b.created_at)} · ${b.counts?.total ?? 0}`));
    }
    if (filters.group_id.startsWith("vb_")) {
      if (![...batch.options].some((o) => o.value === filters.group_id)) {
        batch.append(h("option", { value: filters.group_id }, filters.group_id));
      }
      batch.value = filters.group_id;
    }
  }).catch(() => {});
  batch.addEventListener("change", () => { group.value = batch.value; });
  group.addEventListener("input", () => { batch.value = group.value.trim().startsWith("vb_") ? group.value.trim() : ""; });
  state.once("v1/me").then((me) => { everyoneField.hidden = !me.admin; }).catch(() => {});

  const form = h("form", {
    class: "filters",
    onsubmit: (event) => {
      event.preventDefault();
      navigate("/tasks", {
        status: status.value, provider: provider.value, group_id: group.value.trim(),
        owner: everyone.checked ? "all" : "",
      });
    },
  },
  field(t("tasks.status"), status), field(t("tasks.provider"), provider),
  field(t("tasks.batch"), batch), field(t("tasks.group"), group),
  h("div", { class: "actions" },
    everyoneField,
    h("button", { type: "submit", class: "secondary" }, t("tasks.apply")),
    h("a", { class: "button ghost", href: "#/tasks" }, t("tasks.reset"))));

  const batchCard = h("section", { class: "card batch", hidden: true, testid: "batch-summary" });

  const body = h("tbody");
  const pager = h("div", { class: "actions pager" });
  // Every tenant's tasks: each row says whose it is.
  const everyones = filters.owner === "all";
  const columns = [t("tasks.col.status"), t("tasks.col.prompt"),
    ...(everyones ? [t("tasks.col.owner")] : []), t("tasks.col.provider"), t("tasks.col.length"),
    t("tasks.col.age")];
  const table = h("table", { class: "tasks" },
    h("caption", { class: "sr-only" }, t("tasks.title")),
    h("thead", {}, h("tr", {}, columns.map((label) => h("th", { scope: "col" }, label)))),
    body);

  replace(main,
    h("div", { class: "row-between" }, h("h1", {}, t("tasks.title")),
      h("a", { class: "button primary", href: "#/create" }, t("tasks.new"))),
    h("section", { class: "card" }, form),
    batchCard, alert,
    h("section", { class: "card flush" }, table, pager));

  const cursors = (state.taskCursors ||= []);
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer));

  let shown = null;
  async function load() {
    clearTimeout(timer);
    if (document.hidden && shown !== null) {
      timer = setTimeout(load, REFRESH_MS); // no polling from a tab nobody looks at
      return;
    }
    try {
      const page = await api("v1/tasks", {
        query: {
          limit: PAGE, status: filters.status, provider: filters.provider,
          group_id: filters.group_id, owner: filters.owner, before: filters.before,
        },
        signal,
      });
      const rows = page.data || [];
      alert.hidden = true;
      const signature = JSON.stringify(rows.map((task) => [task.id, task.status, task.progress]));
      if (signature !== shown) {
        shown = signature;
        if (filters.group_id.startsWith("vb_")) showBatch(batchCard, filters.group_id, signal);
        // A refresh must not throw keyboard focus out of the table.
        const focused = document.activeElement?.closest?.("tr[data-task-id]")?.dataset.taskId;
        replace(body, rows.length ? rows.map((task) => row(task, everyones)) : h("tr", {},
          h("td", { colspan: columns.length, class: "empty muted" }, t("tasks.empty"))));
        if (focused) body.querySelector(`tr[data-task-id="${CSS.escape(focused)}"] a`)?.focus();
      }
      renderPager(page);
      // Keep the first page fresh while something on it is still running.
      if (!filters.before && rows.some((task) => !TERMINAL.has(task.status)) && !signal.aborted) {
        timer = setTimeout(load, REFRESH_MS);
      }
    } catch (exc) {
      if (exc.name === "AbortError") return;
      alert.textContent = describe(exc);
      alert.hidden = false;
    }
  }

  function renderPager(page) {
    const query = {
      status: filters.status, provider: filters.provider, group_id: filters.group_id,
      owner: filters.owner,
    };
    replace(pager,
      filters.before
        ? h("button", {
          type: "button", class: "secondary",
          onclick: () => navigate("/tasks", { ...query, before: cursors.pop() || "" }),
        }, `← ${t("tasks.newer")}`)
        : null,
      page.has_more && page.next_before
        ? h("button", {
          type: "button", class: "secondary",
          onclick: () => {
            cursors.push(filters.before);
            navigate("/tasks", { ...query, before: page.next_before });
          },
        }, `${t("tasks.older")} →`)
        : null);
    if (!filters.before) cursors.length = 0;
  }

  load();
}

function row(task, withOwner) {
  const length = lengthOf(task);
  const progress = task.status === "running" ? ` ${Number(task.progress) || 0}%` : "";
  return h("tr", { testid: "task-row", dataset: { taskId: task.id } },
    h("td", {}, statusChip(task.status), progress ? h("span", { class: "muted small" }, progress) : null),
    h("td", { class: "prompt" },
      h("a", { href: `#/tasks/${encodeURIComponent(task.id)}` }, task.prompt || task.id),
      task.error || task.cached_from || task.remixed_from || task.group_id
        ? h("div", { class: "muted small tags" },
          task.error ? h("code", {}, task.error.code) : null,
          task.cached_from ? h("span", { class: "chip", title: task.cached_from }, t("tasks.cached")) : null,
          task.remixed_from ? h("span", { class: "chip", title: task.remixed_from }, t("tasks.remix")) : null,
          task.group_id?.startsWith("vb_") ? h("span", { class: "chip", title: task.group_id }, t("tasks.in_batch")) : null)
        : null),
    withOwner ? h("td", { "data-label": t("tasks.col.owner"), testid: "task-owner" }, task.owner || "—") : null,
    h("td", { "data-label": t("tasks.col.provider") }, task.provider || "—"),
    h("td", { "data-label": t("tasks.col.length") }, length ? formatDuration(length) : "—"),
    h("td", { "data-label": t("tasks.col.age") },
      h("time", { datetime: task.created_at, title: formatDateTime(task.created_at) },
        relativeTime(task.created_at))));
}

/** The video's length as asked for (the stored request), in ms; null when unknown. */
function lengthOf(task) {
  const request = task.request || {};
  if (Array.isArray(request.shots) && request.shots.length && request.shots.every((s) => s.duration_ms)) {
    return request.shots.reduce((sum, s) => sum + s.duration_ms, 0);
  }
  if (request.duration_ms) return request.duration_ms;
  if (task.params?.duration_ms_effective) return task.params.duration_ms_effective;
  return null;
}

/** A batch's status and counts above its tasks, with its results sheet. */
async function showBatch(el, batchId, signal) {
  try {
    const b = await api(`v1/batches/${encodeURIComponent(batchId)}`, { signal });
    const counts = b.counts || {};
    const note = h("p", { class: "alert error", role: "alert", hidden: true });
    const download = h("button", { type: "button", class: "secondary" }, t("tasks.batch.results"));
    download.addEventListener("click", () => saveResults(b, signal).catch((exc) => {
      if (exc.name === "AbortError") return;
      note.textContent = describe(exc);
      note.hidden = false;
    }));
    replace(el,
      h("div", { class: "row-between" },
        h("h2", {}, t("tasks.batch.title"), " ", h("code", { class: "small" }, b.id)),
        h("span", { class: `chip status-${b.status === "completed" ? "succeeded" : b.status}` },
          t(`batch.${b.status}`, {}, b.status))),
      h("p", { class: "muted small" }, b.filename || "", " · ", formatDateTime(b.created_at)),
      h("p", { class: "counts" }, ["total", ...STATUSES].map((key) => h("span", { class: "count" },
        h("strong", {}, String(counts[key] ?? 0)), " ",
        key === "total" ? t("tasks.batch.rows") : t(`status.${key}`)))),
      note,
      h("div", { class: "actions" }, download));
    el.hidden = false;
  } catch (exc) {
    if (exc.name !== "AbortError") {
      replace(el, h("p", { class: "muted" }, describe(exc)));
      el.hidden = false;
    }
  }
}

/** results.csv needs the bearer token, so it is fetched here and handed over as a file. */
async function saveResults(batch, signal) {
  const response = await fetch(apiUrl(`v1/batches/${encodeURIComponent(batch.id)}/results.csv`),
    { headers: authHeaders(), signal });
  if (!response.ok) throw await errorFrom(response);
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: `${batch.id}-results.csv`, class: "offscreen" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
